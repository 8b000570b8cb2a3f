package dev.corral.harness;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import dev.corral.proto.v1.AgentServiceGrpc;
import dev.corral.proto.v1.ArchiveSessionRequest;
import dev.corral.proto.v1.EmitEventRequest;
import dev.corral.proto.v1.Event;
import dev.corral.proto.v1.HarnessServiceGrpc;
import dev.corral.proto.v1.RetryStatus;
import dev.corral.proto.v1.Session;
import dev.corral.proto.v1.SessionError;
import dev.corral.proto.v1.SessionServiceGrpc;
import dev.corral.proto.v1.WakeRequest;
import dev.corral.proto.v1.WakeResponse;
import dev.corral.testing.Fixtures;
import dev.corral.testing.HarnessTestProfile;
import dev.corral.testing.SessionLogs;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.quarkus.grpc.GrpcClient;
import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.TestProfile;
import io.vertx.mutiny.sqlclient.Pool;
import io.vertx.mutiny.sqlclient.Tuple;
import jakarta.inject.Inject;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

/** Leases as fencing tokens, and HarnessService.Wake. */
@QuarkusTest
@TestProfile(HarnessTestProfile.class)
class LeaseTest {

  private static final Duration WAIT = Duration.ofSeconds(10);

  @GrpcClient("corral")
  SessionServiceGrpc.SessionServiceBlockingStub sessions;

  @GrpcClient("corral")
  AgentServiceGrpc.AgentServiceBlockingStub agents;

  @GrpcClient("corral")
  HarnessServiceGrpc.HarnessServiceBlockingStub harness;

  @Inject Leases leases;

  @dev.corral.testing.InjectFakeAnthropic dev.corral.testing.FakeAnthropic model;

  @org.junit.jupiter.api.BeforeEach
  void reset() {
    model.reset();
  }

  @Inject Pool pool;

  @Test
  void oldHarnessNeverLandsAnEventAfterATakeOver() throws Exception {
    // Given harness A, writing as fast as it can under a short lease it does not renew
    String sessionId = Fixtures.createSession(agents, sessions).getId();
    long epochA =
        leases.acquire(sessionId, "replica-a", 300).await().atMost(WAIT).orElseThrow().getEpoch();
    AtomicBoolean writing = new AtomicBoolean(true);
    AtomicInteger refusedA = new AtomicInteger();
    ExecutorService threads = Executors.newFixedThreadPool(2);
    Future<?> harnessA =
        threads.submit(() -> writeUntilStopped(sessionId, epochA, writing, refusedA));

    // When its lease runs out and harness B takes the session over, also writing
    await().atMost(WAIT).until(() -> refusedA.get() > 0);
    long epochB =
        leases
            .acquire(sessionId, "replica-b", 60_000)
            .await()
            .atMost(WAIT)
            .orElseThrow()
            .getEpoch();
    AtomicInteger refusedB = new AtomicInteger();
    Future<?> harnessB =
        threads.submit(() -> writeUntilStopped(sessionId, epochB, writing, refusedB));
    await().pollDelay(Duration.ofMillis(300)).until(() -> true);
    writing.set(false);
    harnessA.get();
    harnessB.get();
    threads.shutdown();

    // Then every event of A comes before every event of B, and B was never refused
    List<Event> events = SessionLogs.log(sessions, sessionId);
    long lastOfA =
        events.stream()
            .filter(e -> e.getSessionError().getMessage().equals("epoch " + epochA))
            .mapToLong(Event::getSeq)
            .max()
            .orElseThrow();
    long firstOfB =
        events.stream()
            .filter(e -> e.getSessionError().getMessage().equals("epoch " + epochB))
            .mapToLong(Event::getSeq)
            .min()
            .orElseThrow();
    assertThat(epochB).isGreaterThan(epochA);
    assertThat(lastOfA).isLessThan(firstOfB);
    assertThat(refusedB.get()).isZero();
    long written =
        pool.preparedQuery(
                "SELECT count(*) AS n FROM events WHERE session_id = $1 AND epoch = $2 AND seq > $3")
            .execute(Tuple.of(sessionId, epochA, firstOfB))
            .await()
            .atMost(WAIT)
            .iterator()
            .next()
            .getLong("n");
    assertThat(written).isZero();
  }

