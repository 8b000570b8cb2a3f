package dev.corral.egress;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.corral.common.NameLookups;
import java.net.InetAddress;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

class DestinationsTest {

  private final Set<String> looked = ConcurrentHashMap.newKeySet();
  private final Destinations destinations =
      new Destinations(
          config(Map.of("pinned.test", "93.184.216.34")),
          new NameLookups(
              name -> {
                looked.add(name);
                return new InetAddress[] {
                  InetAddress.getByAddress(name, new byte[] {93, (byte) 184, (byte) 216, 34})
                };
              }));

  @Test
  void aNameThatOnlyLooksLikeAnAddressIsLookedUpOffTheCallersThreadByTheBoundedLookups() {
    // Names made of hex digits and dots, or of too many numbers, are names: the caller (an event
    // loop) must never resolve them itself
    for (String name : List.of("0001.deadbeef.de", "cafe.babe", "1.2.3.4.5", "ff.ee")) {
      assertThat(resolve(name).getHostAddress()).as(name).isEqualTo("93.184.216.34");
      assertThat(looked).as(name).contains(name);
    }
  }

  @Test
  void literalsAndPinnedNamesAreNotLookedUpAndTheAddressRulesStillApplyToThem() {
    assertThat(resolve("93.184.216.34").getHostAddress()).isEqualTo("93.184.216.34");
    assertThat(resolve("[2606:2800:220:1:248:1893:25c8:1946]").getHostAddress())
        .isEqualTo("2606:2800:220:1:248:1893:25c8:1946");
    assertThat(resolve("pinned.test").getHostAddress()).isEqualTo("93.184.216.34");
    for (String literal : List.of("127.0.0.1", "[::1]", "::ffff:10.0.0.1", "169.254.169.254")) {
      assertThatThrownBy(() -> resolve(literal))
          .as(literal)
          .hasRootCauseInstanceOf(EgressRefusedException.class)
          .rootCause()
          .hasMessageContaining(" is ");
    }
    assertThat(looked).isEmpty();
  }

  private InetAddress resolve(String host) {
    try {
      return destinations
          .resolve("tenant t", host)
          .subscribeAsCompletionStage()
          .get(5, TimeUnit.SECONDS);
    } catch (Exception e) {
      throw new IllegalStateException(e);
    }
  }

  private static EgressConfig config(Map<String, String> staticHosts) {
    return new EgressConfig() {
      public String socketDirectory() {
        return "/tmp/corral-egress";
      }

      public Map<String, String> staticHosts() {
        return staticHosts;
      }

      public Optional<List<String>> allowedPrivateNetworks() {
        return Optional.empty();
      }

      public Duration resolveTimeout() {
        return Duration.ofSeconds(5);
      }

      public Duration connectTimeout() {
        return Duration.ofSeconds(5);
      }

      public Duration idleTimeout() {
        return Duration.ofMinutes(1);
      }

      public int maxConnectionsPerSandbox() {
        return 8;
      }

      public String gitHost() {
        return "corral-git";
      }

      public int sandboxPort() {
        return 3128;
      }

      public Optional<Integer> listenPort() {
        return Optional.empty();
      }

      public String listenHost() {
        return "127.0.0.1";
      }
    };
  }
}
