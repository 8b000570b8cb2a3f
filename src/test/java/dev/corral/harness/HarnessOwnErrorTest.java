package dev.corral.harness;

import static dev.corral.testing.SessionLogs.awaitIdle;
import static dev.corral.testing.SessionLogs.log;
import static dev.corral.testing.SessionLogs.types;
import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import dev.corral.proto.v1.AgentServiceGrpc;
import dev.corral.proto.v1.Event;
import dev.corral.proto.v1.RetryStatus;
import dev.corral.proto.v1.Session;
import dev.corral.proto.v1.SessionServiceGrpc;
import dev.corral.proto.v1.StopReasonType;
import dev.corral.testing.FakeAnthropic;
import dev.corral.testing.FakeAnthropic.Reply;
import dev.corral.testing.Fixtures;
import dev.corral.testing.HarnessTestProfile;
import dev.corral.testing.InjectFakeAnthropic;
import io.quarkus.grpc.GrpcClient;
import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.TestProfile;
import io.vertx.mutiny.sqlclient.Pool;
import io.vertx.mutiny.sqlclient.Row;
import io.vertx.mutiny.sqlclient.Tuple;
import jakarta.inject.Inject;
import java.time.Duration;
import java.util.List;
import java.util.Set;
import java.util.UUID;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * A bug of the harness's own that stops every run of a session the same way: each run ends and the
 * next tries at its lease's expiry. After {@code corral.harness.max-run-errors} (3) such runs the
 * turn is given up and the client told, rather than tried for ever.
 */
@QuarkusTest
@TestProfile(HarnessOwnErrorTest.Profile.class)
class HarnessOwnErrorTest {

  /** The harness profile, with a bug put in the tools ({@link FaultyTools}). */
  public static class Profile extends HarnessTestProfile {
    @Override
    public Set<Class<?>> getEnabledAlternatives() {
      return Set.of(FaultyTools.class);
    }
  }

  @GrpcClient("corral")
  SessionServiceGrpc.SessionServiceBlockingStub sessions;

  @GrpcClient("corral")
  AgentServiceGrpc.AgentServiceBlockingStub agents;

  @InjectFakeAnthropic FakeAnthropic model;

  @Inject Pool pool;

  @Inject Dispatcher dispatcher;

  private String marker;

  @BeforeEach
  void reset() {
    model.reset();
    marker = "m-" + UUID.randomUUID();
  }

  @Test
  void aBugMetAtEveryTryGivesTheTurnUpAfterThreeRunsAndTheNextMessageIsAnswered() {
    // Given a read-only call, which a new run makes again, that meets a bug every time it is sent
    model.enqueue(
        Reply.toolUse(
            "toolu_fault", "read", "{\"file_path\":\"/workspace/" + FaultyTools.FAULT + "\"}"));
    Session session = Fixtures.startWithTools(agents, sessions, marker);

    // When the runs stop on it, one after the other
    awaitIdle(sessions, session.getId(), StopReasonType.STOP_REASON_TYPE_RETRIES_EXHAUSTED);

    // Then three runs met it, the fourth gave the turn up without sending it again, and the model
    // was asked once
    assertThat(FaultyTools.faults(session.getId())).isEqualTo(3);
    assertThat(model.requestsMentioning(marker)).hasSize(1);
    List<Event> events = log(sessions, session.getId());
    assertThat(types(events))
        .containsExactly(
            "user.message",
            "session.status_running",
            "span.model_request_start",
            "agent.tool_use",
            "span.model_request_end",
            "agent.tool_result",
            "session.error",
            "session.status_idle");
    Event result = events.get(5);
    assertThat(result.getAgentToolResult().getIsError()).isTrue();
    assertThat(result.getAgentToolResult().getContent(0).getText().getText())
        .contains("given up")
        .contains("3 times in a row");
    Event error = events.get(6);
    assertThat(error.getSessionError().getErrorType()).isEqualTo("unknown_error");
    assertThat(error.getSessionError().getRetryStatus())
        .isEqualTo(RetryStatus.RETRY_STATUS_EXHAUSTED);
    assertThat(failures(session.getId())).isZero();

    // When the client sends another message, it is answered as usual
    model.enqueue(Reply.text("Back."));
    sessions.emitEvent(Fixtures.emit(session.getId(), "again " + marker));
    awaitIdle(sessions, session.getId(), StopReasonType.STOP_REASON_TYPE_END_TURN);
    assertThat(FaultyTools.faults(session.getId())).isEqualTo(3);
  }

  @Test
  void aBugThatStopsEvenTheRunGivingUpLeavesTheSessionUntilTheClientSendsMore() {
    // Given a session whose every run stops as it loads
    model.enqueue(Reply.text("First."));
    Session session = Fixtures.startWithTools(agents, sessions, marker);
    awaitIdle(sessions, session.getId(), StopReasonType.STOP_REASON_TYPE_END_TURN);
    await()
        .atMost(Duration.ofSeconds(10))
        .until(() -> !dispatcher.activeSessions().contains(session.getId()));
    FaultyTools.FAULTY_PREPARE.add(session.getId());
    sessions.emitEvent(Fixtures.emit(session.getId(), "second " + marker));

    // When three runs stopped on it and the fourth, which would give up, stopped too
    await().atMost(Duration.ofSeconds(30)).until(() -> FaultyTools.faults(session.getId()) >= 4);

    // Then no run takes the session any more: no work is pending, and the count is one short of
    // a give-up
    // (for three leases' time: corral.harness.lease-ttl is 2 s)
    await()
        .during(Duration.ofSeconds(6))
        .atMost(Duration.ofSeconds(8))
        .until(() -> FaultyTools.faults(session.getId()) == 4);
    assertThat(workPending(session.getId())).isFalse();
    assertThat(failures(session.getId())).isEqualTo(2);

    // When the client sends more, one run tries it, and one gives up after it, then nothing
    sessions.emitEvent(Fixtures.emit(session.getId(), "third " + marker));
    await().atMost(Duration.ofSeconds(15)).until(() -> FaultyTools.faults(session.getId()) == 6);
    await()
        .during(Duration.ofSeconds(4))
        .atMost(Duration.ofSeconds(6))
        .until(() -> FaultyTools.faults(session.getId()) == 6);
    assertThat(workPending(session.getId())).isFalse();
  }

  private int failures(String sessionId) {
    return row(sessionId).getInteger("harness_failures");
  }

  private boolean workPending(String sessionId) {
    return row(sessionId).getBoolean("work_pending");
  }

  private Row row(String sessionId) {
    return pool.preparedQuery("SELECT harness_failures, work_pending FROM sessions WHERE id = $1")
        .execute(Tuple.of(sessionId))
        .await()
        .atMost(Duration.ofSeconds(5))
        .iterator()
        .next();
  }
}
