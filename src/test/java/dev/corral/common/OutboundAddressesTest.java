package dev.corral.common;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.corral.testing.TestNetwork;
import io.smallrye.mutiny.Uni;
import java.net.InetAddress;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import org.junit.jupiter.api.Test;

/**
 * corral's server calls a URL a tenant gave it (an MCP server, an OAuth token endpoint) only at
 * addresses that are not its own host's: a public address of one of the host's interfaces reaches
 * the host's services (a Docker socket on 2375, a database on all interfaces) past any firewall
 * outside that they trust.
 */
class OutboundAddressesTest {

  private static final Tenant TENANT = new Tenant("t1");
  private static final InetAddress OWN = address("203.0.114.9");
  private static final InetAddress OTHER = address("203.0.114.10");

  private final NameLookups lookups =
      new NameLookups(
          name ->
              Uni.createFrom()
                  .item(
                      List.of(
                          switch (name) {
                            case "own.test" -> OWN;
                            case "mapped.test" -> address("::ffff:203.0.114.9");
                            case "unspecified.test" -> address("0.0.0.0");
                            default -> OTHER;
                          })));

  @Test
  void aPublicAddressOfCorralsOwnHostIsRefusedUnlessTheOperatorOpenedIt() {
    // Given a host one of whose interfaces has the public address 203.0.114.9
    OutboundAddresses closed =
        new OutboundAddresses(lookups, Optional.empty(), new HostAddresses(Set.of(OWN)));

    // Then a URL whose name resolves to it (or to it mapped into IPv6, or to the unspecified
    // address) is refused, saying why; another public address is called
    for (String host : List.of("own.test", "mapped.test", "unspecified.test")) {
      assertThatThrownBy(() -> check(closed, "https://" + host + ":2375/mcp"))
          .as(host)
          .isInstanceOf(FailedPreconditionException.class)
          .hasMessageContaining("the MCP server's host")
          .hasMessageMatching("(?s).*(corral's own host|unspecified address).*");
    }
    check(closed, "https://elsewhere.test/mcp");

    // And an operator who names its address in corral.outbound.allowed-networks reaches it
    OutboundAddresses opened =
        new OutboundAddresses(
            lookups, Optional.of(List.of("203.0.114.9/32")), new HostAddresses(Set.of(OWN)));
    check(opened, "https://own.test:2375/mcp");
  }

  @Test
  void thisHostsAddressesAreItsInterfaces() throws Exception {
    // The addresses the server checks against are the ones this machine's interfaces have
    InetAddress outward = TestNetwork.outwardAddress();
    assertThat(HostAddresses.thisHost().reach(outward)).isTrue();
    assertThat(HostAddresses.thisHost().reach(address("::ffff:" + outward.getHostAddress())))
        .isTrue();
    assertThat(HostAddresses.thisHost().reach(address("0.0.0.0"))).isTrue();
    assertThat(HostAddresses.thisHost().reach(OTHER)).isFalse();
  }

  private static void check(OutboundAddresses addresses, String url) {
    addresses.check(TENANT, "the MCP server's host", url).await().atMost(Duration.ofSeconds(10));
  }

  private static InetAddress address(String literal) {
    return IpLiteral.parse(literal).orElseThrow();
  }
}