  @Test
  void aRunThatCannotRenewItsLeaseStopsBeforeTheLeaseCanExpire() throws Exception {
    // Given a run in the middle of a long tool call: its command runs, so no append of the run is
    // under way (a run whose append the database holds stops once the append's outcome is in,
    // which the lock below would hold back)
    String command = "sleep 30." + System.nanoTime() % 1000;
    model.enqueue(
        dev.corral.testing.FakeAnthropic.Reply.toolUse(
            "toolu_long", "bash", "{\"command\":\"" + command + "\"}"),
        dev.corral.testing.FakeAnthropic.Reply.text("ok"));
    Session session = Fixtures.startWithTools(agents, sessions, "run something long");
    await()
        .atMost(WAIT)
        .until(
            () ->
                SessionLogs.log(sessions, session.getId()).stream()
                        .anyMatch(Event::hasSandboxProvisioned)
                    && dev.corral.testing.Processes.running(command));
    assertThat(dispatcher.activeSessions()).contains(session.getId());

    // When its renewals cannot get through (the sessions table is locked, as by a database that
    // does not answer: no statement on it completes, so nothing tells the run its lease is gone)
    io.vertx.mutiny.sqlclient.SqlConnection holder = pool.getConnection().await().atMost(WAIT);
    io.vertx.mutiny.sqlclient.Transaction lock = holder.begin().await().atMost(WAIT);
    try {
      holder.query("LOCK TABLE sessions IN ACCESS EXCLUSIVE MODE").execute().await().atMost(WAIT);

      // Then the run stops on its own within the lease's time (2 s here), renewals still stuck
      await()
          .atMost(Duration.ofSeconds(3))
          .until(() -> !dispatcher.activeSessions().contains(session.getId()));
    } finally {
      lock.rollback().await().atMost(WAIT);
      holder.close().await().atMost(WAIT);
    }

    // And once the database answers, a new run takes the session over and ends the turn
    SessionLogs.awaitIdle(
        sessions, session.getId(), dev.corral.proto.v1.StopReasonType.STOP_REASON_TYPE_END_TURN);
  }

  @Test
  void pausedHarnessIsRefusedWhenItWakesUp() {
    // Given A's lease, and B's take-over while A was paused past its expiry
    String sessionId = Fixtures.createSession(agents, sessions).getId();
    long epochA =
        leases.acquire(sessionId, "replica-a", 200).await().atMost(WAIT).orElseThrow().getEpoch();
    await()
        .atMost(WAIT)
        .until(
            () -> leases.acquire(sessionId, "replica-b", 60_000).await().atMost(WAIT).isPresent());

    // When A wakes up and writes
    StatusRuntimeException refused =
        catchStatus(() -> sessions.emitEvent(harnessEvent(sessionId, epochA)));

    // Then
    assertThat(refused.getStatus().getCode()).isEqualTo(Status.Code.FAILED_PRECONDITION);
    assertThat(SessionLogs.get(sessions, sessionId).getLastSeq()).isZero();
  }

  @Test
  void aHarnessCompactionMayStandOnlyForEventsTheLogHolds() {
    // Given a session an outside harness holds, with two of its events in the log
    String sessionId = Fixtures.createSession(agents, sessions).getId();
    long epoch = heldElsewhere(sessionId);
    sessions.emitEvent(harnessEvent(sessionId, epoch));
    sessions.emitEvent(harnessEvent(sessionId, epoch));

    // When it emits a compaction that would stand for events still to come
    StatusRuntimeException ahead =
        catchStatus(() -> sessions.emitEvent(compaction(sessionId, epoch, 1_000)));

    // Then it is refused naming the field, and the log is as it was
    assertThat(ahead.getStatus().getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT);
    assertThat(io.grpc.protobuf.StatusProto.fromThrowable(ahead).getDetailsList().toString())
        .contains("event.agent_context_compacted.up_to_seq");
    assertThat(ahead.getStatus().getDescription()).contains("1000").contains("last seq 2");
    assertThat(SessionLogs.get(sessions, sessionId).getLastSeq()).isEqualTo(2);

    // And one that stands for the log's events so far is taken
    sessions.emitEvent(compaction(sessionId, epoch, 2));
    assertThat(SessionLogs.get(sessions, sessionId).getLastSeq()).isEqualTo(3);
  }

