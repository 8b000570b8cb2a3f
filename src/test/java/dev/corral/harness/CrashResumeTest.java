package dev.corral.harness;

import static dev.corral.testing.Fixtures.userMessage;
import static dev.corral.testing.SessionLogs.awaitIdle;
import static dev.corral.testing.SessionLogs.log;
import static org.assertj.core.api.Assertions.assertThat;

import dev.corral.model.ModelResponse;
import dev.corral.proto.v1.Agent;
import dev.corral.proto.v1.AgentServiceGrpc;
import dev.corral.proto.v1.ConfirmationResult;
import dev.corral.proto.v1.CreateAgentRequest;
import dev.corral.proto.v1.CreateSessionRequest;
import dev.corral.proto.v1.Event;
import dev.corral.proto.v1.ModelUsage;
import dev.corral.proto.v1.PermissionPolicy;
import dev.corral.proto.v1.Session;
import dev.corral.proto.v1.SessionServiceGrpc;
import dev.corral.proto.v1.StopReasonType;
import dev.corral.proto.v1.UserToolConfirmation;
import dev.corral.session.AppendRequest;
import dev.corral.session.EventLog;
import dev.corral.session.NewEvent;
import dev.corral.testing.FakeAnthropic;
import dev.corral.testing.FakeAnthropic.Reply;
import dev.corral.testing.HarnessTestProfile;
import dev.corral.testing.InjectFakeAnthropic;
import io.quarkus.grpc.GrpcClient;
import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.TestProfile;
import io.vertx.mutiny.sqlclient.Pool;
import io.vertx.mutiny.sqlclient.Tuple;
import jakarta.inject.Inject;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * A harness dies at a chosen point of a turn (we write the log it left behind, under its lease,
 * then let the lease expire); the dispatcher gives the session to a new harness, which must finish
 * the turn without duplicating anything and without silently re-running a tool call.
 */
@QuarkusTest
@TestProfile(CrashResumeTest.Profile.class)
class CrashResumeTest {

  /**
   * The harness profile with retries an hour apart: a model call made again after a take-over must
   * go at once, and the session would wait that long if it went after a backoff.
   */
  public static class Profile extends HarnessTestProfile {
    @Override
    public Map<String, String> getConfigOverrides() {
      return overriddenWith(
          "corral.model.retry-initial-backoff", "1h", "corral.model.retry-max-backoff", "1h");
    }
  }

  private static final Duration WAIT = Duration.ofSeconds(10);

  @GrpcClient("corral")
  SessionServiceGrpc.SessionServiceBlockingStub sessions;

  @GrpcClient("corral")
  AgentServiceGrpc.AgentServiceBlockingStub agents;

  @InjectFakeAnthropic FakeAnthropic model;

  @Inject EventLog eventLog;

  @Inject Leases leases;

  @Inject Pool pool;

  private String marker;
  private DeadHarness dead;

  @BeforeEach
  void reset() {
    model.reset();
    marker = "m-" + UUID.randomUUID();
  }

  @Inject io.micrometer.core.instrument.MeterRegistry metrics;

  @Test
  void diedAfterTakingTheLease() {
    // Given a harness that took the lease after the user's message and died
    dead = deadHarness();
    double takeOversBefore = metrics.counter("corral.lease.takeovers").count();

    // When it is replaced
    model.enqueue(Reply.text("Hello."));
    dead.dies();

    // Then the turn runs as if nothing happened, and the take-over is counted
    List<Event> events = finished();
    assertThat(metrics.counter("corral.lease.takeovers").count()).isGreaterThan(takeOversBefore);
    assertThat(types(events))
        .containsExactly(
            "user.message",
            "session.status_running",
            "span.model_request_start",
            "agent.message",
            "span.model_request_end",
            "session.status_idle");
  }

  @Test
  void diedWhileTheModelStreamed() {
    // Given a harness that started a model call and died before its answer was recorded
    dead = deadHarness();
    dead.appends(
        EventsFactory.running(),
        EventsFactory.spanStart(dev.corral.common.IdKind.EVENT.next(), "claude-test"));

    // When
    model.enqueue(Reply.text("Answer."));
    dead.dies();

    // Then the orphan call is closed as failed (a failed call: one of the turn's retries) and the
    // call is issued again, once, at once: the call was cut by its replica's end, not refused by
    // the API, and the take-over already waited out a lease
    List<Event> events = finished();
    assertThat(types(events))
        .containsExactly(
            "user.message",
            "session.status_running",
            "span.model_request_start",
            "span.model_request_end",
            "session.error",
            "span.model_request_start",
            "agent.message",
            "span.model_request_end",
            "session.status_idle");
    assertThat(events.get(3).getSpanModelRequestEnd().getIsError()).isTrue();
    assertThat(events.get(3).getSpanModelRequestEnd().getErrorMessage()).contains("restarted");
    assertThat(events.get(4).getSessionError().getRetryStatus())
        .isEqualTo(dev.corral.proto.v1.RetryStatus.RETRY_STATUS_RETRYING);
    assertThat(model.requestsMentioning(marker)).hasSize(1);
  }

