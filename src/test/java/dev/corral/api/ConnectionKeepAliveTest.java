package dev.corral.api;

import static dev.corral.testing.Fixtures.emit;
import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import dev.corral.proto.v1.Session;
import dev.corral.proto.v1.SessionServiceGrpc;
import dev.corral.testing.OpenStreams;
import dev.corral.testing.StreamRecorder;
import dev.corral.testing.TestCredentials;
import io.grpc.Channel;
import io.grpc.ClientInterceptors;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.Status;
import io.quarkus.grpc.GrpcClient;
import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.QuarkusTestProfile;
import io.quarkus.test.junit.TestProfile;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * The server pings HTTP/2 connections that hold streams and closes one whose client no longer
 * answers, so that a client that vanished without closing its connection gives back its streams.
 */
@QuarkusTest
@TestProfile(ConnectionKeepAliveTest.Profile.class)
class ConnectionKeepAliveTest {

  private static final Duration WAIT = Duration.ofSeconds(10);

  @GrpcClient("corral")
  Channel channel;

  @jakarta.inject.Inject io.micrometer.core.instrument.MeterRegistry registry;

  private final OpenStreams streams = new OpenStreams();

  @AfterEach
  void stop() {
    streams.cancelAll();
  }

  @Test
  void aClientThatVanishedLosesItsConnectionAndItsTenantGetsTheStreamBack() throws Exception {
    // Given a tenant whose one stream runs through a connection that will go silent
    throughProxy(
        "keepalive",
        (proxy, direct, session) -> {
          StreamRecorder refused = streams.follow(direct, session.getId());
          await().atMost(WAIT).until(() -> refused.closedWith() != null);
          assertThat(refused.closedWith().getCode()).isEqualTo(Status.Code.RESOURCE_EXHAUSTED);

          // When the client vanishes: nothing more reaches it or comes from it, but nothing
          // closes
          proxy.silence();

          // Then the server closes the connection after its unanswered ping
          await().atMost(WAIT).until(proxy::serverClosed);
          // and the tenant can follow the session again
          await().atMost(WAIT).untilAsserted(() -> streams.established(direct, session.getId()));
        });
  }

  @Test
  void aClientWhoseConnectionClosesGivesItsTenantTheStreamBack() throws Exception {
    // Given a tenant whose one stream runs through a connection that will close under it
    throughProxy(
        "closed",
        (proxy, direct, session) -> {
          double cancelled = cancelledStreams();

          // When the connection closes, as when the client's process dies
          proxy.close();

          // Then the tenant can follow the session again
          await().atMost(WAIT).untilAsserted(() -> streams.established(direct, session.getId()));
          // and the stream was cancelled for every interceptor of the call, as a reset would be
          // (its credential watch, its metrics), not only for the service
          await().atMost(WAIT).until(() -> cancelledStreams() > cancelled);
        });
  }

  /** What a test does once its tenant's one stream runs through the proxy. */
  private interface ThroughProxy {
    void run(SilencingProxy proxy, Channel direct, Session session) throws Exception;
  }

  /**
   * Runs {@code test} for a new tenant named after {@code prefix} whose one stream, on a session
   * with an event, is established through a {@link SilencingProxy}; {@code direct} calls as that
   * tenant without the proxy.
   */
  private void throughProxy(String prefix, ThroughProxy test) throws Exception {
    String key =
        TestCredentials.memberKeyOfNewTenantNamed(channel, prefix + "-" + System.nanoTime());
    Channel direct = ClientInterceptors.intercept(channel, TestCredentials.bearer(key));
    Session session = OpenStreams.sessionWithAnEvent(direct);
    try (SilencingProxy proxy = new SilencingProxy(18081)) {
      ManagedChannel proxied =
          ManagedChannelBuilder.forAddress("localhost", proxy.port()).usePlaintext().build();
      try {
        streams.established(
            ClientInterceptors.intercept(proxied, TestCredentials.bearer(key)), session.getId());
        test.run(proxy, direct, session);
      } finally {
        proxied.shutdownNow();
      }
    }
  }

  @Test
  void aConnectionThatAnswersItsPingsKeepsItsQuietStreams() {
    // Given a stream on a session where nothing happens for many keep-alive intervals
    Channel member = TestCredentials.memberOfNewTenant(channel, "keepalive-calm");
    Session session = OpenStreams.sessionWithAnEvent(member);
    StreamRecorder quiet = streams.established(member, session.getId());
    await()
        .during(Duration.ofSeconds(5))
        .atMost(Duration.ofSeconds(7))
        .until(() -> quiet.closedWith() == null);

    // When the session goes on
    SessionServiceGrpc.newBlockingStub(member).emitEvent(emit(session.getId(), "still there?"));

    // Then the stream is still open and delivers it
    await().atMost(WAIT).until(() -> quiet.events().size() == 2 || quiet.closedWith() != null);
    assertThat(quiet.closedWith()).isNull();
    assertThat(quiet.events()).hasSize(2);
  }

  /** StreamEvents calls the gRPC metrics saw end CANCELLED. */
  private double cancelledStreams() {
    return registry
        .find("grpc.server.processing.duration")
        .tags("method", "StreamEvents")
        .tags("statusCode", "CANCELLED")
        .timers()
        .stream()
        .mapToLong(io.micrometer.core.instrument.Timer::count)
        .sum();
  }

  /**
   * A TCP proxy to the server that can go silent: from then on it reads both sides and forwards
   * nothing, as a network that dropped the client would, while both sockets stay open.
   */
  static final class SilencingProxy implements AutoCloseable {

    private final ServerSocket listener = new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
    private final List<Socket> sockets = new CopyOnWriteArrayList<>();
    private volatile boolean silent;
    private volatile boolean serverClosed;

    SilencingProxy(int serverPort) throws IOException {
      Thread accepting =
          new Thread(
              () -> {
                try {
                  while (true) {
                    Socket client = listener.accept();
                    Socket server = new Socket(InetAddress.getLoopbackAddress(), serverPort);
                    sockets.add(client);
                    sockets.add(server);
                    pipe(client, server, false);
                    pipe(server, client, true);
                  }
                } catch (IOException closed) {
                  // the proxy is closed
                }
              });
      accepting.setDaemon(true);
      accepting.start();
    }

    int port() {
      return listener.getLocalPort();
    }

    void silence() {
      silent = true;
    }

    boolean serverClosed() {
      return serverClosed;
    }

    private void pipe(Socket from, Socket to, boolean fromServer) {
      Thread copying =
          new Thread(
              () -> {
                byte[] buffer = new byte[16384];
                try {
                  InputStream in = from.getInputStream();
                  OutputStream out = to.getOutputStream();
                  for (int read = in.read(buffer); read >= 0; read = in.read(buffer)) {
                    if (!silent) {
                      out.write(buffer, 0, read);
                      out.flush();
                    }
                  }
                } catch (IOException closed) {
                  // a side closed or reset its socket
                }
                if (fromServer) {
                  serverClosed = true;
                }
              });
      copying.setDaemon(true);
      copying.start();
    }

    @Override
    public void close() throws IOException {
      listener.close();
      for (Socket socket : sockets) {
        socket.close();
      }
    }
  }

  /**
   * One stream per tenant, pinged every 500 ms, and given 2 s to answer (a busy machine's pauses
   * must not close a healthy connection).
   */
  public static class Profile implements QuarkusTestProfile {
    @Override
    public Map<String, String> getConfigOverrides() {
      return Map.of(
          "corral.session.max-streams-per-tenant", "1",
          "corral.http.keepalive-interval", "500ms",
          "corral.http.keepalive-timeout", "2s");
    }
  }
}