  @Test
  void aHarnessMayNotGiveTwoToolCallsOfASessionOneId() throws Exception {
    // Given a session an outside harness holds, with one tool call in its log
    String sessionId = Fixtures.createSession(agents, sessions).getId();
    long epoch = heldElsewhere(sessionId);
    sessions.emitEvent(toolUse(sessionId, epoch, "toolu_once", false));

    // When it emits a custom tool call with the same id
    StatusRuntimeException again =
        catchStatus(() -> sessions.emitEvent(toolUse(sessionId, epoch, "toolu_once", true)));

    // Then it is refused naming the field (every later model request would send two tool_use
    // blocks with one id, which the API refuses), and the log is as it was
    assertThat(again.getStatus().getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT);
    assertThat(io.grpc.protobuf.StatusProto.fromThrowable(again).getDetailsList().toString())
        .contains("event.agent_custom_tool_use.call_id");
    assertThat(SessionLogs.get(sessions, sessionId).getLastSeq()).isEqualTo(1);

    // And of eight emits of one new id at once, exactly one gets in
    ExecutorService pool = Executors.newFixedThreadPool(8);
    try {
      List<Future<Status.Code>> racing = new java.util.ArrayList<>();
      for (int i = 0; i < 8; i++) {
        racing.add(
            pool.submit(
                () -> {
                  try {
                    sessions.emitEvent(toolUse(sessionId, epoch, "toolu_raced", false));
                    return Status.Code.OK;
                  } catch (StatusRuntimeException refused) {
                    return refused.getStatus().getCode();
                  }
                }));
      }
      List<Status.Code> codes = new java.util.ArrayList<>();
      for (Future<Status.Code> outcome : racing) {
        codes.add(outcome.get());
      }
      assertThat(codes).containsOnly(Status.Code.OK, Status.Code.INVALID_ARGUMENT);
      assertThat(codes).containsOnlyOnce(Status.Code.OK);
    } finally {
      pool.shutdownNow();
    }
    assertThat(SessionLogs.get(sessions, sessionId).getLastSeq()).isEqualTo(2);
  }

  @Test
  void aSecondResultOfACustomToolIsRefusedBeforeItsAppendWaitsForAnything() {
    // Given a custom tool call of an outside harness, with its result
    String sessionId = Fixtures.createSession(agents, sessions).getId();
    long epoch = heldElsewhere(sessionId);
    String useId =
        sessions.emitEvent(toolUse(sessionId, epoch, "toolu_custom", true)).getEvent().getId();
    EmitEventRequest result =
        EmitEventRequest.newBuilder()
            .setSessionId(sessionId)
            .setEvent(
                Event.newBuilder()
                    .setUserCustomToolResult(
                        dev.corral.proto.v1.UserCustomToolResult.newBuilder()
                            .setCustomToolUseId(useId)))
            .build();
    sessions.emitEvent(result);

    // When a second result comes while the session's row is locked (its append would wait, and
    // in a batch of other sessions' appends its unique index would roll them all back)
    io.vertx.mutiny.sqlclient.SqlConnection lock =
        dev.corral.testing.SessionRows.lock(pool, sessionId);
    StatusRuntimeException refused;
    try {
      refused =
          catchStatus(
              () ->
                  sessions
                      .withDeadlineAfter(5, java.util.concurrent.TimeUnit.SECONDS)
                      .emitEvent(result));
    } finally {
      dev.corral.testing.SessionRows.rollback(lock);
    }

    // Then it is refused before its append
    assertThat(refused.getStatus().getCode()).isEqualTo(Status.Code.FAILED_PRECONDITION);
    assertThat(refused.getStatus().getDescription()).contains("was already answered");
    assertThat(SessionLogs.get(sessions, sessionId).getLastSeq()).isEqualTo(2);
  }