  @Test
  void aReplicaThatShutDownDuringAModelCallLeavesItToBeMadeAgainWithoutAnError() {
    // Given a harness that started a model call, and whose replica then shut down: it gave its
    // lease back (a rolling deploy)
    dead = deadHarness();
    dead.appends(
        EventsFactory.running(),
        EventsFactory.spanStart(dev.corral.common.IdKind.EVENT.next(), "claude-test"));

    // When another takes the session
    model.enqueue(Reply.text("Answer."));
    dead.givesItsLeaseBack();

    // Then the call is closed and made again, with no error for the client and no retry spent
    List<Event> events = finished();
    assertThat(types(events))
        .containsExactly(
            "user.message",
            "session.status_running",
            "span.model_request_start",
            "span.model_request_end",
            "span.model_request_start",
            "agent.message",
            "span.model_request_end",
            "session.status_idle");
    assertThat(model.requestsMentioning(marker)).hasSize(1);
  }

  @Test
  void diedBetweenTheToolCallAndItsResult() {
    // Given a harness that recorded a bash call and died before its result
    dead = deadHarness();
    dead.modelAnswered(
        new ModelResponse.ToolUse("toolu_rm", "bash", "{\"command\":\"rm -rf build\"}"));

    // When
    model.enqueue(Reply.text("I will check first."));
    dead.dies();

    // Then the call is not run again: its outcome is unknown, and the model is told
    List<Event> events = finished();
    Event result = only(events, "agent.tool_result");
    assertThat(result.getAgentToolResult().getIsError()).isTrue();
    assertThat(text(result))
        .contains("outcome of this bash call is unknown")
        .contains("harness restarted");
    var toolResult =
        model.requestsMentioning(marker).get(0).messages().get(2).path("content").get(0);
    assertThat(toolResult.path("tool_use_id").asText()).isEqualTo("toolu_rm");
    assertEveryToolCallHasOneResult(events);
  }

  @Test
  void diedWhileAReadOnlyToolRanSoItRunsAgain() {
    // Given a harness that recorded a read call and died before its result
    dead = deadHarness();
    dead.modelAnswered(
        new ModelResponse.ToolUse("toolu_rd", "read", "{\"file_path\":\"README.md\"}"));

    // When
    model.enqueue(Reply.text("Read it."));
    dead.dies();

    // Then read, being read-only, is simply run again (in an empty workspace: no such file)
    List<Event> events = finished();
    assertThat(text(only(events, "agent.tool_result"))).isEqualTo("README.md: no such file");
    assertEveryToolCallHasOneResult(events);
  }

  @Test
  void diedAfterTheToolResultBeforeTheNextModelCall() {
    // Given
    dead = deadHarness();
    String toolUseId =
        dead.modelAnswered(new ModelResponse.ToolUse("toolu_ls", "bash", "{\"command\":\"ls\"}"));
    dead.appends(EventsFactory.toolResult(toolUseId, "README.md", false));

    // When
    model.enqueue(Reply.text("There is a README."));
    dead.dies();

    // Then the model gets the recorded result; nothing runs twice
    List<Event> events = finished();
    assertThat(text(only(events, "agent.tool_result"))).isEqualTo("README.md");
    assertThat(model.requestsMentioning(marker)).hasSize(1);
    assertEveryToolCallHasOneResult(events);
  }

  @Test
  void diedAfterTheUserAllowedACallThatAsked() {
    // Given a call that waited for confirmation, the user's allow, and a harness that died after it
    dead = deadHarness(PermissionPolicy.PERMISSION_POLICY_ALWAYS_ASK);
    String toolUseId =
        dead.modelAnswered(new ModelResponse.ToolUse("toolu_x", "bash", "{\"command\":\"make\"}"));
    dead.appends(
        EventsFactory.idle(Decision.stopReason(StopReasonType.STOP_REASON_TYPE_REQUIRES_ACTION)));
    dead = dead.nextHarness();
    dead.confirms(toolUseId);
    dead.appends(EventsFactory.running());

    // When
    model.enqueue(Reply.text("Build state unknown."));
    dead.dies();

    // Then the allowed call may have run: unknown outcome
    List<Event> events = finished();
    assertThat(text(only(events, "agent.tool_result"))).contains("unknown");
    assertEveryToolCallHasOneResult(events);
  }

  // --- the dead harness ----------------------------------------------------------------------

  private DeadHarness deadHarness() {
    return deadHarness(PermissionPolicy.PERMISSION_POLICY_ALWAYS_ALLOW);
  }

