package dev.corral.session;

import static dev.corral.testing.Fixtures.createSession;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.corral.proto.v1.AgentServiceGrpc;
import dev.corral.proto.v1.DeleteSessionRequest;
import dev.corral.proto.v1.GetSessionRequest;
import dev.corral.proto.v1.SessionServiceGrpc;
import dev.corral.testing.SessionRows;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.quarkus.grpc.GrpcClient;
import io.quarkus.test.junit.QuarkusTest;
import io.vertx.mutiny.sqlclient.Pool;
import io.vertx.mutiny.sqlclient.SqlConnection;
import jakarta.inject.Inject;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.awaitility.Awaitility;
import org.junit.jupiter.api.Test;

/** A deletion holds a database connection while it runs: a tenant runs two at once, not more. */
@QuarkusTest
class DeleteSessionTest {

  @GrpcClient("corral")
  SessionServiceGrpc.SessionServiceBlockingStub sessions;

  @GrpcClient("corral")
  AgentServiceGrpc.AgentServiceBlockingStub agents;

  @GrpcClient("corral")
  io.grpc.Channel channel;

  @Inject Pool pool;

  @Test
  void aTenantRunsTwoDeletionsAtOnceAndIsToldToWaitForAThird() throws Exception {
    // Given two deletions that take long (another transaction holds their sessions' rows)
    String first = createSession(agents, sessions).getId();
    String second = createSession(agents, sessions).getId();
    String third = createSession(agents, sessions).getId();
    SqlConnection holdFirst = SessionRows.lock(pool, first);
    SqlConnection holdSecond = SessionRows.lock(pool, second);
    CompletableFuture<?> deleteFirst;
    CompletableFuture<?> deleteSecond;
    try {
      deleteFirst = CompletableFuture.runAsync(() -> delete(first));
      deleteSecond = CompletableFuture.runAsync(() -> delete(second));
      Awaitility.await()
          .atMost(Duration.ofSeconds(10))
          .until(() -> SessionRows.statementsWaitingForALock(pool) == 2);

      // When a third deletion is asked for
      // Then it is refused, saying why, and deletes nothing
      assertThatThrownBy(() -> delete(third))
          .isInstanceOfSatisfying(
              StatusRuntimeException.class,
              refused -> {
                assertThat(refused.getStatus().getCode()).isEqualTo(Status.Code.RESOURCE_EXHAUSTED);
                assertThat(refused.getStatus().getDescription())
                    .contains("2 deletions of this tenant's sessions are under way");
              });
      assertThat(get(third)).isTrue();
    } finally {
      SessionRows.rollback(holdFirst);
      SessionRows.rollback(holdSecond);
    }

    // And once the two have ended, it goes
    deleteFirst.get(20, TimeUnit.SECONDS);
    deleteSecond.get(20, TimeUnit.SECONDS);
    delete(third);
    assertThat(get(third)).isFalse();
  }

  @Test
  void aDeletionHoldsItsSessionsRowOnlyOnceItsLogIsGone() throws Exception {
    // Given a session whose log takes long to delete (another transaction holds an event's row)
    String id = createSession(agents, sessions).getId();
    String first =
        sessions.emitEvent(dev.corral.testing.Fixtures.emit(id, "one")).getEvent().getId();
    SqlConnection hold = SessionRows.lockRow(pool, "events", first);
    CompletableFuture<?> deletion;
    try {
      deletion = CompletableFuture.runAsync(() -> delete(id));
      Awaitility.await()
          .atMost(Duration.ofSeconds(10))
          .until(() -> SessionRows.statementsWaitingForALock(pool) == 1);

      // When the session is appended to meanwhile (an append of another session batched with it
      // waited as long as the deletion ran, up to its whole statement timeout)
      var appended =
          sessions
              .withDeadlineAfter(5, TimeUnit.SECONDS)
              .emitEvent(dev.corral.testing.Fixtures.emit(id, "two"));

      // Then the append did not wait for the deletion
      assertThat(appended.getEvent().getSeq()).isEqualTo(2);
    } finally {
      SessionRows.rollback(hold);
    }

    // And the deletion takes that event too
    deletion.get(20, TimeUnit.SECONDS);
    assertThat(get(id)).isFalse();
    assertThat(
            pool.preparedQuery("SELECT count(*) FROM events WHERE session_id = $1")
                .execute(io.vertx.mutiny.sqlclient.Tuple.of(id))
                .await()
                .atMost(Duration.ofSeconds(5))
                .iterator()
                .next()
                .getLong(0))
        .isZero();
  }

