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
          config(Map.of("pinned.test", "93.184.216.34"), List.of()),
          new NameLookups(
              name -> {
                looked.add(name);
                return io.smallrye.mutiny.Uni.createFrom()
                    .item(List.of(address(name, new byte[] {93, (byte) 184, (byte) 216, 34})));
              }));

  static InetAddress address(String name, byte[] address) {
    try {
      return InetAddress.getByAddress(name, address);
    } catch (java.net.UnknownHostException impossible) {
      throw new AssertionError(impossible);
    }
  }

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

  @Test
  void corralsOwnPortsAndItsDatabasesAreClosedOnEveryPrivateNetworkAnOperatorOpens()
      throws Exception {
    // Given an operator who opened 10.0.0.0/8, where corral's replicas and database live too
    Destinations opened =
        new Destinations(
            config(Map.of(), List.of("10.0.0.0/8")),
            new NameLookups(name -> io.smallrye.mutiny.Uni.createFrom().item(List.of())),
            new java.util.HashSet<>(Set.of(8080, 9000)),
            Set.of(5433));
    InetAddress peer = InetAddress.getByName("10.1.2.3");
    InetAddress outside = InetAddress.getByName("93.184.216.34");

    // Then a peer's corral and database ports are refused there, saying why, other ports not
    for (int port : new int[] {8080, 9000, 5433}) {
      assertThat(opened.ownServer(peer, port)).as("port " + port).isPresent();
    }
    assertThat(opened.ownServer(peer, 8080).orElseThrow())
        .hasMessageContaining("of a private network is where corral's own servers may listen");
    assertThat(opened.ownServer(peer, 5433).orElseThrow())
        .hasMessageContaining("corral's database");
    assertThat(opened.ownServer(peer, 8443)).isEmpty();
    // and a public address's, which is not corral's, stays open
    assertThat(opened.ownServer(outside, 8080)).isEmpty();
  }

  @Test
  void everyPortOfAnAddressOfCorralsHostIsClosedUnlessAnOperatorOpenedItsNetwork()
      throws Exception {
    // Given an address of this host that the address rules would let through (a public one, on a
    // server with a public interface: its services that trust a firewall outside would be reached
    // over loopback, past it)
    InetAddress host = dev.corral.testing.TestNetwork.outwardAddress();
    Destinations closed =
        new Destinations(
            config(Map.of(), List.of()),
            new NameLookups(name -> io.smallrye.mutiny.Uni.createFrom().item(List.of())),
            Set.of(8080),
            Set.of(5433));

    // Then every port of it is refused, saying why
    for (int port : new int[] {22, 2375, 6379, 8443}) {
      assertThat(closed.ownServer(host, port))
          .as("port " + port)
          .hasValueSatisfying(
              refused -> assertThat(refused).hasMessageContaining("an address of corral's host"));
    }

    // And an operator who opened its network reaches its other ports, not corral's
    Destinations opened =
        new Destinations(
            config(Map.of(), List.of(host.getHostAddress() + "/32")),
            new NameLookups(name -> io.smallrye.mutiny.Uni.createFrom().item(List.of())),
            Set.of(8080),
            Set.of(5433));
    assertThat(opened.ownServer(host, 2375)).isEmpty();
    assertThat(opened.ownServer(host, 8080)).isPresent();
  }

  private static EgressConfig config(Map<String, String> staticHosts, List<String> opened) {
    return new EgressConfig() {
      public String socketDirectory() {
        return "/tmp/corral-egress";
      }

      public Map<String, String> staticHosts() {
        return staticHosts;
      }

      public Optional<List<String>> allowedPrivateNetworks() {
        return Optional.of(opened);
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
