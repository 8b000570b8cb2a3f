package dev.corral.common;

import io.smallrye.mutiny.Uni;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.inject.Inject;
import java.net.InetAddress;
import java.net.SocketException;
import java.net.URI;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import org.eclipse.microprofile.config.inject.ConfigProperty;

/**
 * Where corral's server may call a URL that a tenant gave it (an MCP server, an OAuth token
 * endpoint): public addresses, and the networks of {@code corral.outbound.allowed-networks}. A
 * member could otherwise make corral's server call its own loopback, the cloud's metadata service
 * (169.254.169.254) or a private network and read what comes back. Every address the host resolves
 * to is checked before the call, and again by the {@link OutboundProxy} the call goes through,
 * which connects to the address it checked (so a name that changes its answer in between, DNS
 * rebinding, gets nowhere). The host's own addresses are refused too, public ones included (its
 * services would be reached past any firewall outside), unless the setting names them.
 */
@ApplicationScoped
public class OutboundAddresses {

  private static final String SETTING = "corral.outbound.allowed-networks";
  private static final Duration RESOLVE_TIMEOUT = Duration.ofSeconds(5);

  private final NameLookups lookups;
  private final AddressRules rules;
  private final HostAddresses host;

  @Inject
  OutboundAddresses(
      NameLookups lookups, @ConfigProperty(name = SETTING) Optional<List<String>> allowedNetworks) {
    this(lookups, allowedNetworks, HostAddresses.thisHost());
  }

  OutboundAddresses(
      NameLookups lookups, Optional<List<String>> allowedNetworks, HostAddresses host) {
    this.lookups = lookups;
    this.rules = AddressRules.forServerCalls(allowedNetworks.orElse(List.of()));
    this.host = host;
  }

  /**
   * Completes if corral may call {@code url} for {@code tenant}; fails with {@link
   * FailedPreconditionException} saying why not ({@code what} names the host's role).
   */
  public Uni<Void> check(Tenant tenant, String what, String url) {
    String host;
    try {
      host = URI.create(url).getHost();
    } catch (IllegalArgumentException malformed) {
      return Uni.createFrom().failure(new FailedPreconditionException(what + " is not a URL"));
    }
    if (host == null) {
      return Uni.createFrom().failure(new FailedPreconditionException(what + " is missing"));
    }
    return resolve("tenant " + tenant.id(), host)
        .onFailure(FailedPreconditionException.class)
        .transform(refused -> new FailedPreconditionException(what + " " + refused.getMessage()))
        .onFailure(NameLookups.LookupFailedException.class)
        .transform(failed -> new FailedPreconditionException(what + ": " + failed.getMessage()))
        .replaceWithVoid();
  }

  /**
   * The address corral may connect to for {@code host}, looked up for {@code asker}: the first of
   * its addresses, once every one of them is checked; fails with {@link
   * FailedPreconditionException} saying why not, or {@link NameLookups.LookupFailedException} if
   * the name does not resolve in time.
   */
  public Uni<InetAddress> resolve(String asker, String host) {
    String name = host.startsWith("[") ? host.substring(1, host.length() - 1) : host;
    return lookups
        .lookup(asker, name, RESOLVE_TIMEOUT)
        .map(
            addresses -> {
              for (InetAddress address : addresses) {
                Optional<String> refusal = rules.refusal(address).or(() -> ownHost(address));
                if (refusal.isPresent()) {
                  throw new FailedPreconditionException(
                      name
                          + " is at "
                          + refusal.get()
                          + "; corral's server calls only public addresses and those "
                          + SETTING
                          + " opens");
                }
              }
              return addresses.get(0);
            });
  }

  /** Why {@code address} is refused as one of corral's own host's, if it is one. */
  private Optional<String> ownHost(InetAddress address) {
    if (rules.listed(address)) {
      return Optional.empty();
    }
    try {
      return host.reach(address)
          ? Optional.of("an address of corral's own host")
          : Optional.empty();
    } catch (SocketException unlisted) {
      return Optional.of(
          "an address that may be corral's own host (its interfaces could not be listed)");
    }
  }
}
