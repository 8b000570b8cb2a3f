package dev.corral.egress;

import dev.corral.common.LogBudget;
import dev.corral.common.ProxyWire;
import dev.corral.common.ProxyWire.Target;
import dev.corral.proto.v1.NetworkMode;
import io.micrometer.core.instrument.MeterRegistry;
import io.quarkus.runtime.StartupEvent;
import io.smallrye.mutiny.Uni;
import io.vertx.core.Vertx;
import io.vertx.core.buffer.Buffer;
import io.vertx.core.net.NetClient;
import io.vertx.core.net.NetClientOptions;
import io.vertx.core.net.NetServer;
import io.vertx.core.net.NetServerOptions;
import io.vertx.core.net.NetSocket;
import io.vertx.core.net.SocketAddress;
import jakarta.annotation.PreDestroy;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Observes;
import java.io.IOException;
import java.net.InetAddress;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFileAttributeView;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.BiConsumer;
import org.jboss.logging.Logger;

/**
 * The egress proxy: one Unix socket per sandbox, which its driver makes the sandbox's only way out
 * (a local sandbox reaches it through a forwarder on 127.0.0.1 inside its network namespace). It
 * speaks HTTP CONNECT and plain HTTP (one request per connection), admits what the sandbox's {@link
 * EgressGrant} allows, resolves the name itself and connects to the address it checked. Requests to
 * the git host go to the {@link GitGateway}. A refusal is an HTTP 403 with the reason, counted,
 * logged and recorded in the session's log ({@link EgressDenials}).
 */
@ApplicationScoped
public class EgressProxy {

  private static final Logger LOGGER = Logger.getLogger(EgressProxy.class);
  private static final String WHO = "corral egress";

  /** Refusals logged a minute per sandbox. */
  static final int LOG_BUDGET = 20;

  private final LogBudget logBudget = new LogBudget(LOG_BUDGET);

  /** How long a tunnel under an allow-list waits for its client's first bytes. */
  static final long OPENING_TIMEOUT_MS = 10_000;

  private final EgressConfig config;
  private final Destinations destinations;
  private final EgressDenials denials;
  private final GitGateway git;
  private final Vertx vertx;
  private final MeterRegistry metrics;
  private final Map<String, Served> served = new ConcurrentHashMap<>();
  private final GrantSource grants;
  private Path directory; // made at the first sandbox
  private NetClient client;

  EgressProxy(
      EgressConfig config,
      Destinations destinations,
      EgressDenials denials,
      GitGateway git,
      GrantSource grants,
      Vertx vertx,
      MeterRegistry metrics) {
    this.grants = grants;
    this.config = config;
    this.destinations = destinations;
    this.denials = denials;
    this.git = git;
    this.vertx = vertx;
    this.metrics = metrics;
  }

  private record Served(EgressGrant grant, NetServer server, Path socket, AtomicInteger open) {}

  /** Whether this replica can serve sandboxes' egress (Unix sockets need the native transport). */
  public boolean available() {
    return vertx.isNativeTransportEnabled();
  }

  /**
   * A directory that a new sandbox binds (read-only) at {@code /run/corral}: its socket appears
   * there once {@link #serve} is called for it. With {@code uid} (the sandbox's own user, when
   * corral runs as root) only that user may enter it: its path is on the sandbox's command line,
   * which every user of the host can read, and its socket is the sandbox's way out (its git
   * credentials included).
   *
   * @param uid the sandbox's user, or -1 when sandboxes run as corral's own user
   */
  public Path directoryFor(String key, int uid) {
    Path own = null;
    try {
      own = Files.createDirectory(directory().resolve(key));
      if (uid >= 0) {
        Files.setAttribute(own, "unix:uid", uid, LinkOption.NOFOLLOW_LINKS);
      }
      Files.getFileAttributeView(own, PosixFileAttributeView.class, LinkOption.NOFOLLOW_LINKS)
          .setPermissions(PosixFilePermissions.fromString(uid >= 0 ? "r-x------" : "rwxr-xr-x"));
      return own;
    } catch (IOException e) {
      if (own != null) {
        removeDirectory(own);
      }
      throw new java.io.UncheckedIOException("cannot make " + key + "'s egress directory", e);
    }
  }