  private static EmitEventRequest toolUse(
      String sessionId, long epoch, String callId, boolean custom) {
    Event.Builder event = Event.newBuilder();
    if (custom) {
      event.setAgentCustomToolUse(
          dev.corral.proto.v1.AgentCustomToolUse.newBuilder()
              .setCallId(callId)
              .setName("lookup")
              .setInputJson("{}"));
    } else {
      event.setAgentToolUse(
          dev.corral.proto.v1.AgentToolUse.newBuilder()
              .setCallId(callId)
              .setName("bash")
              .setInputJson("{\"command\":\"true\"}")
              .setEvaluatedPermission(
                  dev.corral.proto.v1.EvaluatedPermission.EVALUATED_PERMISSION_ALLOW));
    }
    return EmitEventRequest.newBuilder()
        .setSessionId(sessionId)
        .setLeaseEpoch(epoch)
        .setEvent(event)
        .build();
  }

  /** Takes the session's lease for an outside harness; its epoch. */
  private long heldElsewhere(String sessionId) {
    return leases
        .acquire(sessionId, "replica-elsewhere", 60_000)
        .await()
        .atMost(WAIT)
        .orElseThrow()
        .getEpoch();
  }

  private static EmitEventRequest compaction(String sessionId, long epoch, long upToSeq) {
    return EmitEventRequest.newBuilder()
        .setSessionId(sessionId)
        .setLeaseEpoch(epoch)
        .setEvent(
            Event.newBuilder()
                .setAgentContextCompacted(
                    dev.corral.proto.v1.AgentContextCompacted.newBuilder()
                        .setFromSeq(1)
                        .setUpToSeq(upToSeq)
                        .setSummary("what happened so far")))
        .build();
  }

  @Test
  void wakeTakesAFreeLeaseAndAnIdleHarnessGivesItBack() {
    // Given an idle session with nothing to do
    String sessionId = Fixtures.createSession(agents, sessions).getId();

    // When
    WakeResponse woken = harness.wake(WakeRequest.newBuilder().setSessionId(sessionId).build());

    // Then
    assertThat(woken.getStarted()).isTrue();
    assertThat(woken.getLease().getEpoch()).isEqualTo(1);
    await()
        .atMost(WAIT)
        .until(() -> !SessionLogs.get(sessions, sessionId).getLease().hasExpiresAt());
    assertThat(SessionLogs.get(sessions, sessionId).getLastSeq()).isZero();
  }

  @Test
  void wakeReportsTheReplicaThatHoldsALiveLease() {
    // Given
    String sessionId = Fixtures.createSession(agents, sessions).getId();
    leases.acquire(sessionId, "replica-elsewhere", 60_000).await().atMost(WAIT).orElseThrow();

    // When
    WakeResponse woken = harness.wake(WakeRequest.newBuilder().setSessionId(sessionId).build());

    // Then
    assertThat(woken.getStarted()).isFalse();
    assertThat(woken.getLease().getHolder()).isEqualTo("replica-elsewhere");
  }

  @Test
  void wakeRefusesBadSessions() {
    Session archived = Fixtures.createSession(agents, sessions);
    sessions.archiveSession(
        ArchiveSessionRequest.newBuilder().setSessionId(archived.getId()).build());

    assertThat(
            catchStatus(() -> harness.wake(WakeRequest.newBuilder().setSessionId("nope").build()))
                .getStatus()
                .getCode())
        .isEqualTo(Status.Code.INVALID_ARGUMENT);
    assertThat(
            catchStatus(
                    () ->
                        harness.wake(
                            WakeRequest.newBuilder()
                                .setSessionId("sesn_00000000000000000000000000")
                                .build()))
                .getStatus()
                .getCode())
        .isEqualTo(Status.Code.NOT_FOUND);
    assertThat(
            catchStatus(
                    () ->
                        harness.wake(
                            WakeRequest.newBuilder().setSessionId(archived.getId()).build()))
                .getStatus()
                .getCode())
        .isEqualTo(Status.Code.FAILED_PRECONDITION);
  }

