package dev.corral.session;

import static dev.corral.testing.Fixtures.createSession;
import static dev.corral.testing.Fixtures.emit;
import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import dev.corral.proto.v1.AgentServiceGrpc;
import dev.corral.proto.v1.SessionServiceGrpc;
import io.quarkus.grpc.GrpcClient;
import io.quarkus.test.junit.QuarkusTest;
import io.vertx.mutiny.core.Vertx;
import io.vertx.mutiny.pgclient.pubsub.PgSubscriber;
import io.vertx.mutiny.sqlclient.Pool;
import io.vertx.mutiny.sqlclient.Tuple;
import io.vertx.pgclient.PgConnectOptions;
import jakarta.inject.Inject;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import org.eclipse.microprofile.config.ConfigProvider;
import org.junit.jupiter.api.Test;

/**
 * A replica alone sends no notification per append; once another replica says hello on the channel,
 * it answers the hello and announces its appends.
 */
@QuarkusTest
class ReplicaHelloTest {

  private static final Duration WAIT = Duration.ofSeconds(10);

  @GrpcClient("corral")
  SessionServiceGrpc.SessionServiceBlockingStub sessions;

  @GrpcClient("corral")
  AgentServiceGrpc.AgentServiceBlockingStub agents;

  @Inject Vertx vertx;

  @Inject Pool pool;

  @Inject SessionSignals signals;

  @Test
  void appendsAreAnnouncedOnlyOnceAnotherReplicaListens() throws Exception {
    // Given a listener on the channel that has not said hello
    List<String> heard = new CopyOnWriteArrayList<>();
    PgSubscriber listener = listen(heard);
    try {
      String sessionId = createSession(agents, sessions).getId();
      assertThat(signals.othersListen()).isFalse();

      // When this replica appends while it knows of no other
      sessions.emitEvent(emit(sessionId, "unheard"));

      // Then nothing is announced (a notification would come a linger, ~2 ms, after it)
      await()
          .during(Duration.ofMillis(300))
          .atMost(WAIT)
          .until(() -> heard.stream().noneMatch(payload -> payload.startsWith(sessionId)));

      // When another replica says hello
      pool.preparedQuery("SELECT pg_notify($1, $2)")
          .execute(Tuple.of(SessionSignals.CHANNEL, SessionSignals.HELLO + "other-replica"))
          .await()
          .atMost(WAIT);

      // Then this one answers it at once, and announces its next append
      await()
          .atMost(WAIT)
          .until(
              () ->
                  heard.stream()
                      .anyMatch(
                          payload ->
                              payload.startsWith(SessionSignals.HELLO)
                                  && !payload.endsWith("other-replica")));
      assertThat(signals.othersListen()).isTrue();
      sessions.emitEvent(emit(sessionId, "heard"));
      await().atMost(WAIT).until(() -> heard.contains(sessionId + ":2"));
    } finally {
      listener.close().await().atMost(WAIT);
    }
  }

  private PgSubscriber listen(List<String> heard) {
    var config = ConfigProvider.getConfig();
    PgConnectOptions options =
        PgConnectOptions.fromUri(
            config
                .getValue("quarkus.datasource.reactive.url", String.class)
                .replaceFirst("^vertx-reactive:", ""));
    config
        .getOptionalValue("quarkus.datasource.username", String.class)
        .ifPresent(options::setUser);
    config
        .getOptionalValue("quarkus.datasource.password", String.class)
        .ifPresent(options::setPassword);
    PgSubscriber subscriber = PgSubscriber.subscriber(vertx, options);
    subscriber.channel(SessionSignals.CHANNEL).handler(heard::add);
    subscriber.connect().await().atMost(WAIT);
    return subscriber;
  }
}
