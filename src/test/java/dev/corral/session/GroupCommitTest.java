package dev.corral.session;

import static dev.corral.testing.Fixtures.createSession;
import static dev.corral.testing.Fixtures.userMessage;
import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import dev.corral.common.ResourceExhaustedException;
import dev.corral.proto.v1.AgentServiceGrpc;
import dev.corral.proto.v1.Event;
import dev.corral.proto.v1.SessionServiceGrpc;
import dev.corral.proto.v1.UserCustomToolResult;
import dev.corral.testing.SessionRows;
import io.quarkus.grpc.GrpcClient;
import io.quarkus.test.junit.QuarkusTest;
import io.vertx.mutiny.sqlclient.Pool;
import io.vertx.mutiny.sqlclient.SqlConnection;
import jakarta.inject.Inject;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * Group commit keeps every guarantee of an append made alone. Each test holds one session's row
 * lock so that the first append blocks in its statement; the appends sent meanwhile wait, then go
 * together in the next statement, where each must still get its own answer.
 */
@QuarkusTest
class GroupCommitTest {

  private static final Duration WAIT = Duration.ofSeconds(10);

  @GrpcClient("corral")
  io.grpc.Channel channel;

  @GrpcClient("corral")
  SessionServiceGrpc.SessionServiceBlockingStub sessions;

  @GrpcClient("corral")
  AgentServiceGrpc.AgentServiceBlockingStub agents;

  @Inject EventLog log;

  @Inject Pool pool;

  @Inject io.vertx.core.Vertx vertx;

  /** Longer than any test waits for a statement, so that only the stall test sees one stall. */
  private static final Duration STALL = Duration.ofMinutes(1);

  @Test
  void appendsWaitingTogetherShareAStatementAndEachGetsItsOwnAnswer() throws Exception {
    // Given one statement slot, busy with an append that waits for a row lock
    GroupCommit groupCommit = new GroupCommit(log, vertx, 1, 64, 100, STALL);
    String blocked = newSession();
    String plain = newSession();
    String stale = newSession();
    String replayed = newSession();
    Appended original = appendAlone(replayed, message("first", "key-1"));
    SqlConnection lock = SessionRows.lock(pool, blocked);
    CompletableFuture<Appended> first = submit(groupCommit, blocked, message("blocked", null));
    await().atMost(WAIT).until(() -> groupCommit.statementsStarted() == 1);

    // When three appends of other sessions arrive meanwhile
    CompletableFuture<Appended> appended = submit(groupCommit, plain, message("hello", null));
    CompletableFuture<Appended> conflicting =
        groupCommit
            .submit(new AppendRequest(stale, List.of(message("late", null)), 5L, null))
            .subscribeAsCompletionStage();
    CompletableFuture<Appended> replay = submit(groupCommit, replayed, message("first", "key-1"));
    assertThat(groupCommit.waiting()).isEqualTo(3);
    SessionRows.commit(lock);

    // Then they went in one statement, and each got the answer it would get alone
    assertThat(first.get(10, TimeUnit.SECONDS).events().get(0).getSeq()).isEqualTo(1);
    assertThat(appended.get(10, TimeUnit.SECONDS).events())
        .extracting(
            Event::getSeq, event -> event.getUserMessage().getContent(0).getText().getText())
        .containsExactly(org.assertj.core.groups.Tuple.tuple(1L, "hello"));
    assertThat(failure(conflicting))
        .isInstanceOf(SequenceConflictException.class)
        .hasMessageContaining("ends at seq 0");
    Appended replayAnswer = replay.get(10, TimeUnit.SECONDS);
    assertThat(replayAnswer.deduplicated()).isTrue();
    assertThat(replayAnswer.events()).isEqualTo(original.events());
    assertThat(groupCommit.statementsStarted()).isEqualTo(2);
    assertThat(SessionRows.lastSeq(pool, stale)).isZero();
    assertThat(SessionRows.lastSeq(pool, replayed)).isEqualTo(1);
  }

  @Test
  void aResultThatClosesAConfirmationRefusesTheConfirmationThatComesAfterIt() {
    // Given two calls waiting for confirmation: one answered by an interrupt's result that closes
    // its confirmation, the other by a plain result
    String sessionId = newSession();
    appendAlone(sessionId, NewEvent.of(interruptedResult("sevt_closed")).closingConfirmation());
    appendAlone(sessionId, NewEvent.of(interruptedResult("sevt_open")));

    // When a confirmation of each comes after (past any check made before the append)
    // Then the log refuses the first, so that no confirmation lands after the call's result
    Throwable refused =
        org.assertj.core.api.Assertions.catchThrowable(
            () -> appendAlone(sessionId, NewEvent.of(confirmationOf("sevt_closed"))));
    assertThat(refused)
        .isInstanceOf(AlreadyAnsweredException.class)
        .hasMessageContaining("no longer applies");
    assertThat(appendAlone(sessionId, NewEvent.of(confirmationOf("sevt_open"))).events())
        .hasSize(1);
  }

