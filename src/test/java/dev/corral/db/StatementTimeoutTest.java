package dev.corral.db;

import static dev.corral.testing.Fixtures.createSession;
import static dev.corral.testing.Fixtures.userMessage;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.corral.proto.v1.AgentServiceGrpc;
import dev.corral.proto.v1.EmitEventRequest;
import dev.corral.proto.v1.GetEventsRequest;
import dev.corral.proto.v1.SessionServiceGrpc;
import dev.corral.testing.SessionRows;
import dev.corral.testing.ShortStatementTimeoutProfile;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.quarkus.grpc.GrpcClient;
import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.TestProfile;
import io.vertx.mutiny.sqlclient.Pool;
import io.vertx.mutiny.sqlclient.SqlConnection;
import jakarta.inject.Inject;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * A statement that PostgreSQL does not finish within {@code corral.database.statement-timeout}
 * fails with UNAVAILABLE and changes nothing, instead of holding its caller and a connection for
 * ever; the other sessions do not notice.
 */
@QuarkusTest
@TestProfile(ShortStatementTimeoutProfile.class)
class StatementTimeoutTest {

  private static final Duration WAIT = Duration.ofSeconds(10);

  @GrpcClient("corral")
  SessionServiceGrpc.SessionServiceBlockingStub sessions;

  @GrpcClient("corral")
  AgentServiceGrpc.AgentServiceBlockingStub agents;

  @Inject Pool pool;

  @Test
  void everyConnectionCarriesBothTimeouts() {
    var row =
        pool.query(
                "SELECT current_setting('statement_timeout') AS statement,"
                    + " current_setting('idle_in_transaction_session_timeout') AS idle")
            .execute()
            .await()
            .atMost(WAIT)
            .iterator()
            .next();
    assertThat(row.getString("statement")).isEqualTo("1s");
    assertThat(row.getString("idle")).isEqualTo("1min"); // at least a minute
  }

  @Test
  void anAppendStuckOnARowLockFailsInTimeAndAppendsNothing() {
    // Given a session whose row another transaction holds, and one that nobody holds
    String stuck = createSession(agents, sessions).getId();
    String free = createSession(agents, sessions).getId();
    long before = lastSeq(stuck);
    SqlConnection lock = SessionRows.lock(pool, stuck);
    try {
      // When a client appends to the held session
      long start = System.nanoTime();
      assertThatThrownBy(() -> emit(stuck, "waits"))
          .isInstanceOfSatisfying(
              StatusRuntimeException.class,
              failure -> {
                assertThat(failure.getStatus().getCode()).isEqualTo(Status.Code.UNAVAILABLE);
                assertThat(failure.getStatus().getDescription())
                    .contains("did not finish in time")
                    .doesNotContain("Exception");
              });
      // Then it fails within the timeout (once as part of a statement, once alone), not never
      assertThat(TimeUnit.NANOSECONDS.toSeconds(System.nanoTime() - start)).isLessThan(8);
      // And the other session appends meanwhile
      assertThat(emit(free, "goes through").getEvent().getSeq()).isGreaterThan(0);
    } finally {
      SessionRows.rollback(lock);
    }
    // And the failed append left nothing behind; the session takes the next one
    assertThat(lastSeq(stuck)).isEqualTo(before);
    assertThat(emit(stuck, "after").getEvent().getSeq()).isEqualTo(before + 1);
  }

  private dev.corral.proto.v1.EmitEventResponse emit(String sessionId, String text) {
    return sessions
        .withDeadlineAfter(30, TimeUnit.SECONDS)
        .emitEvent(
            EmitEventRequest.newBuilder()
                .setSessionId(sessionId)
                .setEvent(userMessage(text))
                .build());
  }

  private long lastSeq(String sessionId) {
    return sessions
        .getEvents(GetEventsRequest.newBuilder().setSessionId(sessionId).build())
        .getLastSeq();
  }
}