  /**
   * This replica's directory of sockets: {@code <socket-directory>-<pid>-<random>}, made at once
   * with a name nobody could guess before (so that another user of the host cannot have made it
   * first and kept it), owned by corral's user, and entered but not listed or written by others.
   */
  synchronized Path directory() throws IOException {
    // made again if it went (a cleaner of /tmp removes directories left empty long enough)
    if (directory == null || !Files.isDirectory(directory, LinkOption.NOFOLLOW_LINKS)) {
      removeLeftovers();
      Path base = Path.of(config.socketDirectory()).toAbsolutePath();
      Path made =
          Files.createTempDirectory(
              base.getParent(), base.getFileName() + "-" + ProcessHandle.current().pid() + "-");
      Files.setPosixFilePermissions(made, PosixFilePermissions.fromString("rwx--x--x"));
      directory = made;
    }
    return directory;
  }

  /** Removes a sandbox's directory (and a socket left in it), once the sandbox is gone. */
  public static void removeDirectory(Path sandboxDirectory) {
    try {
      Files.deleteIfExists(sandboxDirectory.resolve("egress.sock"));
      Files.deleteIfExists(sandboxDirectory);
    } catch (IOException e) {
      LOGGER.debugf("%s not removed: %s", sandboxDirectory, e.getMessage());
    }
  }

  /** Serves {@code grant}'s sandbox through a socket in {@code directory}. */
  public Uni<Void> serve(Path sandboxDirectory, EgressGrant grant) {
    Path socket = sandboxDirectory.resolve("egress.sock");
    NetServer server =
        vertx.createNetServer(
            new NetServerOptions().setIdleTimeout((int) config.idleTimeout().toSeconds()));
    AtomicInteger open = new AtomicInteger();
    server.connectHandler(connection -> accept(connection, grant, open));
    return Uni.createFrom()
        .completionStage(
            () ->
                server
                    .listen(SocketAddress.domainSocketAddress(socket.toString()))
                    .toCompletionStage())
        .invoke(
            listening -> {
              try {
                Files.setPosixFilePermissions(socket, PosixFilePermissions.fromString("rw-rw-rw-"));
              } catch (IOException e) {
                throw new java.io.UncheckedIOException(e);
              }
              Served previous =
                  served.put(grant.sandboxId(), new Served(grant, server, socket, open));
              if (previous != null) {
                previous.server().close();
              }
              if (grant.networking().getMode() == NetworkMode.NETWORK_MODE_UNRESTRICTED) {
                grant
                    .logFields()
                    .log(
                        () ->
                            LOGGER.infof(
                                "sandbox=%s tenant=%s egress is UNRESTRICTED (any public host)",
                                grant.sandboxId(), grant.tenant().id()));
              }
            })
        .replaceWithVoid();
  }

  /** Stops serving a sandbox: its socket goes, and its open connections close. */
  public void stop(String sandboxId) {
    Served gone = served.remove(sandboxId);
    if (gone != null) {
      gone.server().close();
      deleteSocket(sandboxId, gone.socket());
    }
  }

  private static void deleteSocket(String sandboxId, Path socket) {
    try {
      Files.deleteIfExists(socket);
    } catch (IOException e) {
      LOGGER.debugf("sandbox=%s egress socket not removed: %s", sandboxId, e.getMessage());
    }
  }

  /** How often the grants of the sandboxes this replica serves are read again. */
  static final long REFRESH_MS = 5_000;

  void startRefreshing(@Observes StartupEvent event) {
    vertx.setPeriodic(REFRESH_MS, id -> refreshAll());
  }