  private static Event interruptedResult(String callId) {
    return Event.newBuilder()
        .setAgentToolResult(
            dev.corral.proto.v1.AgentToolResult.newBuilder().setToolUseId(callId).setIsError(true))
        .build();
  }

  private static Event confirmationOf(String callId) {
    return Event.newBuilder()
        .setUserToolConfirmation(
            dev.corral.proto.v1.UserToolConfirmation.newBuilder()
                .setToolUseId(callId)
                .setResult(dev.corral.proto.v1.ConfirmationResult.CONFIRMATION_RESULT_ALLOW))
        .build();
  }

  @Test
  void aStatementTheDatabaseRejectsIsRolledBackAndEachAppendRunsAlone() throws Exception {
    // Given a session whose custom tool call already has its result
    GroupCommit groupCommit = new GroupCommit(log, vertx, 1, 64, 100, STALL);
    String blocked = newSession();
    String answered = newSession();
    String plain = newSession();
    appendAlone(answered, NewEvent.of(toolResult("sevt_call")));
    SqlConnection lock = SessionRows.lock(pool, blocked);
    CompletableFuture<Appended> first = submit(groupCommit, blocked, message("blocked", null));
    await().atMost(WAIT).until(() -> groupCommit.statementsStarted() == 1);

    // When a second result for that call waits with a good append of another session
    CompletableFuture<Appended> second =
        groupCommit
            .submit(AppendRequest.of(answered, NewEvent.of(toolResult("sevt_call"))))
            .subscribeAsCompletionStage();
    CompletableFuture<Appended> good = submit(groupCommit, plain, message("fine", null));
    SessionRows.commit(lock);

    // Then the unique index failed the shared statement, and alone each got its own answer
    first.get(10, TimeUnit.SECONDS);
    assertThat(failure(second)).isInstanceOf(AlreadyAnsweredException.class);
    assertThat(good.get(10, TimeUnit.SECONDS).events().get(0).getSeq()).isEqualTo(1);
    assertThat(groupCommit.statementsStarted()).isEqualTo(2);
    assertThat(SessionRows.lastSeq(pool, answered)).isEqualTo(1);
    assertThat(SessionRows.lastSeq(pool, plain)).isEqualTo(1);
  }

  @Test
  void appendsOfOneSessionKeepTheirOrderAndNeverShareAStatement() throws Exception {
    // Given
    GroupCommit groupCommit = new GroupCommit(log, vertx, 1, 64, 100, STALL);
    String busy = newSession();
    String other = newSession();
    SqlConnection lock = SessionRows.lock(pool, busy);
    CompletableFuture<Appended> one = submit(groupCommit, busy, message("one", null));
    await().atMost(WAIT).until(() -> groupCommit.statementsStarted() == 1);

    // When two more appends of the busy session and one of another wait
    CompletableFuture<Appended> two = submit(groupCommit, busy, message("two", null));
    CompletableFuture<Appended> three = submit(groupCommit, busy, message("three", null));
    CompletableFuture<Appended> elsewhere = submit(groupCommit, other, message("other", null));
    SessionRows.commit(lock);

    // Then the busy session's appends went one statement each, in the order they came
    assertThat(List.of(one.get(10, TimeUnit.SECONDS), two.get(10, TimeUnit.SECONDS)))
        .extracting(appended -> appended.events().get(0).getSeq())
        .containsExactly(1L, 2L);
    assertThat(three.get(10, TimeUnit.SECONDS).events().get(0).getSeq()).isEqualTo(3);
    assertThat(elsewhere.get(10, TimeUnit.SECONDS).events().get(0).getSeq()).isEqualTo(1);
    assertThat(groupCommit.statementsStarted()).isEqualTo(3);
  }

  @Test
  void appendsBeyondTheWaitingLimitAreRefusedAtOnce() throws Exception {
    // Given a full queue
    GroupCommit groupCommit = new GroupCommit(log, vertx, 1, 64, 2, STALL);
    String busy = newSession();
    String other = newSession();
    SqlConnection lock = SessionRows.lock(pool, busy);
    CompletableFuture<Appended> running = submit(groupCommit, busy, message("one", null));
    await().atMost(WAIT).until(() -> groupCommit.statementsStarted() == 1);
    CompletableFuture<Appended> waitingOne = submit(groupCommit, other, message("a", null));
    CompletableFuture<Appended> waitingTwo = submit(groupCommit, other, message("b", null));

    // When one more arrives
    CompletableFuture<Appended> refused = submit(groupCommit, other, message("c", null));

    // Then it is refused without waiting, and nothing else is lost
    assertThat(failure(refused))
        .isInstanceOf(ResourceExhaustedException.class)
        .hasMessageContaining("too many appends");
    SessionRows.commit(lock);
    running.get(10, TimeUnit.SECONDS);
    waitingOne.get(10, TimeUnit.SECONDS);
    waitingTwo.get(10, TimeUnit.SECONDS);
    assertThat(SessionRows.lastSeq(pool, other)).isEqualTo(2);
  }

