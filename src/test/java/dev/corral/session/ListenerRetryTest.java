package dev.corral.session;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.QuarkusTestProfile;
import io.quarkus.test.junit.TestProfile;
import io.vertx.mutiny.core.Vertx;
import io.vertx.mutiny.sqlclient.Pool;
import io.vertx.pgclient.PgConnectOptions;
import jakarta.inject.Inject;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.time.Duration;
import java.util.Optional;
import org.eclipse.microprofile.config.inject.ConfigProperty;
import org.junit.jupiter.api.Test;

/**
 * The listener for other replicas' appends holds once the database answers, however late. Its own
 * application: the second listener it starts says hello on the channel, and the server it runs
 * beside would take it for another replica for a while after (which {@code ReplicaHelloTest} must
 * not see).
 */
@QuarkusTest
@TestProfile(ListenerRetryTest.OwnApplication.class)
class ListenerRetryTest {

  /** No setting of its own: a profile of its own starts an application of its own. */
  public static class OwnApplication implements QuarkusTestProfile {}

  @Inject Vertx vertx;
  @Inject Pool pool;
  @Inject SessionConfig config;

  @ConfigProperty(name = "quarkus.datasource.reactive.url")
  String url;

  @ConfigProperty(name = "quarkus.datasource.username")
  Optional<String> username;

  @ConfigProperty(name = "quarkus.datasource.password")
  Optional<String> password;

  @Test
  void aListenerWhoseFirstConnectFailedListensOnceTheDatabaseAnswers() throws Exception {
    // Given a replica whose database does not answer yet when it starts (what listens on the
    // port its URL names closes every connection at once)
    PgConnectOptions database = PgConnectOptions.fromUri(url.replaceFirst("^vertx-reactive:", ""));
    java.util.concurrent.atomic.AtomicBoolean answering =
        new java.util.concurrent.atomic.AtomicBoolean();
    try (ServerSocket server = new ServerSocket(0, 8, InetAddress.getLoopbackAddress())) {
      Thread forwarder = new Thread(() -> forward(server, answering, database), "late-database");
      forwarder.setDaemon(true);
      forwarder.start();
      String late =
          "postgresql://127.0.0.1:" + server.getLocalPort() + "/" + database.getDatabase();
      SessionSignals signals = new SessionSignals(vertx, pool, config, late, username, password);
      signals.start(null);
      try {
        await().pollDelay(Duration.ofMillis(2_500)).atMost(Duration.ofSeconds(5)).until(() -> true);
        assertThat(signals.listening()).isFalse();

        // When the database starts answering there
        answering.set(true);

        // Then the listener connects, without a restart
        await().atMost(Duration.ofSeconds(10)).until(signals::listening);
      } finally {
        signals.stop(null);
      }
    }
  }

  /**
   * Closes each connection {@code server} takes until {@code answering}, then forwards them to the
   * database, both ways.
   */
  private static void forward(
      ServerSocket server,
      java.util.concurrent.atomic.AtomicBoolean answering,
      PgConnectOptions database) {
    while (!server.isClosed()) {
      try {
        Socket client = server.accept();
        if (!answering.get()) {
          client.close();
          continue;
        }
        Socket upstream = new Socket(database.getHost(), database.getPort());
        pipe(client.getInputStream(), upstream.getOutputStream());
        pipe(upstream.getInputStream(), client.getOutputStream());
      } catch (IOException closed) {
        return;
      }
    }
  }

  private static void pipe(InputStream from, OutputStream to) {
    Thread copy =
        new Thread(
            () -> {
              try (from;
                  to) {
                from.transferTo(to);
              } catch (IOException gone) {
                // one side closed
              }
            });
    copy.setDaemon(true);
    copy.start();
  }
}