  /**
   * Reads again what each sandbox served here may reach, as a pod's grant is: a sandbox that ended,
   * or whose environment now grants it nothing, is no longer served (its socket goes, its open
   * connections close); one whose environment's networking changed is served under the new grant,
   * and its open connections close, so that none goes on under the old one. (A sandbox that had no
   * network when it started gets none later: it has no socket.)
   */
  void refreshAll() {
    served.forEach(
        (sandboxId, current) ->
            grants
                .now(sandboxId)
                .subscribe()
                .with(
                    now -> {
                      if (now.provisioning() || served.get(sandboxId) != current) {
                        return; // still setting up, or stopped or served anew meanwhile
                      }
                      Optional<EgressGrant> fresh = now.grant();
                      if (fresh.isEmpty()) {
                        LOGGER.infof(
                            "sandbox=%s egress stopped: the sandbox ended or its environment"
                                + " grants it nothing now",
                            sandboxId);
                        stop(sandboxId);
                      } else if (!fresh.get().networking().equals(current.grant().networking())) {
                        LOGGER.infof(
                            "sandbox=%s egress now follows its environment's changed networking",
                            sandboxId);
                        // the old server's socket must be gone before the new one binds its path
                        // (closing a server unlinks its socket file, whenever the close ends)
                        served.remove(sandboxId, current);
                        Uni.createFrom()
                            .completionStage(() -> current.server().close().toCompletionStage())
                            .onFailure()
                            .recoverWithNull()
                            .invoke(closed -> deleteSocket(sandboxId, current.socket()))
                            .flatMap(closed -> serve(current.socket().getParent(), fresh.get()))
                            .subscribe()
                            .with(
                                served -> {},
                                failure ->
                                    LOGGER.warnf(
                                        "sandbox=%s egress not served again: %s",
                                        sandboxId, failure.getMessage()));
                      }
                    },
                    failure ->
                        LOGGER.debugf(
                            "sandbox=%s egress grant not read again: %s",
                            sandboxId, failure.getMessage())));
  }

  /** The grant of a sandbox this replica serves. */
  Optional<EgressGrant> grantOf(String sandboxId) {
    return Optional.ofNullable(served.get(sandboxId)).map(Served::grant);
  }

  void stopAll() {
    served.keySet().forEach(this::stop);
  }

  /** At shutdown: every socket closes, and the directory of sockets goes. */
  @PreDestroy
  synchronized void shutDown() {
    stopAll();
    if (directory != null) {
      removeTree(directory);
      directory = null;
    }
  }

  /**
   * Removes the socket directories of replicas of this host that are gone: those named for a
   * process that no longer runs, or for this one (a container's corral has the same pid at every
   * start, and this replica has made none yet), and owned by corral's user (another user's are not
   * walked).
   */
  private void removeLeftovers() {
    Path base = Path.of(config.socketDirectory()).toAbsolutePath();
    String prefix = base.getFileName() + "-";
    try (var siblings = Files.list(base.getParent())) {
      Object ours = Files.getAttribute(Path.of("/proc/self"), "unix:uid");
      for (Path sibling : siblings.toList()) {
        String name = sibling.getFileName().toString();
        java.util.regex.Matcher named =
            LEFTOVER.matcher(name.startsWith(prefix) ? name.substring(prefix.length()) : "");
        if (!named.matches()) {
          continue;
        }
        long pid = Long.parseLong(named.group(1));
        if ((pid == ProcessHandle.current().pid() || ProcessHandle.of(pid).isEmpty())
            && Files.isDirectory(sibling, LinkOption.NOFOLLOW_LINKS)
            && ours.equals(Files.getAttribute(sibling, "unix:uid", LinkOption.NOFOLLOW_LINKS))) {
          removeTree(sibling);
        }
      }
    } catch (IOException | java.io.UncheckedIOException e) {
      LOGGER.debugf("old egress directories not removed: %s", e.getMessage());
    }
  }

  /** What follows the prefix in a socket directory's name: a pid, then a random number. */
  private static final java.util.regex.Pattern LEFTOVER =
      java.util.regex.Pattern.compile("([0-9]{1,10})(-[0-9]+)?");

  private static void removeTree(Path root) {
    try (var files = Files.walk(root)) {
      for (Path file : files.sorted(java.util.Comparator.reverseOrder()).toList()) {
        Files.deleteIfExists(file);
      }
    } catch (IOException | java.io.UncheckedIOException e) {
      LOGGER.debugf("%s not removed: %s", root, e.getMessage());
    }
  }