  @Test
  void oneTenantFillsAtMostHalfTheQueue() throws Exception {
    // Given a queue of four behind a stuck statement, and two tenants' sessions
    GroupCommit groupCommit = new GroupCommit(log, vertx, 1, 64, 4, STALL);
    String busy = newSession();
    SqlConnection lock = SessionRows.lock(pool, busy);
    CompletableFuture<Appended> running = submit(groupCommit, busy, message("one", null));
    await().atMost(WAIT).until(() -> groupCommit.statementsStarted() == 1);
    String tenant = "flood-" + System.nanoTime();
    io.grpc.Channel member =
        dev.corral.testing.TestCredentials.memberOfNewTenantNamed(channel, tenant);
    List<String> own = List.of(newSession(), newSession(), newSession());
    String other =
        createSession(
                AgentServiceGrpc.newBlockingStub(member),
                SessionServiceGrpc.newBlockingStub(member))
            .getId();
    dev.corral.common.Tenant mine = new dev.corral.common.Tenant("default");

    // When one tenant's clients make more appends than half the queue
    CompletableFuture<Appended> first = submitAs(groupCommit, mine, own.get(0));
    CompletableFuture<Appended> second = submitAs(groupCommit, mine, own.get(1));
    CompletableFuture<Appended> third = submitAs(groupCommit, mine, own.get(2));
    CompletableFuture<Appended> theirs =
        submitAs(groupCommit, new dev.corral.common.Tenant(tenant), other);

    // Then the third is refused at once, naming the limit, and the other tenant's append waits
    assertThat(failure(third))
        .isInstanceOf(ResourceExhaustedException.class)
        .hasMessageContaining("tenant default has 2 appends waiting");
    assertThat(groupCommit.waiting()).isEqualTo(3);
    SessionRows.commit(lock);
    running.get(10, TimeUnit.SECONDS);
    first.get(10, TimeUnit.SECONDS);
    second.get(10, TimeUnit.SECONDS);
    assertThat(theirs.get(10, TimeUnit.SECONDS).events().get(0).getSeq()).isEqualTo(1);
    // And the tenant's room comes back as its appends leave the queue
    assertThat(submitAs(groupCommit, mine, own.get(2)).get(10, TimeUnit.SECONDS).events())
        .hasSize(1);
  }

  @Test
  void oneTenantsWaitingAppendsHoldAtMostHalfTheQueuesBytes() throws Exception {
    // Given a queue of 2 MiB behind a stuck statement, and appends of 256 KiB
    GroupCommit groupCommit = new GroupCommit(log, vertx, 1, 64, 100, STALL, 2L << 20);
    String busy = newSession();
    SqlConnection lock = SessionRows.lock(pool, busy);
    CompletableFuture<Appended> running = submit(groupCommit, busy, message("one", null));
    await().atMost(WAIT).until(() -> groupCommit.statementsStarted() == 1);
    String large = "x".repeat(256 * 1024 - 64);
    dev.corral.common.Tenant mine = new dev.corral.common.Tenant("default");
    String session = newSession();
    String harnessSession = newSession();

    // When one tenant's clients queue large appends
    List<CompletableFuture<Appended>> accepted = new java.util.ArrayList<>();
    CompletableFuture<Appended> refused = null;
    for (int i = 0; i < 8 && refused == null; i++) {
      CompletableFuture<Appended> next =
          groupCommit
              .submit(AppendRequest.of(session, message(i + large, null)).within(mine))
              .subscribeAsCompletionStage();
      if (next.isCompletedExceptionally()) {
        refused = next;
      } else {
        accepted.add(next);
      }
    }

    // Then they hold at most half of the bytes: the fifth is refused, naming the limit
    assertThat(accepted).hasSize(4);
    assertThat(failure(refused))
        .isInstanceOf(ResourceExhaustedException.class)
        .hasMessageContaining("tenant default has appends of")
        .hasMessageContaining("the most one tenant may");
    // And the harness's appends (no tenant) take the rest, up to the whole budget
    for (int i = 0; i < 4; i++) {
      assertThat(
              groupCommit
                  .submit(AppendRequest.of(harnessSession, message(i + large, null)))
                  .subscribeAsCompletionStage()
                  .isCompletedExceptionally())
          .isFalse();
    }
    assertThat(
            failure(
                groupCommit
                    .submit(AppendRequest.of(harnessSession, message("more" + large, null)))
                    .subscribeAsCompletionStage()))
        .isInstanceOf(ResourceExhaustedException.class)
        .hasMessageContaining("too many appends are waiting for the database (at most");
    SessionRows.commit(lock);
    running.get(10, TimeUnit.SECONDS);
    for (CompletableFuture<Appended> append : accepted) {
      assertThat(append.get(10, TimeUnit.SECONDS).events()).hasSize(1);
    }
  }

