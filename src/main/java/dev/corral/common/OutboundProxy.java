package dev.corral.common;

import io.quarkus.runtime.StartupEvent;
import io.vertx.core.Future;
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
import java.net.InetSocketAddress;
import java.net.Proxy;
import java.net.ProxySelector;
import java.net.URI;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import org.jboss.logging.Logger;

/**
 * The proxy that corral's own HTTP clients go through when they call a URL a tenant chose (an MCP
 * server, an OAuth token endpoint), on an ephemeral port of 127.0.0.1. It looks the host up once,
 * checks every address as {@link OutboundAddresses} does, and connects to the address it checked.
 * The JDK's HTTP client cannot be told which address to connect to and would look the name up
 * again, so a name that changes its answer after corral's check (DNS rebinding) would otherwise
 * lead it to loopback or the cloud's metadata service. HTTPS goes through CONNECT (TLS stays end to
 * end, the certificate checked against the host's name); plain HTTP one request per connection.
 *
 * <p>Anything on the host's loopback can use it, and reach through it only what corral's server may
 * reach (public addresses and {@code corral.outbound.allowed-networks}), which the host reaches
 * directly anyway; local sandboxes have network namespaces of their own.
 */
@ApplicationScoped
public class OutboundProxy {

  private static final Logger LOGGER = Logger.getLogger(OutboundProxy.class);
  private static final String WHO = "corral outbound";

  /** Connections open through the proxy at most; more are refused. */
  static final int MAX_CONNECTIONS = 1024;

  /** Interim (1xx) heads passed back before a response's final one. */
  private static final int MAX_INTERIM = 4;

  /** The largest response head passed back (a server's cookies can be many). */
  private static final int MAX_RESPONSE_HEAD = 64 * 1024;

  /** Failures kept (the latest per host and port, the least recent dropped first). */
  static final int MAX_FAILURES_KEPT = 256;

  /** Where nothing listens: the clients' requests fail until the proxy listens. */
  private static final InetSocketAddress NOWHERE = new InetSocketAddress("127.0.0.1", 1);

  private final Vertx vertx;
  private final OutboundAddresses addresses;
  private final AtomicInteger open = new AtomicInteger();
  private final AtomicLong connected = new AtomicLong();
  private volatile InetSocketAddress listening;

  /**
   * The latest failures, by host and port: the clients see only an HTTP answer or a tunnel error.
   */
  private final Map<String, Failed> failures =
      Collections.synchronizedMap(
          new LinkedHashMap<>(16, 0.75f, true) {
            @Override
            protected boolean removeEldestEntry(Map.Entry<String, Failed> eldest) {
              return size() > MAX_FAILURES_KEPT;
            }
          });

  private record Failed(String why, long at) {}

  private NetServer server;
  private NetClient client;

  OutboundProxy(Vertx vertx, OutboundAddresses addresses) {
    this.vertx = vertx;
    this.addresses = addresses;
  }

  void start(@Observes StartupEvent event) {
    listen();
  }

  /** Starts listening (once); the clients' requests fail until it does. */
  synchronized void listen() {
    if (server != null) {
      return;
    }
    client =
        vertx.createNetClient(
            new NetClientOptions()
                .setConnectTimeout(10_000)
                .setIdleTimeout(10)
                .setIdleTimeoutUnit(TimeUnit.MINUTES));
    server =
        vertx.createNetServer(
            new NetServerOptions().setIdleTimeout(10).setIdleTimeoutUnit(TimeUnit.MINUTES));
    server.connectHandler(this::accept);
    server
        .listen(0, "127.0.0.1")
        .onSuccess(
            bound -> {
              listening = new InetSocketAddress("127.0.0.1", bound.actualPort());
              LOGGER.debugf("outbound proxy on %s", listening);
            })
        .onFailure(failure -> LOGGER.errorf("the outbound proxy did not start: %s", failure));
  }

  @PreDestroy
  synchronized void stop() {
    if (server != null) {
      server.close();
      client.close();
    }
  }

  /** What corral's HTTP clients are given, so that every request of theirs goes through here. */
  public ProxySelector selector() {
    return new ProxySelector() {
      @Override
      public List<Proxy> select(URI uri) {
        InetSocketAddress at = listening;
        return List.of(new Proxy(Proxy.Type.HTTP, at == null ? NOWHERE : at));
      }

      @Override
      public void connectFailed(URI uri, java.net.SocketAddress address, IOException failure) {
        LOGGER.debugf("the outbound proxy could not be reached for %s: %s", uri, failure);
      }
    };
  }

  /** Where the proxy listens, once it does. */
  Optional<InetSocketAddress> listening() {
    return Optional.ofNullable(listening);
  }

  /** Connections made to a checked address since start (for tests and metrics). */
  public long connections() {
    return connected.get();
  }

  /**
   * Why the proxy last refused or failed a connection to the host and port of {@code url} at or
   * after {@code sinceNanos} ({@link System#nanoTime()}), if it did: what a client that got the
   * proxy's answer, or a failed tunnel, says instead ("could not be reached: connection refused",
   * "may not be called: ... is at a link-local address ...").
   */
  public Optional<String> failureSince(String url, long sinceNanos) {
    URI uri;
    try {
      uri = URI.create(url);
    } catch (IllegalArgumentException malformed) {
      return Optional.empty();
    }
    if (uri.getHost() == null) {
      return Optional.empty();
    }
    int port =
        uri.getPort() > 0 ? uri.getPort() : "https".equalsIgnoreCase(uri.getScheme()) ? 443 : 80;
    String host = uri.getHost();
    if (host.startsWith("[") && host.endsWith("]")) {
      host = host.substring(1, host.length() - 1);
    }
    Failed failed = failures.get(key(host.toLowerCase(Locale.ROOT), port));
    return failed != null && failed.at() - sinceNanos >= 0
        ? Optional.of(failed.why())
        : Optional.empty();
  }

