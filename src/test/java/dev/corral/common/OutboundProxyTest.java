package dev.corral.common;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.sun.net.httpserver.HttpServer;
import io.vertx.core.Vertx;
import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The proxy corral's own HTTP clients go through, with a resolver whose answers the test chooses:
 * the name of a host that rebinds (loopback, allowed here, at the first lookup; the cloud's
 * metadata address afterwards), and a name only corral's resolver knows.
 */
class OutboundProxyTest {

  private static final Tenant TENANT = new Tenant("t1");

  private final AtomicInteger rebindingLookups = new AtomicInteger();
  private final Vertx vertx = Vertx.vertx();
  private HttpServer server;
  private final AtomicInteger served = new AtomicInteger();
  private OutboundAddresses addresses;
  private OutboundProxy proxy;
  private HttpClient client;

  @BeforeEach
  void start() throws Exception {
    server = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
    server.createContext(
        "/",
        exchange -> {
          served.incrementAndGet();
          byte[] body = "hello from loopback".getBytes(StandardCharsets.UTF_8);
          exchange.sendResponseHeaders(200, body.length);
          exchange.getResponseBody().write(body);
          exchange.close();
        });
    server.start();
    NameLookups lookups =
        new NameLookups(
            name -> {
              byte[] address =
                  switch (name) {
                    case "rebinding.test" ->
                        rebindingLookups.incrementAndGet() == 1
                            ? new byte[] {127, 0, 0, 1}
                            : new byte[] {(byte) 169, (byte) 254, (byte) 169, (byte) 254};
                    case "only-corral-knows.test" -> new byte[] {127, 0, 0, 1};
                    default -> null;
                  };
              if (address == null) {
                return io.smallrye.mutiny.Uni.createFrom()
                    .failure(new java.net.UnknownHostException(name));
              }
              return io.smallrye.mutiny.Uni.createFrom().item(List.of(named(name, address)));
            });
    addresses = new OutboundAddresses(lookups, Optional.of(List.of("127.0.0.0/8")));
    proxy = new OutboundProxy(vertx, addresses);
    proxy.listen();
    org.awaitility.Awaitility.await()
        .atMost(Duration.ofSeconds(10))
        .until(() -> proxy.listening().isPresent());
    client =
        HttpClient.newBuilder()
            .connectTimeout(Duration.ofSeconds(5))
            .followRedirects(HttpClient.Redirect.NEVER)
            .proxy(proxy.selector())
            .build();
  }

  @AfterEach
  void stop() {
    server.stop(0);
    proxy.stop();
    vertx.close();
  }

  @Test
  void aNameThatRebindsAfterTheCheckIsRefusedAtTheConnectionNotCalled() throws Exception {
    // Given a host that passes corral's check (its first answer is loopback, allowed here)
    String url = "http://rebinding.test:" + server.getAddress().getPort() + "/token";
    addresses.check(TENANT, "its host", url).await().atMost(Duration.ofSeconds(10));

    // When the call is made, and the name now answers with the metadata service's address
    long started = System.nanoTime();
    HttpResponse<String> answer = send(url);

    // Then the connection goes nowhere: the address it would use is checked, not looked up again
    assertThat(answer.statusCode()).isEqualTo(403);
    assertThat(proxy.failureSince(url, started))
        .hasValueSatisfying(
            why -> assertThat(why).startsWith("may not be called: ").contains("link-local"));
    assertThat(served).hasValue(0);
    assertThat(proxy.connections()).isZero();
  }

  @Test
  void aTunnelToANameThatRebindsIsRefusedToo() {
    String url = "https://rebinding.test/token";
    addresses.check(TENANT, "its host", url).await().atMost(Duration.ofSeconds(10));

    long started = System.nanoTime();
    assertThatThrownBy(() -> send(url)).isInstanceOf(IOException.class);
    assertThat(proxy.failureSince(url, started))
        .hasValueSatisfying(why -> assertThat(why).contains("link-local"));
    assertThat(proxy.connections()).isZero();
  }

  @Test
  void theConnectionGoesToTheAddressCorralLookedUpAndTheAnswerComesBackWhole() throws Exception {
    // A name the machine's own resolver does not know: only the proxy's lookup can find it
    String url = "http://only-corral-knows.test:" + server.getAddress().getPort() + "/";

    HttpResponse<String> answer = send(url);

    assertThat(answer.statusCode()).isEqualTo(200);
    assertThat(answer.body()).isEqualTo("hello from loopback");
    assertThat(served).hasValue(1);
    assertThat(proxy.connections()).isEqualTo(1);
    assertThat(proxy.failureSince(url, 0)).isEmpty();
  }