  private static CompletableFuture<Appended> submitAs(
      GroupCommit groupCommit, dev.corral.common.Tenant tenant, String sessionId) {
    return groupCommit
        .submit(AppendRequest.of(sessionId, message("from " + tenant.id(), null)).within(tenant))
        .subscribeAsCompletionStage();
  }

  @Test
  void aStatementStuckOnARowLockDoesNotHoldTheAppendsOfOtherSessions() throws Exception {
    // Given one statement slot, taken by an append that waits for a row lock
    GroupCommit groupCommit = new GroupCommit(log, vertx, 1, 64, 100, Duration.ofMillis(200));
    String stuck = newSession();
    String other = newSession();
    String later = newSession();
    SqlConnection lock = SessionRows.lock(pool, stuck);
    CompletableFuture<Appended> blocked = submit(groupCommit, stuck, message("stuck", null));
    await().atMost(WAIT).until(() -> groupCommit.statementsStarted() == 1);

    // When an append of another session arrives at once, and one more after the stall limit
    CompletableFuture<Appended> waiting = submit(groupCommit, other, message("waits", null));
    await().atMost(WAIT).until(waiting::isDone);
    CompletableFuture<Appended> afterwards = submit(groupCommit, later, message("later", null));

    // Then both got their own statements while the first still waits for the lock
    assertThat(waiting.get(10, TimeUnit.SECONDS).events().get(0).getSeq()).isEqualTo(1);
    assertThat(afterwards.get(10, TimeUnit.SECONDS).events().get(0).getSeq()).isEqualTo(1);
    assertThat(blocked).isNotDone();
    SessionRows.commit(lock);
    assertThat(blocked.get(10, TimeUnit.SECONDS).events().get(0).getSeq()).isEqualTo(1);
    assertThat(groupCommit.statementsStarted()).isEqualTo(3);
  }

  @Test
  void aStatementTakesAtMostFourMebibytesOfPayloads() throws Exception {
    // Given twenty appends of 250 KiB each, waiting behind a blocked statement
    GroupCommit groupCommit = new GroupCommit(log, vertx, 1, 64, 100, STALL);
    String blocked = newSession();
    SqlConnection lock = SessionRows.lock(pool, blocked);
    CompletableFuture<Appended> first = submit(groupCommit, blocked, message("blocked", null));
    await().atMost(WAIT).until(() -> groupCommit.statementsStarted() == 1);
    String large = "x".repeat(250 * 1024);
    List<CompletableFuture<Appended>> waiting = new java.util.ArrayList<>();
    for (int i = 0; i < 20; i++) {
      waiting.add(submit(groupCommit, newSession(), message(large, null)));
    }

    // When the blocked statement ends
    SessionRows.commit(lock);

    // Then they went in two statements, the first stopping once past 4 MiB (17 × 250 KiB)
    first.get(10, TimeUnit.SECONDS);
    for (CompletableFuture<Appended> append : waiting) {
      assertThat(append.get(10, TimeUnit.SECONDS).events().get(0).getSeq()).isEqualTo(1);
    }
    assertThat(groupCommit.statementsStarted()).isEqualTo(3);
  }

  private String newSession() {
    return createSession(agents, sessions).getId();
  }

  private static NewEvent message(String text, String key) {
    return NewEvent.of(userMessage(text), key);
  }

  private static Event toolResult(String callId) {
    return Event.newBuilder()
        .setUserCustomToolResult(UserCustomToolResult.newBuilder().setCustomToolUseId(callId))
        .build();
  }

  private Appended appendAlone(String sessionId, NewEvent event) {
    return log.appendAlone(AppendRequest.of(sessionId, event)).await().atMost(WAIT);
  }

  private static CompletableFuture<Appended> submit(
      GroupCommit groupCommit, String sessionId, NewEvent event) {
    return groupCommit.submit(AppendRequest.of(sessionId, event)).subscribeAsCompletionStage();
  }

  private static Throwable failure(CompletableFuture<Appended> future) throws Exception {
    try {
      future.get(10, TimeUnit.SECONDS);
    } catch (ExecutionException e) {
      return e.getCause();
    }
    throw new AssertionError("expected the append to fail, but it succeeded");
  }
}