  // --- one connection ---------------------------------------------------------------------------

  private void accept(NetSocket connection, EgressGrant grant, AtomicInteger open) {
    if (!admitted(connection, open)) {
      return;
    }
    Closing closing = Closing.of(connection, open::decrementAndGet);
    readHead(connection, (head, rest) -> route(connection, grant, head, rest, closing));
  }

  /** Counts a connection of a sandbox against its limit; refuses it past the limit. */
  boolean admitted(NetSocket connection, AtomicInteger open) {
    if (open.incrementAndGet() > config.maxConnectionsPerSandbox()) {
      open.decrementAndGet();
      answer(
          connection,
          503,
          "this sandbox has " + config.maxConnectionsPerSandbox() + " connections open, its limit");
      return false;
    }
    return true;
  }

  /** Reads a request's head (bounded in size and time), then hands it on, the connection paused. */
  void readHead(NetSocket connection, BiConsumer<String, Buffer> then) {
    ProxyWire.readHead(vertx, connection, WHO, then);
  }

  /** The request's first line and headers, and the bytes the client sent after them. */
  void route(NetSocket connection, EgressGrant grant, String head, Buffer rest, Closing closing) {
    String[] lines = head.split("\r\n");
    String[] first = lines[0].split(" ");
    if (first.length != 3 || !first[2].startsWith("HTTP/1.")) {
      answer(connection, 400, "not an HTTP/1 proxy request");
      return;
    }
    String method = first[0].toUpperCase(Locale.ROOT);
    Target target;
    try {
      target = Target.of(method, first[1]);
    } catch (IllegalArgumentException malformed) {
      answer(connection, 400, malformed.getMessage());
      return;
    }
    if (!method.equals("CONNECT") && target.host().equals(config.gitHost())) {
      git.forward(connection, grant, method, target, lines, rest, closing);
      return;
    }
    Optional<EgressRefusedException> refused = policyRefusal(grant, target);
    if (refused.isPresent()) {
      refuse(connection, grant, target, refused.get());
      return;
    }
    destinations
        .resolve("tenant " + grant.tenant().id(), target.host())
        .subscribe()
        .with(
            address ->
                destinations
                    .ownServer(address, target.port())
                    .ifPresentOrElse(
                        own -> refuse(connection, grant, target, own),
                        () -> connect(connection, grant, method, target, lines, rest, address)),
            failure ->
                refuse(
                    connection,
                    grant,
                    target,
                    failure instanceof EgressRefusedException egress
                        ? egress
                        : new EgressRefusedException(
                            "unresolvable", target.host() + " could not be resolved")));
  }

  /** Why the environment does not allow {@code target}, if it does not. */
  private Optional<EgressRefusedException> policyRefusal(EgressGrant grant, Target target) {
    var networking = grant.networking();
    switch (networking.getMode()) {
      case NETWORK_MODE_UNRESTRICTED -> {
        return Optional.empty();
      }
      case NETWORK_MODE_LIMITED -> {
        if (!HostPatterns.allows(networking.getAllowedHostsList(), target.host())) {
          return Optional.of(
              new EgressRefusedException(
                  "not_allowed", target.host() + " is not in the environment's allowed_hosts"));
        }
        List<Integer> ports =
            networking.getAllowedPortsCount() == 0
                ? List.of(80, 443)
                : networking.getAllowedPortsList();
        if (!ports.contains(target.port())) {
          return Optional.of(
              new EgressRefusedException(
                  "not_allowed",
                  "port " + target.port() + " is not in the environment's allowed_ports " + ports));
        }
        return Optional.empty();
      }
      default -> {
        return Optional.of(
            new EgressRefusedException(
                "networking_none", "the environment's networking is none: no host may be reached"));
      }
    }
  }