  @Test
  void aServerThatIsDownIsReportedAsTheClientWouldHaveSeenIt() throws Exception {
    int closed;
    try (var socket = new java.net.ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
      closed = socket.getLocalPort();
    }
    String url = "http://only-corral-knows.test:" + closed + "/";

    long started = System.nanoTime();
    HttpResponse<String> answer = send(url);

    assertThat(answer.statusCode()).isEqualTo(502);
    assertThat(proxy.failureSince(url, started))
        .hasValue("could not be reached: connection refused");
    assertThat(proxy.failureSince(url, System.nanoTime())).isEmpty();
  }

  @Test
  void aServerThatKeepsItsConnectionOpenGetsNoLaterRequestMadeToAnotherServer() throws Exception {
    // Given a server that answers keep-alive, holds its connection open and reads on
    StringBuffer seenByTheFirst = new StringBuffer();
    io.vertx.core.net.NetServer holding =
        vertx
            .createNetServer()
            .connectHandler(
                socket ->
                    socket.handler(
                        bytes -> {
                          boolean first = seenByTheFirst.length() == 0;
                          seenByTheFirst.append(bytes.toString(StandardCharsets.ISO_8859_1));
                          if (first) {
                            socket.write(
                                "HTTP/1.1 200 OK\r\nConnection: keep-alive\r\n"
                                    + "Content-Length: 2\r\n\r\nok");
                          }
                        }))
            .listen(0, "127.0.0.1")
            .toCompletionStage()
            .toCompletableFuture()
            .get(10, java.util.concurrent.TimeUnit.SECONDS);
    HttpResponse<String> first =
        send("http://only-corral-knows.test:" + holding.actualPort() + "/token");
    assertThat(first.body()).isEqualTo("ok");

    // When the same client then calls another server, with a secret
    HttpResponse<String> second =
        client.send(
            HttpRequest.newBuilder(
                    URI.create(
                        "http://only-corral-knows.test:" + server.getAddress().getPort() + "/"))
                .timeout(Duration.ofSeconds(10))
                .header("Authorization", "Basic c2VjcmV0LW9mLWFub3RoZXI=")
                .POST(HttpRequest.BodyPublishers.ofString("refresh_token=another-tenants"))
                .build(),
            HttpResponse.BodyHandlers.ofString());

    // Then that server answers it, and the first never sees it
    assertThat(second.body()).isEqualTo("hello from loopback");
    assertThat(served).hasValue(1);
    assertThat(first.headers().firstValue("connection")).hasValue("close");
    assertThat(seenByTheFirst.toString())
        .doesNotContain("c2VjcmV0LW9mLWFub3RoZXI=")
        .doesNotContain("another-tenants");
    holding.close();
  }

  /** A server that answers each connection's first bytes with {@code answer} (null: never). */
  private int rawServer(String answer) throws Exception {
    return vertx
        .createNetServer()
        .connectHandler(
            socket ->
                socket.handler(
                    bytes -> {
                      if (answer != null) {
                        socket.write(answer);
                        socket.handler(null);
                      }
                    }))
        .listen(0, "127.0.0.1")
        .toCompletionStage()
        .toCompletableFuture()
        .get(10, java.util.concurrent.TimeUnit.SECONDS)
        .actualPort();
  }

  @Test
  void anInterimResponseIsPassedOnAndTheFinalOneAfterIt() throws Exception {
    int port =
        rawServer(
            "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
                + "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");

    HttpResponse<String> answer = send("http://only-corral-knows.test:" + port + "/token");

    assertThat(answer.statusCode()).isEqualTo(200);
    assertThat(answer.body()).isEqualTo("ok");
    assertThat(answer.headers().firstValue("connection")).hasValue("close");
  }

  @Test
  void aClientThatGivesUpIsNoFailureOfTheServers() throws Exception {
    String url = "http://only-corral-knows.test:" + rawServer(null) + "/slow";
    long started = System.nanoTime();

    assertThatThrownBy(
            () ->
                client.send(
                    HttpRequest.newBuilder(URI.create(url))
                        .timeout(Duration.ofMillis(500))
                        .GET()
                        .build(),
                    HttpResponse.BodyHandlers.ofString()))
        .isInstanceOf(java.net.http.HttpTimeoutException.class);

    org.awaitility.Awaitility.await()
        .during(Duration.ofMillis(1500))
        .atMost(Duration.ofSeconds(5))
        .until(() -> proxy.failureSince(url, started).isEmpty());
  }

  private HttpResponse<String> send(String url) throws IOException, InterruptedException {
    return client.send(
        HttpRequest.newBuilder(URI.create(url))
            .timeout(Duration.ofSeconds(10))
            .POST(HttpRequest.BodyPublishers.ofString("grant_type=x"))
            .build(),
        HttpResponse.BodyHandlers.ofString());
  }

  private static InetAddress named(String name, byte[] address) {
    try {
      return InetAddress.getByAddress(name, address);
    } catch (java.net.UnknownHostException impossible) {
      throw new AssertionError(impossible);
    }
  }
}
