package dev.corral.egress;

import io.smallrye.config.ConfigMapping;
import io.smallrye.config.WithDefault;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/** The egress proxy and the git gateway ({@code corral.egress.*}). */
@ConfigMapping(prefix = "corral.egress")
public interface EgressConfig {

  /**
   * Where this replica keeps the sockets sandboxes reach the proxy through (the process id and a
   * random number are appended). Keep it short: a socket's path has at most 107 bytes.
   */
  @WithDefault("/tmp/corral-egress")
  String socketDirectory();

  /**
   * Host names the proxy resolves to a fixed address instead of asking DNS ({@code
   * corral.egress.static-hosts."git.example.com"=203.0.113.7}). The address rules still apply.
   */
  Map<String, String> staticHosts();

  /**
   * Private networks (CIDRs) sandboxes and server-side calls may reach nevertheless, such as an
   * internal registry or git server. Loopback and link-local stay closed whatever this says.
   */
  Optional<List<String>> allowedPrivateNetworks();

  /** How long resolving a name may take. */
  @WithDefault("5s")
  Duration resolveTimeout();

  /** How long connecting to a host may take. */
  @WithDefault("10s")
  Duration connectTimeout();

  /** A connection through the proxy with no traffic for this long is closed. */
  @WithDefault("10m")
  Duration idleTimeout();

  /** Connections one sandbox may have open through the proxy at once. */
  @WithDefault("64")
  int maxConnectionsPerSandbox();

  /** The host name under which a sandbox reaches its session's git repositories. */
  @WithDefault("corral-git")
  String gitHost();

  /** The port the proxy listens on inside each sandbox (HTTP_PROXY=http://127.0.0.1:<port>). */
  @WithDefault("3128")
  int sandboxPort();

  /**
   * A TCP port on which this replica's proxy also serves sandboxes that reach it over the network
   * (Kubernetes pods, through the corral-egress Service), each with its egress token. Unset: none.
   */
  Optional<Integer> listenPort();

  /** The address {@link #listenPort()} is bound to. */
  @WithDefault("0.0.0.0")
  String listenHost();
}
