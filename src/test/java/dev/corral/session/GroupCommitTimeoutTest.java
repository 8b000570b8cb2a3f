package dev.corral.session;

import static dev.corral.testing.Fixtures.createSession;
import static dev.corral.testing.Fixtures.userMessage;
import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import dev.corral.proto.v1.AgentServiceGrpc;
import dev.corral.proto.v1.SessionServiceGrpc;
import dev.corral.testing.SessionRows;
import dev.corral.testing.ShortStatementTimeoutProfile;
import io.quarkus.grpc.GrpcClient;
import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.TestProfile;
import io.vertx.mutiny.sqlclient.Pool;
import io.vertx.mutiny.sqlclient.SqlConnection;
import io.vertx.pgclient.PgException;
import jakarta.inject.Inject;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * A statement that the statement timeout (1 s here) cancels fails only the append that is stuck: an
 * append alone fails at once, without a second try, and the appends of a cancelled batch run again
 * each in a statement of its own, through the queue and its limit of statements.
 */
@QuarkusTest
@TestProfile(ShortStatementTimeoutProfile.class)
class GroupCommitTimeoutTest {

  private static final Duration WAIT = Duration.ofSeconds(10);

  /** Longer than the test, so that no statement counts as stalled. */
  private static final Duration STALL = Duration.ofMinutes(1);

  @GrpcClient("corral")
  SessionServiceGrpc.SessionServiceBlockingStub sessions;

  @GrpcClient("corral")
  AgentServiceGrpc.AgentServiceBlockingStub agents;

  @Inject EventLog log;

  @Inject Pool pool;

  @Inject io.vertx.core.Vertx vertx;

  @Test
  void onlyTheStuckAppendFailsAndTheOthersRetryOneStatementEachUnderTheLimit() throws Exception {
    // Given one statement slot, and two sessions whose rows other transactions hold
    GroupCommit groupCommit = new GroupCommit(log, vertx, 1, 64, 100, STALL);
    String first = newSession();
    String stuck = newSession();
    String innocent = newSession();
    SqlConnection firstLock = SessionRows.lock(pool, first);
    SqlConnection stuckLock = SessionRows.lock(pool, stuck);
    try {
      CompletableFuture<Appended> alone = submit(groupCommit, first, "alone");
      await().atMost(WAIT).until(() -> groupCommit.statementsStarted() == 1);

      // When an append of the other held session and one of a free session wait together
      CompletableFuture<Appended> blocked = submit(groupCommit, stuck, "blocked");
      CompletableFuture<Appended> free = submit(groupCommit, innocent, "free");
      assertThat(groupCommit.waiting()).isEqualTo(2);

      // Then the append alone fails once its statement is cancelled, without a second try
      assertThat(cancelled(alone)).isTrue();
      // And of the batch that shared a statement, only the stuck append fails, each having run
      // again alone: four statements in all, every one through the single slot
      assertThat(cancelled(blocked)).isTrue();
      assertThat(free.get(10, TimeUnit.SECONDS).events().get(0).getSeq()).isEqualTo(1);
      assertThat(groupCommit.statementsStarted()).isEqualTo(4);
    } finally {
      SessionRows.rollback(firstLock);
      SessionRows.rollback(stuckLock);
    }
    assertThat(SessionRows.lastSeq(pool, first)).isZero();
    assertThat(SessionRows.lastSeq(pool, stuck)).isZero();
    assertThat(SessionRows.lastSeq(pool, innocent)).isEqualTo(1);
  }

  private String newSession() {
    return createSession(agents, sessions).getId();
  }

  private static CompletableFuture<Appended> submit(
      GroupCommit groupCommit, String sessionId, String text) {
    return groupCommit
        .submit(AppendRequest.of(sessionId, NewEvent.of(userMessage(text), null)))
        .subscribeAsCompletionStage();
  }

  /** Whether the append failed with a statement the timeout cancelled. */
  private static boolean cancelled(CompletableFuture<Appended> append) throws Exception {
    try {
      append.get(10, TimeUnit.SECONDS);
    } catch (ExecutionException e) {
      return e.getCause() instanceof PgException pg && "57014".equals(pg.getSqlState());
    }
    return false;
  }
}