  private DeadHarness deadHarness(PermissionPolicy bashPolicy) {
    Agent agent =
        agents
            .createAgent(
                CreateAgentRequest.newBuilder()
                    .setName("crash test")
                    .setModel("claude-test")
                    .addTools(dev.corral.testing.Fixtures.bashToolset(bashPolicy))
                    .build())
            .getAgent();
    Session session =
        sessions
            .createSession(CreateSessionRequest.newBuilder().setAgentId(agent.getId()).build())
            .getSession();
    long epoch =
        leases
            .acquire(session.getId(), "dead-replica", 60_000)
            .await()
            .atMost(WAIT)
            .orElseThrow()
            .getEpoch();
    DeadHarness harness = new DeadHarness(session.getId(), epoch, agent);
    eventLog
        .append(AppendRequest.of(session.getId(), NewEvent.of(userMessage(marker))))
        .await()
        .atMost(WAIT);
    return harness;
  }

  /** Writes what a harness would have written, under its lease, then lets the lease run out. */
  private final class DeadHarness {
    private final String sessionId;
    private final long epoch;
    private final Agent agent;

    DeadHarness(String sessionId, long epoch, Agent agent) {
      this.sessionId = sessionId;
      this.epoch = epoch;
      this.agent = agent;
    }

    void appends(NewEvent... events) {
      eventLog
          .append(new AppendRequest(sessionId, List.of(events), null, epoch))
          .await()
          .atMost(WAIT);
    }

    /** Records a model turn that answered with {@code block}; returns the id of its event. */
    String modelAnswered(ModelResponse.Block block) {
      String spanId = dev.corral.common.IdKind.EVENT.next();
      String blockId = dev.corral.common.IdKind.EVENT.next();
      appends(EventsFactory.running(), EventsFactory.spanStart(spanId, "claude-test"));
      appends(
          EventsFactory.block(blockId, block, agent),
          EventsFactory.spanEnd(
              spanId,
              new ModelResponse(
                  "msg_1", List.of(block), "tool_use", ModelUsage.getDefaultInstance())));
      return blockId;
    }

    /** The idle gave the lease back; the harness woken by the confirmation takes a new one. */
    DeadHarness nextHarness() {
      long next =
          leases
              .acquire(sessionId, "dead-replica", 60_000)
              .await()
              .atMost(WAIT)
              .orElseThrow()
              .getEpoch();
      return new DeadHarness(sessionId, next, agent);
    }

    void confirms(String toolUseId) {
      Event confirmation =
          Event.newBuilder()
              .setUserToolConfirmation(
                  UserToolConfirmation.newBuilder()
                      .setToolUseId(toolUseId)
                      .setResult(ConfirmationResult.CONFIRMATION_RESULT_ALLOW))
              .build();
      eventLog.append(AppendRequest.of(sessionId, NewEvent.of(confirmation))).await().atMost(WAIT);
    }

    /** kill -9: the lease is simply never renewed; here it ends now. */
    /** As a replica shutting down does: the lease is released, the work left pending. */
    void givesItsLeaseBack() {
      pool.preparedQuery(
              "UPDATE sessions SET lease_expires_at = NULL, work_pending = true"
                  + " WHERE id = $1 AND lease_epoch = $2")
          .execute(Tuple.of(sessionId, epoch))
          .await()
          .atMost(WAIT);
    }

    void dies() {
      pool.preparedQuery(
              "UPDATE sessions SET lease_expires_at = clock_timestamp() WHERE id = $1 AND lease_epoch = $2")
          .execute(Tuple.of(sessionId, epoch))
          .await()
          .atMost(WAIT);
    }
  }

  private List<Event> finished() {
    awaitIdle(sessions, dead.sessionId, StopReasonType.STOP_REASON_TYPE_END_TURN);
    List<Event> events = log(sessions, dead.sessionId);
    assertThat(events).extracting(Event::getId).doesNotHaveDuplicates();
    assertThat(events.stream().filter(Event::hasAgentMessage)).hasSize(1);
    return events;
  }

  private static void assertEveryToolCallHasOneResult(List<Event> events) {
    Map<String, Integer> results = new HashMap<>();
    events.stream()
        .filter(Event::hasAgentToolResult)
        .forEach(e -> results.merge(e.getAgentToolResult().getToolUseId(), 1, Integer::sum));
    events.stream()
        .filter(Event::hasAgentToolUse)
        .forEach(
            use ->
                assertThat(results.get(use.getId())).as("results of " + use.getId()).isEqualTo(1));
  }

  private static List<String> types(List<Event> events) {
    return events.stream().map(Event::getType).toList();
  }

  private static String text(Event result) {
    return result.getAgentToolResult().getContent(0).getText().getText();
  }

  private static Event only(List<Event> events, String type) {
    List<Event> matching = events.stream().filter(event -> event.getType().equals(type)).toList();
    assertThat(matching).as(type).hasSize(1);
    return matching.get(0);
  }
}
