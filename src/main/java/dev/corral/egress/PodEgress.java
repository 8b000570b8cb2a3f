package dev.corral.egress;

import dev.corral.common.LogFields;
import dev.corral.vault.Signatures;
import io.quarkus.runtime.ShutdownEvent;
import io.quarkus.runtime.StartupEvent;
import io.smallrye.mutiny.Uni;
import io.vertx.core.Vertx;
import io.vertx.core.buffer.Buffer;
import io.vertx.core.net.NetServer;
import io.vertx.core.net.NetServerOptions;
import io.vertx.core.net.NetSocket;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Observes;
import java.nio.charset.StandardCharsets;
import java.util.Base64;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;
import org.jboss.logging.Logger;

/**
 * The egress proxy for sandboxes that reach it over the network: Kubernetes pods, whose
 * NetworkPolicy lets them reach nothing but the corral-egress Service on {@code
 * corral.egress.listen-port}. Any replica may get a pod's connection, so a pod proves which sandbox
 * it is with its egress token (HTTP proxy basic authentication: sandbox id and token, which any
 * replica can check), and the grant comes from the sandbox's record, checked again every few
 * seconds: a released sandbox's open connections close.
 */
@ApplicationScoped
public class PodEgress {

  private static final Logger LOGGER = Logger.getLogger(PodEgress.class);
  private static final long GRANT_TTL_NANOS = 5_000_000_000L;
  private static final String PURPOSE = "egress:";

  private final EgressProxy proxy;
  private final EgressConfig config;
  private final GrantSource grants;
  private final Signatures signatures;
  private final Vertx vertx;

  /** The most connections of one address whose request head is not read yet. */
  public static final int MAX_UNREAD_PER_ADDRESS = 64;

  /** The most connections in all whose request head is not read yet. */
  static final int MAX_UNREAD = 2048;

  private final Map<String, Cached> cache = new ConcurrentHashMap<>();
  private final Map<String, Integer> unread = new ConcurrentHashMap<>();
  private final AtomicInteger unreadInAll = new AtomicInteger();
  private final Map<String, AtomicInteger> open = new ConcurrentHashMap<>();

  /** Each sandbox's open connections, and the grant each was admitted under. */
  private final Map<String, Map<NetSocket, EgressGrant>> connections = new ConcurrentHashMap<>();

  private NetServer server;

  PodEgress(
      EgressProxy proxy,
      EgressConfig config,
      GrantSource grants,
      Signatures signatures,
      Vertx vertx) {
    this.proxy = proxy;
    this.config = config;
    this.grants = grants;
    this.signatures = signatures;
    this.vertx = vertx;
  }

  private record Cached(Optional<EgressGrant> grant, long at) {}

  /**
   * The proxy URL a pod of {@code sandboxId} uses: its id and token as the proxy's basic
   * credentials, and {@code proxy} ({@code host:port}, an address the pod reaches without DNS).
   *
   * @throws dev.corral.common.FailedPreconditionException if the vault has no key to sign with
   */
  public String proxyUrl(String sandboxId, String proxy) {
    return "http://" + sandboxId + ":" + signatures.sign(PURPOSE + sandboxId) + "@" + proxy;
  }

  /** Whether this replica can give pods egress tokens. */
  public boolean available() {
    return signatures.available();
  }

  void start(@Observes StartupEvent event) {
    if (config.listenPort().isEmpty()) {
      return;
    }
    server =
        vertx.createNetServer(
            new NetServerOptions()
                .setHost(config.listenHost())
                .setPort(config.listenPort().get())
                .setIdleTimeout((int) config.idleTimeout().toSeconds()));
    server.connectHandler(this::accept);
    server
        .listen()
        .onSuccess(
            listening ->
                LOGGER.infof(
                    "the egress proxy serves sandbox pods on %s:%d",
                    config.listenHost(), listening.actualPort()))
        .onFailure(
            failure ->
                LOGGER.errorf(
                    "the egress proxy cannot listen on %s:%d: %s",
                    config.listenHost(), config.listenPort().get(), failure.getMessage()));
    vertx.setPeriodic(GRANT_TTL_NANOS / 1_000_000, id -> sweep());
  }

  void stop(@Observes ShutdownEvent event) {
    if (server != null) {
      server.close();
    }
  }

  /** The port this replica serves pods on, once listening (0 if it does not). */
  public int port() {
    return server == null ? 0 : server.actualPort();
  }

  /**
   * Reads a connection's request head, if its address (and the port as a whole) has not too many
   * connections doing so: until its head proves a sandbox, a connection is anyone's, and it may
   * hold a head's buffer for the head's time limit.
   */
  private void accept(NetSocket connection) {
    String from = connection.remoteAddress().host();
    int mine = unread.merge(from, 1, Integer::sum);
    if (mine > MAX_UNREAD_PER_ADDRESS || unreadInAll.incrementAndGet() > MAX_UNREAD) {
      if (mine <= MAX_UNREAD_PER_ADDRESS) {
        unreadInAll.decrementAndGet();
      }
      headRead(from);
      EgressProxy.answer(
          connection,
          503,
          mine > MAX_UNREAD_PER_ADDRESS
              ? "this address has " + MAX_UNREAD_PER_ADDRESS + " connections not yet authenticated"
              : "the proxy has " + MAX_UNREAD + " connections not yet authenticated");
      return;
    }
    java.util.concurrent.atomic.AtomicBoolean reading =
        new java.util.concurrent.atomic.AtomicBoolean(true);
    Runnable headDone =
        () -> {
          if (reading.compareAndSet(true, false)) {
            unreadInAll.decrementAndGet();
            headRead(from);
          }
        };
    // the connection's one close handler, from now on: a client that leaves while its grant is
    // looked up is counted off all the same
    Closing closing = Closing.of(connection, headDone);
    proxy.readHead(
        connection,
        (head, rest) -> {
          headDone.run();
          authenticate(connection, head, rest, closing);
        });
  }

