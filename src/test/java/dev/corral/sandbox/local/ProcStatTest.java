package dev.corral.sandbox.local;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import org.junit.jupiter.api.Test;

/** What /proc says of a process that chose a name which is not text. */
class ProcStatTest {

  @Test
  void aProcessNamedWithBytesThatAreNotUtf8IsStillFoundAndRead() throws Exception {
    // Given a child of this JVM that renamed itself with bytes that are not UTF-8, and a newline
    Process child =
        new ProcessBuilder("perl", "-e", "$0 = \"\\xff\\n\\xfe\"; sleep 30").inheritIO().start();
    try {
      Path comm = Path.of("/proc", Long.toString(child.pid()), "comm");
      await()
          .atMost(Duration.ofSeconds(10))
          .until(() -> Files.readAllBytes(comm)[0] == (byte) 0xff);

      // When /proc is read for it
      var stat = ProcStat.of(child.pid());
      var found = ProcStat.childWithNamespacePid(ProcessHandle.current().pid(), child.pid());

      // Then it is live, and found as the child it is (its pid namespace is this JVM's)
      assertThat(stat).isPresent();
      assertThat(stat.get().parent()).isEqualTo(ProcessHandle.current().pid());
      assertThat(found).hasValue(child.pid());
    } finally {
      child.destroyForcibly().waitFor();
    }
  }
}