  @Test
  void aDeletionWhoseCallerGaveUpGoesOnAndEndsTheSessionsStreams() {
    // Given a session followed by a stream, whose deletion will take long
    String id = createSession(agents, sessions).getId();
    sessions.emitEvent(dev.corral.testing.Fixtures.emit(id, "hello"));
    dev.corral.testing.StreamRecorder stream =
        dev.corral.testing.StreamRecorder.follow(
            channel, dev.corral.proto.v1.StreamEventsRequest.newBuilder().setSessionId(id).build());
    Awaitility.await().atMost(Duration.ofSeconds(10)).until(() -> stream.seqs().size() == 1);
    SqlConnection hold = SessionRows.lock(pool, id);
    try {
      // When its caller gives up before it ends
      assertThatThrownBy(
              () ->
                  sessions
                      .withDeadlineAfter(500, TimeUnit.MILLISECONDS)
                      .deleteSession(DeleteSessionRequest.newBuilder().setSessionId(id).build()))
          .isInstanceOfSatisfying(
              StatusRuntimeException.class,
              gaveUp ->
                  assertThat(gaveUp.getStatus().getCode())
                      .isEqualTo(Status.Code.DEADLINE_EXCEEDED));
    } finally {
      SessionRows.rollback(hold);
    }

    // Then the deletion went on, and the session's stream ended saying so
    Awaitility.await().atMost(Duration.ofSeconds(10)).until(() -> stream.closedWith() != null);
    var items = stream.items();
    assertThat(items.get(items.size() - 1).getSessionDeleted().getSessionId()).isEqualTo(id);
    assertThat(get(id)).isFalse();
  }

  @Test
  void aStreamWhoseSessionIsDeletedBeforeItsFirstPageIsToldItWasDeleted() {
    // Given a stream that found its session, and waits for the log to read its first page (the
    // session has no events, so nothing else reads its log)
    String id = createSession(agents, sessions).getId();
    SqlConnection hold = SessionRows.lockTheLog(pool);
    dev.corral.testing.StreamRecorder stream;
    try {
      stream =
          dev.corral.testing.StreamRecorder.follow(
              channel,
              dev.corral.proto.v1.StreamEventsRequest.newBuilder().setSessionId(id).build());
      Awaitility.await()
          .atMost(Duration.ofSeconds(10))
          .until(() -> SessionRows.statementsWaitingForALock(pool, "LEFT JOIN LATERAL") >= 1);

      // When the session is deleted before that page is read
      hold.preparedQuery("DELETE FROM sessions WHERE id = $1")
          .execute(io.vertx.mutiny.sqlclient.Tuple.of(id))
          .await()
          .atMost(Duration.ofSeconds(10));
      SessionRows.commit(hold);
    } catch (RuntimeException e) {
      SessionRows.rollback(hold);
      throw e;
    }

    // Then the stream ends as any stream of a deleted session does: it says so, and is not told
    // that a session it already found does not exist
    Awaitility.await().atMost(Duration.ofSeconds(10)).until(() -> stream.closedWith() != null);
    assertThat(stream.closedWith().getCode())
        .as(String.valueOf(stream.closedWith()))
        .isEqualTo(Status.Code.OK);
    var items = stream.items();
    assertThat(items).isNotEmpty();
    assertThat(items.get(items.size() - 1).getSessionDeleted().getSessionId()).isEqualTo(id);
  }

  private void delete(String sessionId) {
    sessions
        .withDeadlineAfter(30, TimeUnit.SECONDS)
        .deleteSession(DeleteSessionRequest.newBuilder().setSessionId(sessionId).build());
  }

  /** Whether the session exists. */
  private boolean get(String sessionId) {
    try {
      sessions.getSession(GetSessionRequest.newBuilder().setSessionId(sessionId).build());
      return true;
    } catch (StatusRuntimeException e) {
      if (e.getStatus().getCode() == Status.Code.NOT_FOUND) {
        return false;
      }
      throw e;
    }
  }
}
