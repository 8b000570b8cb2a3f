package dev.corral.sandbox.local;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class HostIdsTest {

  @TempDir Path etc;

  @Test
  void theIdsOfTheHostsUsersGroupsAndTheirSubordinateRangesAreTaken() throws Exception {
    // Given a host with a user, a group, and two users' subordinate ids (a rootless container
    // runtime's), the second range reaching into corral's default 200000..249999
    Path passwd = Files.writeString(etc.resolve("passwd"), "alice:x:1000:1001::/home/a:/bin/sh\n");
    Path group = Files.writeString(etc.resolve("group"), "# comment\nstaff:x:2002:alice\n");
    Path subuid =
        Files.writeString(etc.resolve("subuid"), "alice:100000:65536\nbob:165536:65536\n");
    HostIds ids =
        new HostIds(List.of(passwd), List.of(group), List.of(subuid, etc.resolve("absent")));

    // Then those ids are taken, and the ones next to them are not
    assertThat(ids.now().test(1000)).isTrue();
    assertThat(ids.now().test(1001)).isTrue();
    assertThat(ids.now().test(2002)).isTrue();
    assertThat(ids.now().test(200_000)).isTrue();
    assertThat(ids.now().test(231_071)).isTrue();
    assertThat(ids.now().test(231_072)).isFalse();
    assertThat(ids.now().test(99_999)).isFalse();

    // And a range added later is seen
    Files.writeString(subuid, "carol:231072:65536\n", java.nio.file.StandardOpenOption.APPEND);
    Files.setLastModifiedTime(
        subuid, java.nio.file.attribute.FileTime.fromMillis(System.currentTimeMillis() + 5_000));
    assertThat(ids.now().test(231_072)).isTrue();
  }
}