  /** Counts off one connection of {@code from} that no longer waits for its head. */
  private void headRead(String from) {
    unread.computeIfPresent(from, (address, count) -> count <= 1 ? null : count - 1);
  }

  private void authenticate(NetSocket connection, String head, Buffer rest, Closing closing) {
    String[] lines = head.split("\r\n");
    Optional<String> sandboxId = sandboxOf(lines);
    if (sandboxId.isEmpty()) {
      connection
          .write(
              Buffer.buffer(
                  "HTTP/1.1 407 Proxy Authentication Required\r\n"
                      + "Proxy-Authenticate: Basic realm=\"corral egress\"\r\n"
                      + "Content-Length: 0\r\nConnection: close\r\n\r\n"))
          .onComplete(ignored -> connection.close());
      return;
    }
    String id = sandboxId.get();
    grant(id, false)
        .subscribe()
        .with(
            grant -> {
              if (grant.isEmpty()) {
                EgressProxy.answer(
                    connection,
                    403,
                    "sandbox " + id + " is not running, or its networking is none");
                return;
              }
              if (closing.closed()) {
                return; // the client left while its grant was looked up
              }
              AtomicInteger count = open.computeIfAbsent(id, ignored -> new AtomicInteger());
              if (!proxy.admitted(connection, count)) {
                return;
              }
              // registered in one step with the sweep's removal of a sandbox without connections
              Map<NetSocket, EgressGrant> mine =
                  connections.compute(
                      id,
                      (ignored, sockets) -> {
                        Map<NetSocket, EgressGrant> held =
                            sockets == null ? new ConcurrentHashMap<>() : sockets;
                        held.put(connection, grant.get());
                        return held;
                      });
              closing.add(
                  () -> {
                    count.decrementAndGet();
                    mine.remove(connection);
                  });
              if (!closing.closed()) {
                proxy.route(connection, grant.get(), head, rest, closing);
              }
            },
            failure -> {
              LogFields.sandbox(id)
                  .log(
                      () ->
                          LOGGER.warnf(
                              "sandbox=%s egress grant unknown: %s", id, failure.getMessage()));
              EgressProxy.answer(connection, 503, "corral cannot check this sandbox right now");
            });
  }

  /** The sandbox a request's Proxy-Authorization proves, if it proves one. */
  private Optional<String> sandboxOf(String[] lines) {
    for (int i = 1; i < lines.length; i++) {
      String line = lines[i];
      if (!line.toLowerCase(Locale.ROOT).startsWith("proxy-authorization:")) {
        continue;
      }
      String value = line.substring(line.indexOf(':') + 1).trim();
      if (!value.regionMatches(true, 0, "Basic ", 0, 6)) {
        return Optional.empty();
      }
      String pair;
      try {
        pair =
            new String(
                Base64.getDecoder().decode(value.substring(6).trim()), StandardCharsets.UTF_8);
      } catch (IllegalArgumentException malformed) {
        return Optional.empty();
      }
      int colon = pair.indexOf(':');
      if (colon <= 0) {
        return Optional.empty();
      }
      String id = pair.substring(0, colon);
      return signatures.verify(PURPOSE + id, pair.substring(colon + 1))
          ? Optional.of(id)
          : Optional.empty();
    }
    return Optional.empty();
  }

  private Uni<Optional<EgressGrant>> grant(String sandboxId, boolean fresh) {
    Cached cached = cache.get(sandboxId);
    if (!fresh && cached != null && System.nanoTime() - cached.at() < GRANT_TTL_NANOS) {
      return Uni.createFrom().item(cached.grant());
    }
    return grants
        .grantOf(sandboxId)
        .invoke(
            grant -> {
              if (cache.size() > 10_000) {
                cache.clear();
              }
              cache.put(sandboxId, new Cached(grant, System.nanoTime()));
            });
  }

  /**
   * Closes the open connections of sandboxes that may no longer reach anything, and those admitted
   * under networking the sandbox's environment no longer grants (they would go on under the old
   * one; the sandbox opens them again under the new).
   */
  private void sweep() {
    connections.forEach(
        (id, sockets) -> {
          if (sockets.isEmpty()) {
            // in one step with a registration (which may come meanwhile), and the count with it
            // once nothing holds a place in it
            connections.computeIfPresent(
                id,
                (ignored, held) -> {
                  if (!held.isEmpty()) {
                    return held;
                  }
                  open.computeIfPresent(id, (same, count) -> count.get() == 0 ? null : count);
                  return null;
                });
            return;
          }
          grant(id, true)
              .subscribe()
              .with(
                  grant -> {
                    if (grant.isEmpty()) {
                      LogFields.sandbox(id)
                          .log(
                              () ->
                                  LOGGER.infof(
                                      "sandbox=%s ended: its egress connections close", id));
                      sockets.keySet().forEach(NetSocket::close);
                      return;
                    }
                    sockets.forEach(
                        (socket, admitted) -> {
                          if (!sameReach(admitted, grant.get())) {
                            socket.close();
                          }
                        });
                  },
                  failure -> LOGGER.debugf("sandbox=%s not checked: %s", id, failure.getMessage()));
        });
  }

  /** Whether a connection admitted under {@code admitted} may go on under {@code now}. */
  private static boolean sameReach(EgressGrant admitted, EgressGrant now) {
    return admitted.networking().equals(now.networking())
        && java.util.Objects.equals(admitted.sessionId(), now.sessionId());
  }
}
