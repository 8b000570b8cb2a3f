package dev.corral.common;

import io.smallrye.mutiny.Uni;
import io.vertx.mutiny.core.Vertx;
import jakarta.enterprise.context.ApplicationScoped;
import java.net.InetAddress;
import java.net.URI;
import java.net.UnknownHostException;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import org.eclipse.microprofile.config.inject.ConfigProperty;

/**
 * Where corral's server may call a URL that a tenant gave it (an MCP server, an OAuth token
 * endpoint): public addresses, and the networks of {@code corral.outbound.allowed-networks}. A
 * member could otherwise make corral's server call its own loopback, the cloud's metadata service
 * (169.254.169.254) or a private network and read what comes back. Every address the host resolves
 * to is checked just before the call; the HTTP client then resolves the name again, so a name that
 * changes its answer in between (DNS rebinding) is not caught here.
 */
@ApplicationScoped
public class OutboundAddresses {

  private static final Duration RESOLVE_TIMEOUT = Duration.ofSeconds(5);

  private final Vertx vertx;
  private final AddressRules rules;
  private final String setting;

  OutboundAddresses(
      Vertx vertx,
      @ConfigProperty(name = "corral.outbound.allowed-networks")
          Optional<List<String>> allowedNetworks) {
    this.vertx = vertx;
    this.rules = AddressRules.forServerCalls(allowedNetworks.orElse(List.of()));
    this.setting = "corral.outbound.allowed-networks";
  }

  /**
   * Completes if corral may call {@code url}; fails with {@link FailedPreconditionException} saying
   * why not ({@code what} names the URL's role, e.g. "the MCP server").
   */
  public Uni<Void> check(String what, String url) {
    String host;
    try {
      host = URI.create(url).getHost();
    } catch (IllegalArgumentException malformed) {
      return Uni.createFrom().failure(new FailedPreconditionException(what + " has no valid URL"));
    }
    if (host == null) {
      return Uni.createFrom().failure(new FailedPreconditionException(what + " has no host"));
    }
    String name = host.startsWith("[") ? host.substring(1, host.length() - 1) : host;
    return vertx
        .executeBlocking(Uni.createFrom().item(() -> resolve(what, name)), false)
        .ifNoItem()
        .after(RESOLVE_TIMEOUT)
        .failWith(
            () -> new FailedPreconditionException(what + " " + name + " could not be resolved"))
        .map(
            addresses -> {
              for (InetAddress address : addresses) {
                Optional<String> refusal = rules.refusal(address);
                if (refusal.isPresent()) {
                  throw new FailedPreconditionException(
                      what
                          + " "
                          + name
                          + " is at "
                          + refusal.get()
                          + "; corral's server calls only public addresses and those "
                          + setting
                          + " opens");
                }
              }
              return null;
            })
        .replaceWithVoid();
  }

  private static List<InetAddress> resolve(String what, String name) {
    try {
      return List.of(InetAddress.getAllByName(name));
    } catch (UnknownHostException e) {
      throw new FailedPreconditionException(what + " " + name + " could not be resolved");
    }
  }
}