  /**
   * Sends the body of a plain request upstream, and its answer back; bytes the client sends after
   * the body (a second request, pipelined or on a connection kept alive, whose Host no policy
   * checked) never reach the host: they close both connections, so that the client opens a new one
   * rather than wait for an answer that will not come.
   */
  private static void forwardOne(
      NetSocket connection, NetSocket upstream, RequestBody body, Buffer rest) {
    upstream.pipeTo(connection);
    io.vertx.core.Handler<Buffer> feed =
        bytes -> {
          if (body.done()) {
            upstream.close();
            connection.close();
            return;
          }
          try {
            body.feed(bytes);
          } catch (IllegalArgumentException malformed) {
            upstream.close();
            return;
          }
          upstream.write(bytes.getBuffer(0, body.taken()));
          if (body.done() && body.taken() < bytes.length()) {
            upstream.close();
            connection.close();
          } else if (!body.done() && upstream.writeQueueFull()) {
            connection.pause();
            upstream.drainHandler(ignored -> connection.resume());
          }
        };
    connection.endHandler(ignored -> upstream.close());
    if (rest.length() > 0) {
      feed.handle(rest);
    }
    connection.handler(feed);
    connection.resume();
  }

  private void connect(
      NetSocket connection,
      EgressGrant grant,
      String method,
      Target target,
      String[] lines,
      Buffer rest,
      InetAddress address) {
    RequestBody body;
    try {
      // a plain request is forwarded alone: its body as framed, nothing after it
      body = method.equals("CONNECT") ? null : RequestBody.of(lines);
    } catch (IllegalArgumentException malformed) {
      answer(connection, 400, malformed.getMessage());
      return;
    }
    client()
        .connect(SocketAddress.inetSocketAddress(target.port(), address.getHostAddress()))
        .onSuccess(
            upstream -> {
              metrics.counter("corral.egress.connections", "outcome", "ok").increment();
              if (method.equals("CONNECT")) {
                connection.write(Buffer.buffer("HTTP/1.1 200 Connection established\r\n\r\n"));
                if (grant.networking().getMode() == NetworkMode.NETWORK_MODE_LIMITED) {
                  opening(connection, upstream, grant, target, rest);
                  return;
                }
              } else {
                upstream.write(
                    Buffer.buffer(ProxyWire.originForm(method, target, lines), "ISO-8859-1"));
                forwardOne(connection, upstream, body, rest);
                return;
              }
              ProxyWire.join(connection, upstream, rest);
            })
        .onFailure(
            failure -> {
              metrics.counter("corral.egress.connections", "outcome", "failed").increment();
              answer(
                  connection,
                  502,
                  target.host()
                      + ":"
                      + target.port()
                      + " could not be reached ("
                      + failure.getMessage()
                      + ")");
            });
  }

  /**
   * A tunnel under an allow-list: its first bytes must not name another host than its own ({@link
   * TunnelOpening}); they are held, up to {@link TunnelOpening#MAX_BYTES} and {@link
   * #OPENING_TIMEOUT_MS}, until they say. A client that says nothing in that time (a protocol whose
   * server speaks first) is not let through either.
   */
  private void opening(
      NetSocket connection, NetSocket upstream, EgressGrant grant, Target target, Buffer rest) {
    upstream.pause(); // what the server sends first waits for the verdict
    Buffer seen = Buffer.buffer().appendBuffer(rest);
    // the timer fires on the upstream's event loop, the handlers on the client's
    java.util.concurrent.atomic.AtomicBoolean decided =
        new java.util.concurrent.atomic.AtomicBoolean();
    long timer =
        vertx.setTimer(
            OPENING_TIMEOUT_MS,
            ignored -> {
              if (decided.compareAndSet(false, true)) {
                refuseTunnel(
                    connection,
                    upstream,
                    grant,
                    target,
                    "the client sent no TLS ClientHello or HTTP request within "
                        + OPENING_TIMEOUT_MS
                        + " ms");
              }
            });
    TunnelOpening opening = new TunnelOpening(target.host(), target.port());
    java.util.function.Consumer<Buffer> decide =
        chunk -> {
          if (decided.get()) {
            return;
          }
          byte[] bytes = chunk.getBytes();
          TunnelOpening.Verdict verdict = opening.add(bytes, 0, bytes.length);
          if (verdict instanceof TunnelOpening.Verdict.NeedMore) {
            if (seen.length() < TunnelOpening.MAX_BYTES) {
              return;
            }
            verdict = new TunnelOpening.Verdict.Refuse("its opening is too long to read");
          }
          if (!decided.compareAndSet(false, true)) {
            return;
          }
          vertx.cancelTimer(timer);
          connection.handler(null);
          connection.pause();
          if (verdict instanceof TunnelOpening.Verdict.Refuse refused) {
            refuseTunnel(connection, upstream, grant, target, refused.why());
          } else if (verdict instanceof TunnelOpening.Verdict.Request request) {
            oneRequest(connection, upstream, grant, target, request, seen);
          } else {
            ProxyWire.join(connection, upstream, seen);
          }
        };
    connection.handler(
        chunk -> {
          seen.appendBuffer(chunk);
          decide.accept(chunk);
        });
    // the end of the client's stream, not its close handler, which counts its connections
    connection.endHandler(
        ignored -> {
          if (decided.compareAndSet(false, true)) {
            vertx.cancelTimer(timer);
            upstream.close();
          }
        });
    decide.accept(rest);
    if (!decided.get()) {
      connection.resume();
    }
  }