  @Test
  void sessionLeftByADeadReplicaIsTakenOver() {
    // Given a user message and a lease held by a replica that died
    String sessionId = Fixtures.createSession(agents, sessions).getId();
    leases.acquire(sessionId, "dead-replica", 1_000).await().atMost(WAIT).orElseThrow();
    sessions.emitEvent(Fixtures.emit(sessionId, "anyone there?"));

    // Then once the lease expires a harness here takes the session and works it
    await()
        .atMost(WAIT)
        .until(
            () ->
                SessionLogs.get(sessions, sessionId).getLease().getHolder().equals(dispatcherId()));
    assertThat(SessionLogs.get(sessions, sessionId).getLease().getEpoch()).isEqualTo(2);
  }

  @Test
  void userMessageTakesTheLeaseInItsOwnAppend() {
    // Given an idle session that never had a harness
    String sessionId = Fixtures.createSession(agents, sessions).getId();

    // When a message arrives and its turn ends
    sessions.emitEvent(Fixtures.emit(sessionId, "hello"));
    SessionLogs.awaitIdle(
        sessions, sessionId, dev.corral.proto.v1.StopReasonType.STOP_REASON_TYPE_END_TURN);

    // Then one lease (epoch 1) was taken, by the append itself, and the harness wrote under it
    assertThat(SessionLogs.get(sessions, sessionId).getLease().getEpoch()).isEqualTo(1);
    long foreign =
        pool.preparedQuery(
                "SELECT count(*) AS n FROM events WHERE session_id = $1 AND epoch IS NOT NULL AND epoch <> 1")
            .execute(Tuple.of(sessionId))
            .await()
            .atMost(WAIT)
            .iterator()
            .next()
            .getLong("n");
    assertThat(foreign).isZero();
  }

  @Test
  void interruptOfAnIdleSessionLeavesNoWorkBehind() {
    // Given
    String sessionId = Fixtures.createSession(agents, sessions).getId();

    // When
    sessions.emitEvent(
        EmitEventRequest.newBuilder()
            .setSessionId(sessionId)
            .setEvent(
                Event.newBuilder()
                    .setUserInterrupt(dev.corral.proto.v1.UserInterrupt.getDefaultInstance()))
            .build());

    // Then the harness it woke found nothing to do, cleared the flag and gave the lease back
    await()
        .atMost(WAIT)
        .until(
            () ->
                !workPending(sessionId)
                    && !SessionLogs.get(sessions, sessionId).getLease().hasExpiresAt());
    assertThat(SessionLogs.get(sessions, sessionId).getLastSeq()).isEqualTo(1);
  }

  private boolean workPending(String sessionId) {
    return pool.preparedQuery("SELECT work_pending FROM sessions WHERE id = $1")
        .execute(Tuple.of(sessionId))
        .await()
        .atMost(WAIT)
        .iterator()
        .next()
        .getBoolean("work_pending");
  }

  @Inject Dispatcher dispatcher;

  private String dispatcherId() {
    return dispatcher.replicaId();
  }

  private void writeUntilStopped(
      String sessionId, long epoch, AtomicBoolean writing, AtomicInteger refused) {
    while (writing.get()) {
      try {
        sessions.emitEvent(harnessEvent(sessionId, epoch));
      } catch (StatusRuntimeException e) {
        if (e.getStatus().getCode() != Status.Code.FAILED_PRECONDITION) {
          throw e;
        }
        refused.incrementAndGet();
      }
    }
  }

  private static EmitEventRequest harnessEvent(String sessionId, long epoch) {
    return EmitEventRequest.newBuilder()
        .setSessionId(sessionId)
        .setLeaseEpoch(epoch)
        .setEvent(
            Event.newBuilder()
                .setSessionError(
                    SessionError.newBuilder()
                        .setErrorType("test")
                        .setMessage("epoch " + epoch)
                        .setRetryStatus(RetryStatus.RETRY_STATUS_RETRYING)))
        .build();
  }

  private static StatusRuntimeException catchStatus(Runnable call) {
    try {
      call.run();
    } catch (StatusRuntimeException e) {
      return e;
    }
    throw new AssertionError("expected the call to fail");
  }
}