  private static String key(String host, int port) {
    return host + " " + port;
  }

  private void fail(NetSocket connection, ProxyWire.Target target, int status, String why) {
    failures.put(key(target.host(), target.port()), new Failed(why, System.nanoTime()));
    ProxyWire.answer(connection, WHO, status, why);
  }

  /** A connection's failure as a client would have put it, had it connected itself. */
  private static String unreachable(Throwable failure) {
    String message = String.valueOf(failure.getMessage());
    if (message.contains("timed out")) {
      return "could not be reached: connection timed out";
    }
    if (failure instanceof java.net.ConnectException) {
      return "could not be reached: connection refused";
    }
    return "could not be reached (" + message + ")";
  }

  /**
   * Passes the one response of a plain request back with {@code Connection: close}, and ends the
   * client's connection with the server's. A client keeps a connection to a proxy for any later
   * plain request, whatever its server (the JDK's pool does); without this, a server that answered
   * keep-alive and held its connection would get the next request of any tenant, secrets and all.
   */
  private void answerOnce(
      NetSocket connection,
      NetSocket upstream,
      ProxyWire.Target target,
      AtomicBoolean clientGone,
      Buffer already,
      int interimLeft) {
    ProxyWire.readHead(
        vertx,
        upstream,
        MAX_RESPONSE_HEAD,
        0, // the client's own timeout bounds the wait; its close closes the server's connection
        already,
        (head, after) -> {
          String answer;
          try {
            if (ProxyWire.interim(head) && interimLeft > 0) {
              // passed on as it is; the final head comes after (a few at most: each is read in
              // the last one's callback)
              connection.write(Buffer.buffer(head + "\r\n\r\n", "ISO-8859-1"));
              answerOnce(connection, upstream, target, clientGone, after, interimLeft - 1);
              return;
            }
            answer = ProxyWire.closingResponse(head);
          } catch (IllegalArgumentException unusable) {
            upstream.close();
            fail(connection, target, 502, "answered with " + unusable.getMessage());
            return;
          }
          connection.write(Buffer.buffer(answer, "ISO-8859-1"));
          if (after.length() > 0) {
            connection.write(after);
          }
          upstream.pipeTo(connection);
        },
        (status, reason) -> {
          upstream.close();
          if (!clientGone.get()) { // a client that gave up is no failure of the server's
            fail(connection, target, 502, "answered with an unusable head: " + reason);
          }
        });
  }

  private void accept(NetSocket connection) {
    if (open.incrementAndGet() > MAX_CONNECTIONS) {
      open.decrementAndGet();
      ProxyWire.answer(connection, WHO, 503, MAX_CONNECTIONS + " connections are open, the limit");
      return;
    }
    AtomicBoolean gone = new AtomicBoolean();
    connection.closeHandler(
        ignored -> {
          gone.set(true);
          open.decrementAndGet();
        });
    ProxyWire.readHead(vertx, connection, WHO, (head, rest) -> route(connection, head, rest, gone));
  }

  private void route(NetSocket connection, String head, Buffer rest, AtomicBoolean gone) {
    String[] lines = head.split("\r\n");
    String[] first = lines[0].split(" ");
    if (first.length != 3 || !first[2].startsWith("HTTP/1.")) {
      ProxyWire.answer(connection, WHO, 400, "not an HTTP/1 proxy request");
      return;
    }
    String method = first[0].toUpperCase(Locale.ROOT);
    ProxyWire.Target target;
    try {
      target = ProxyWire.Target.of(method, first[1]);
    } catch (IllegalArgumentException malformed) {
      ProxyWire.answer(connection, WHO, 400, malformed.getMessage());
      return;
    }
    addresses
        .resolve("outbound " + target.host(), target.host())
        .subscribe()
        .with(
            address -> connect(connection, method, target, lines, rest, address, gone),
            refused ->
                fail(
                    connection,
                    target,
                    403,
                    refused instanceof FailedPreconditionException
                        ? "may not be called: " + refused.getMessage()
                        : "could not be reached: " + refused.getMessage()));
  }

  private void connect(
      NetSocket connection,
      String method,
      ProxyWire.Target target,
      String[] lines,
      Buffer rest,
      InetAddress address,
      AtomicBoolean gone) {
    Future<NetSocket> connecting;
    try {
      connecting =
          client.connect(SocketAddress.inetSocketAddress(target.port(), address.getHostAddress()));
    } catch (IllegalStateException closed) { // corral is stopping: its client closed
      ProxyWire.answer(connection, WHO, 503, "corral is stopping");
      return;
    }
    connecting
        .onSuccess(
            upstream -> {
              connected.incrementAndGet();
              if (method.equals("CONNECT")) {
                connection.write(Buffer.buffer("HTTP/1.1 200 Connection established\r\n\r\n"));
                ProxyWire.join(connection, upstream, rest);
                return;
              }
              upstream.write(
                  Buffer.buffer(ProxyWire.originForm(method, target, lines), "ISO-8859-1"));
              answerOnce(connection, upstream, target, gone, Buffer.buffer(), MAX_INTERIM);
              if (rest.length() > 0) {
                upstream.write(rest);
              }
              // the client's end closes the server's connection, once it is known to be the
              // client's doing (so that the server's end that follows is not taken for its failure)
              connection
                  .pipe()
                  .endOnComplete(false)
                  .to(upstream)
                  .onComplete(
                      ended -> {
                        if (ended.succeeded()) { // the client's stream ended, not a write failed
                          gone.set(true);
                        }
                        upstream.close();
                      });
            })
        .onFailure(failure -> fail(connection, target, 502, unreachable(failure)));
  }
}
