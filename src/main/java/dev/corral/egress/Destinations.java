package dev.corral.egress;

import dev.corral.common.AddressRules;
import dev.corral.common.HostAddresses;
import dev.corral.common.IpLiteral;
import dev.corral.common.NameLookups;
import io.quarkus.vertx.http.HttpServerStart;
import io.smallrye.mutiny.Uni;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Observes;
import java.net.InetAddress;
import java.net.SocketException;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Turns a host name into the one address a connection may go to: the proxy resolves names (the
 * sandbox has no DNS), checks every address the name resolves to, and connects to the address it
 * checked, so that a name resolving to a private address — or rebinding to one between a check and
 * a connection — never gets through.
 */
@ApplicationScoped
public class Destinations {

  private final EgressConfig config;
  private final NameLookups lookups;
  private final AddressRules rules;
  private final Set<Integer> ownPorts;
  private final Set<Integer> databasePorts;

  @jakarta.inject.Inject
  Destinations(EgressConfig config, NameLookups lookups) {
    this(config, lookups, configuredPorts(), databasePorts());
  }

  Destinations(
      EgressConfig config, NameLookups lookups, Set<Integer> ownPorts, Set<Integer> databasePorts) {
    this.config = config;
    this.lookups = lookups;
    this.rules = new AddressRules(config.allowedPrivateNetworks().orElse(List.of()));
    this.ownPorts = ownPorts;
    this.databasePorts = Set.copyOf(databasePorts);
  }

  /**
   * The address {@code host} may be reached at.
   *
   * @throws EgressRefusedException (in the Uni) if it cannot be resolved, or resolves to any
   *     address that may not be reached
   */
  public Uni<InetAddress> resolve(String asker, String host) {
    String name = host.toLowerCase(Locale.ROOT);
    return addresses(asker, name).map(addresses -> checked(name, addresses));
  }

  private Uni<List<InetAddress>> addresses(String asker, String name) {
    Optional<String> fixed =
        Optional.ofNullable(config.staticHosts().get(name))
            .or(() -> Optional.ofNullable(config.staticHosts().get("\"" + name + "\"")));
    if (fixed.isPresent()) {
      return IpLiteral.parse(fixed.get())
          .map(address -> Uni.createFrom().item(List.of(address)))
          .orElseGet(() -> Uni.createFrom().failure(unresolvable(name)));
    }
    Optional<InetAddress> literal = IpLiteral.parse(name);
    if (literal.isPresent()) {
      return Uni.createFrom().item(List.of(literal.get()));
    }
    return lookups
        .lookup(asker, name, config.resolveTimeout())
        .onFailure(NameLookups.LookupFailedException.class)
        .transform(failed -> new EgressRefusedException("unresolvable", failed.getMessage()));
  }

  private InetAddress checked(String name, List<InetAddress> addresses) {
    for (InetAddress address : addresses) {
      Optional<String> refusal = rules.refusal(address);
      if (refusal.isPresent()) {
        throw new EgressRefusedException(
            "non_public",
            name
                + (IpLiteral.parse(name).isPresent() ? " is " : " resolves to ")
                + refusal.get()
                + "; corral's egress never reaches those");
      }
    }
    return addresses.get(0);
  }

  private static EgressRefusedException unresolvable(String name) {
    return new EgressRefusedException("unresolvable", name + " could not be resolved");
  }

  Map<String, String> staticHosts() {
    return config.staticHosts();
  }

  /** Notes the ports corral's own servers listen on. */
  void serverStarted(@Observes HttpServerStart started) {
    ownPorts.add(started.options().getPort());
  }

  /** The ports corral's HTTP and gRPC servers are configured to listen on, in any launch mode. */
  private static Set<Integer> configuredPorts() {
    Set<Integer> ports = ConcurrentHashMap.newKeySet();
    var config = org.eclipse.microprofile.config.ConfigProvider.getConfig();
    for (String name :
        List.of(
            "quarkus.http.port",
            "quarkus.http.ssl-port",
            "quarkus.http.test-port",
            "quarkus.http.test-ssl-port",
            "quarkus.grpc.server.port",
            "quarkus.grpc.server.test-port",
            "quarkus.management.port",
            "corral.egress.listen-port")) {
      config.getOptionalValue(name, Integer.class).filter(port -> port > 0).ifPresent(ports::add);
    }
    return ports;
  }

  private static final java.util.regex.Pattern URL_AUTHORITY =
      java.util.regex.Pattern.compile("//([^/?]*)");
  private static final java.util.regex.Pattern HOST_PORT =
      java.util.regex.Pattern.compile(":([0-9]{1,5})$");

  /** The ports of the database URLs corral is configured with (PostgreSQL's 5432 if none says). */
  private static Set<Integer> databasePorts() {
    Set<Integer> ports = new java.util.HashSet<>();
    var config = org.eclipse.microprofile.config.ConfigProvider.getConfig();
    for (String name : List.of("quarkus.datasource.reactive.url", "quarkus.datasource.jdbc.url")) {
      config
          .getOptionalValue(name, String.class)
          .ifPresent(
              url -> {
                // every host of a multi-host URL (postgresql://h1:5433,h2:5434/db)
                java.util.regex.Matcher authority = URL_AUTHORITY.matcher(url);
                if (authority.find()) {
                  for (String host : authority.group(1).split(",")) {
                    java.util.regex.Matcher port = HOST_PORT.matcher(host);
                    if (port.find()) {
                      ports.add(Integer.parseInt(port.group(1)));
                    }
                  }
                }
              });
    }
    ports.add(5432);
    return ports;
  }

  /**
   * Why {@code address:port} may not be reached although its address may: it is an address of this
   * host (on any port: services that listen on all interfaces trusting a firewall outside would be
   * reached over loopback, past it), unless an operator opened its network, or it is where corral
   * itself listens, on an address of a private network an operator opened (where its other
   * replicas, and its database, may listen too).
   */
  Optional<EgressRefusedException> ownServer(InetAddress address, int port) {
    boolean own = ownPorts.contains(port);
    boolean database = databasePorts.contains(port);
    String what = own ? "corral's own servers" : "corral's database";
    if (rules.opened(address)) {
      return own || database
          ? Optional.of(
              new EgressRefusedException(
                  "corral",
                  "port " + port + " of a private network is where " + what + " may listen"))
          : Optional.empty();
    }
    try {
      if (HostAddresses.thisHost().reach(address)) {
        return Optional.of(
            new EgressRefusedException(
                "corral",
                own || database
                    ? "port " + port + " of this host is where " + what + " may listen"
                    : address.getHostAddress()
                        + " is an address of corral's host, whose services are not the"
                        + " sandbox's"));
      }
    } catch (SocketException e) {
      return Optional.of(
          new EgressRefusedException(
              "corral", "whether " + address.getHostAddress() + " is this host is unknown"));
    }
    return Optional.empty();
  }
}