  /**
   * A plain-HTTP tunnel carries the request its opening checked, and nothing after it: like a plain
   * request, it goes out with {@code Connection: close}, and bytes after its body close the tunnel
   * (a request kept alive or pipelined after it would name a host no check saw). An upgrade asked
   * for (a plain WebSocket, h2c) is not passed on, for the same reason.
   */
  private void oneRequest(
      NetSocket connection,
      NetSocket upstream,
      EgressGrant grant,
      Target target,
      TunnelOpening.Verdict.Request request,
      Buffer seen) {
    RequestBody body;
    try {
      body = RequestBody.of(request.lines());
    } catch (IllegalArgumentException malformed) {
      refuseTunnel(connection, upstream, grant, target, malformed.getMessage());
      return;
    }
    upstream.write(Buffer.buffer(ProxyWire.closingRequest(request.lines()), "ISO-8859-1"));
    forwardOne(connection, upstream, body, seen.getBuffer(request.headLength(), seen.length()));
  }

  private void refuseTunnel(
      NetSocket connection, NetSocket upstream, EgressGrant grant, Target target, String why) {
    record(
        grant,
        target,
        new EgressRefusedException(
            "not_allowed", "the tunnel to " + target.host() + " was closed: " + why));
    upstream.close();
    connection.close();
  }

  private void refuse(
      NetSocket connection, EgressGrant grant, Target target, EgressRefusedException refused) {
    record(grant, target, refused);
    answer(connection, 403, refused.getMessage());
  }

  /**
   * Counts, logs (at most {@link #LOG_BUDGET} lines a minute per sandbox) and records in the
   * session's log a refusal.
   */
  private void record(EgressGrant grant, Target target, EgressRefusedException refused) {
    metrics.counter("corral.egress.denied", "reason", refused.reason()).increment();
    LogBudget.Admission admission = logBudget.admit(grant.sandboxId());
    if (admission != LogBudget.Admission.DROP) {
      grant
          .logFields()
          .log(
              () ->
                  LOGGER.infof(
                      "sandbox=%s sessionId=%s tenant=%s egress to %s:%d refused: %s%s",
                      grant.sandboxId(),
                      grant.sessionId(),
                      grant.tenant().id(),
                      LogBudget.cut(target.host(), 253),
                      target.port(),
                      LogBudget.cut(refused.getMessage(), 512),
                      admission.note("refusals")));
    }
    denials.record(grant, target.host(), target.port(), refused.getMessage());
  }

  /** Answers with a status and a one-line reason, and closes. */
  static void answer(NetSocket connection, int status, String reason) {
    ProxyWire.answer(connection, WHO, status, reason);
  }

  private synchronized NetClient client() {
    if (client == null) {
      client =
          vertx.createNetClient(
              new NetClientOptions()
                  .setConnectTimeout((int) config.connectTimeout().toMillis())
                  .setIdleTimeout((int) config.idleTimeout().toSeconds())
                  .setIdleTimeoutUnit(TimeUnit.SECONDS));
    }
    return client;
  }
}
