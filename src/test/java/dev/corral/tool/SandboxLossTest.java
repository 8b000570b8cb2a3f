package dev.corral.tool;

import static dev.corral.testing.SessionLogs.awaitIdle;
import static dev.corral.testing.SessionLogs.log;
import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import dev.corral.proto.v1.AgentServiceGrpc;
import dev.corral.proto.v1.Event;
import dev.corral.proto.v1.ListSandboxesRequest;
import dev.corral.proto.v1.Sandbox;
import dev.corral.proto.v1.SandboxServiceGrpc;
import dev.corral.proto.v1.SandboxState;
import dev.corral.proto.v1.Session;
import dev.corral.proto.v1.SessionServiceGrpc;
import dev.corral.proto.v1.StopReasonType;
import dev.corral.sandbox.local.LocalDriver;
import dev.corral.testing.FakeAnthropic;
import dev.corral.testing.FakeAnthropic.Reply;
import dev.corral.testing.Fixtures;
import dev.corral.testing.HarnessTestProfile;
import dev.corral.testing.InjectFakeAnthropic;
import dev.corral.testing.Processes;
import io.quarkus.grpc.GrpcClient;
import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.TestProfile;
import jakarta.inject.Inject;
import java.time.Duration;
import java.util.List;
import java.util.UUID;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * A session's sandbox dies in the middle of a call: the call becomes a tool error, the loss is
 * recorded, and the next call gets a new sandbox with a note that the workspace was reset.
 */
@QuarkusTest
@TestProfile(HarnessTestProfile.class)
class SandboxLossTest {

  @GrpcClient("corral")
  SessionServiceGrpc.SessionServiceBlockingStub sessions;

  @GrpcClient("corral")
  AgentServiceGrpc.AgentServiceBlockingStub agents;

  @GrpcClient("corral")
  SandboxServiceGrpc.SandboxServiceBlockingStub sandboxes;

  @GrpcClient("corral")
  dev.corral.proto.v1.EnvironmentServiceGrpc.EnvironmentServiceBlockingStub environments;

  @InjectFakeAnthropic FakeAnthropic model;

  @Inject LocalDriver local;

  @Inject io.vertx.mutiny.sqlclient.Pool pool;

  @jakarta.inject.Inject dev.corral.sandbox.Sandboxes sandboxTimers;

  @BeforeEach
  void reset() {
    model.reset();
  }

  @Test
  void aSandboxKilledMidCallIsAToolErrorAndTheNextCallGetsAFreshOne() {
    // Given a turn whose first call writes a file, then runs long; the second reads the file
    String marker = "loss-" + UUID.randomUUID();
    model.enqueue(
        Reply.toolUse("toolu_long", "bash", "{\"command\":\"echo kept > f; sleep 60\"}"),
        Reply.toolUse("toolu_next", "bash", "{\"command\":\"cat f 2>&1; echo next\"}"),
        Reply.text("Done."));
    Session session = start(marker);
    Sandbox first = awaitSandbox(session.getId());
    await()
        .atMost(Duration.ofSeconds(10))
        .until(() -> local.hosts(first.getId()) && Processes.running("sleep 60"));

    // When the sandbox dies under the call
    local.release(first.getId(), local.host()).await().atMost(Duration.ofSeconds(10));

    // Then
    awaitIdle(sessions, session.getId(), StopReasonType.STOP_REASON_TYPE_END_TURN);
    List<Event> events = log(sessions, session.getId());
    List<Event> provisioned = ofType(events, "sandbox.provisioned");
    List<Event> lost = ofType(events, "sandbox.lost");
    List<Event> results = ofType(events, "agent.tool_result");
    assertThat(provisioned).hasSize(2);
    assertThat(lost).hasSize(1);
    assertThat(results).hasSize(2);
    String firstId = provisioned.get(0).getSandboxProvisioned().getSandboxId();
    String secondId = provisioned.get(1).getSandboxProvisioned().getSandboxId();
    assertThat(firstId).isEqualTo(first.getId());
    assertThat(secondId).isNotEqualTo(firstId);
    assertThat(lost.get(0).getSandboxLost().getSandboxId()).isEqualTo(firstId);
    // the killed call is an error that says what happened, recorded after the loss
    assertThat(results.get(0).getAgentToolResult().getIsError()).isTrue();
    assertThat(text(results.get(0))).contains("sandbox was lost");
    assertThat(lost.get(0).getSeq()).isLessThan(results.get(0).getSeq());
    // the next call ran in a new, empty workspace and the model was told so
    assertThat(provisioned.get(1).getSeq()).isLessThan(results.get(1).getSeq());
    assertThat(results.get(1).getAgentToolResult().getIsError()).isFalse();
    assertThat(text(results.get(1)))
        .startsWith(SessionTools.RESET_NOTE)
        .contains("No such file")
        .endsWith("next");
    assertThat(everySandboxOf(session.getId()))
        .extracting(Sandbox::getId, Sandbox::getState)
        .containsExactly(
            org.assertj.core.groups.Tuple.tuple(secondId, SandboxState.SANDBOX_STATE_READY),
            org.assertj.core.groups.Tuple.tuple(firstId, SandboxState.SANDBOX_STATE_LOST));
    // and the lost one holds no timer to end it at its lifetime; the ready one does
    assertThat(sandboxTimers.endsAtItsLifetimeHere(firstId)).isFalse();
    assertThat(sandboxTimers.endsAtItsLifetimeHere(secondId)).isTrue();
  }

  @Test
  void aSandboxAMemberProvisionsWhileTheHarnessProvisionsIsTheOneTheModelWorksIn() {
    // Given a session whose environment's setup takes a while, and a turn whose call reads a file
    String setup = "sleep 4." + System.nanoTime() % 1000;
    String environment =
        environments
            .createEnvironment(
                dev.corral.proto.v1.CreateEnvironmentRequest.newBuilder()
                    .setName("slow-setup")
                    .setDriver(dev.corral.proto.v1.SandboxDriver.SANDBOX_DRIVER_LOCAL)
                    .addSetupCommands(setup)
                    .build())
            .getEnvironment()
            .getId();
    model.enqueue(
        Reply.toolUse("toolu_cat", "bash", "{\"command\":\"cat /workspace/marker 2>&1\"}"),
        Reply.text("Done."));
    Session session =
        Fixtures.withTools(
            agents,
            sessions,
            dev.corral.proto.v1.CreateSessionRequest.newBuilder()
                .setEnvironmentId(environment)
                .addInitialEvents(Fixtures.userMessage("adopt-" + UUID.randomUUID())));
    await().atMost(Duration.ofSeconds(10)).until(() -> Processes.running(setup));

    // When, while the harness's sandbox runs its setup, the environment loses its setup and a
    // member provisions a sandbox for the session (from the session's environment, as it is now)
    // and writes a file in it
    environments.updateEnvironment(
        dev.corral.proto.v1.UpdateEnvironmentRequest.newBuilder()
            .setEnvironmentId(environment)
            .setSetupCommands(dev.corral.proto.v1.SetupCommands.getDefaultInstance())
            .build());
    Sandbox members =
        sandboxes
            .provision(
                dev.corral.proto.v1.ProvisionRequest.newBuilder()
                    .setSessionId(session.getId())
                    .build())
            .getSandbox();
    sandboxes.execute(
        dev.corral.proto.v1.ExecuteRequest.newBuilder()
            .setSandboxId(members.getId())
            .setName("write")
            .setInputJson("{\"file_path\":\"marker\",\"content\":\"the member's\"}")
            .build());
    assertThat(Processes.running(setup))
        .as("the harness's setup outlasted the member's provision")
        .isTrue();

    // Then the model's call ran in the member's sandbox, the only one the session ever had
    awaitIdle(sessions, session.getId(), StopReasonType.STOP_REASON_TYPE_END_TURN);
    List<Event> results = ofType(log(sessions, session.getId()), "agent.tool_result");
    assertThat(results).hasSize(1);
    assertThat(text(results.get(0))).isEqualTo("the member's");
    assertThat(everySandboxOf(session.getId()))
        .extracting(Sandbox::getId)
        .containsExactly(members.getId());
    await().atMost(Duration.ofSeconds(10)).until(() -> !Processes.running(setup));
  }

  @Test
  void aSandboxLeftProvisioningByADeadReplicaDoesNotHoldTheSession() {
    // Given a session whose record names a Kubernetes sandbox a replica was provisioning when it
    // died (a record that only the reconciler would end, minutes later)
    model.enqueue(
        Reply.toolUse("toolu_after", "bash", "{\"command\":\"echo fine\"}"), Reply.text("Done."));
    Session session =
        Fixtures.withTools(agents, sessions, dev.corral.proto.v1.CreateSessionRequest.newBuilder());
    String stale = dev.corral.common.IdKind.SANDBOX.next();
    pool.preparedQuery(
            "INSERT INTO sandboxes (id, session_id, driver, state, host, resources, expires_at,"
                + " tenant_id) SELECT $1, id, 'kubernetes', 'provisioning', 'corral-' || $1,"
                + " '\\x'::bytea, clock_timestamp() + interval '1 hour', tenant_id"
                + " FROM sessions WHERE id = $2")
        .execute(io.vertx.mutiny.sqlclient.Tuple.of(stale, session.getId()))
        .await()
        .atMost(Duration.ofSeconds(10));

    // When a turn calls a tool
    sessions.emitEvent(
        dev.corral.proto.v1.EmitEventRequest.newBuilder()
            .setSessionId(session.getId())
            .setEvent(Fixtures.userMessage("after-" + UUID.randomUUID()))
            .build());
    awaitIdle(sessions, session.getId(), StopReasonType.STOP_REASON_TYPE_END_TURN);

    // Then the call ran in a sandbox of its own, and the stale one was released, saying why
    List<Event> results = ofType(log(sessions, session.getId()), "agent.tool_result");
    assertThat(results).hasSize(1);
    assertThat(results.get(0).getAgentToolResult().getIsError()).as(text(results.get(0))).isFalse();
    assertThat(text(results.get(0))).isEqualTo("fine");
    Sandbox released =
        sandboxes
            .getSandbox(
                dev.corral.proto.v1.GetSandboxRequest.newBuilder().setSandboxId(stale).build())
            .getSandbox();
    assertThat(released.getState()).isEqualTo(SandboxState.SANDBOX_STATE_RELEASED);
    assertThat(released.getReleaseReason()).contains("superseded");
  }

  @Test
  void aSandboxThatNeverBecameReadyIsNoWorkspaceTheModelLost() {
    // Given a session whose record names a Kubernetes sandbox that was lost while it was still
    // being provisioned (the cluster refused its pod, or its setup failed): the model never had it
    model.enqueue(
        Reply.toolUse("toolu_first", "bash", "{\"command\":\"echo fine\"}"), Reply.text("Done."));
    Session session =
        Fixtures.withTools(agents, sessions, dev.corral.proto.v1.CreateSessionRequest.newBuilder());
    pool.preparedQuery(
            "INSERT INTO sandboxes (id, session_id, driver, state, host, resources, expires_at,"
                + " tenant_id, lost_reason) SELECT $1, id, 'kubernetes', 'lost', 'corral-' || $1,"
                + " '\\x'::bytea, clock_timestamp() + interval '1 hour', tenant_id, 'setup failed'"
                + " FROM sessions WHERE id = $2")
        .execute(
            io.vertx.mutiny.sqlclient.Tuple.of(
                dev.corral.common.IdKind.SANDBOX.next(), session.getId()))
        .await()
        .atMost(Duration.ofSeconds(10));

    // When a turn calls a tool
    sessions.emitEvent(
        dev.corral.proto.v1.EmitEventRequest.newBuilder()
            .setSessionId(session.getId())
            .setEvent(Fixtures.userMessage("first-" + UUID.randomUUID()))
            .build());
    awaitIdle(sessions, session.getId(), StopReasonType.STOP_REASON_TYPE_END_TURN);

    // Then its result says nothing of a workspace that was reset
    List<Event> results = ofType(log(sessions, session.getId()), "agent.tool_result");
    assertThat(results).hasSize(1);
    assertThat(text(results.get(0))).isEqualTo("fine");
  }

  @Test
  void aSessionWhoseTurnNeedsNoToolGetsNoSandbox() {
    // Given
    String marker = "no-tool-" + UUID.randomUUID();
    model.enqueue(Reply.text("Nothing to run."));

    // When
    Session session = start(marker);
    awaitIdle(sessions, session.getId(), StopReasonType.STOP_REASON_TYPE_END_TURN);

    // Then
    assertThat(ofType(log(sessions, session.getId()), "sandbox.provisioned")).isEmpty();
    assertThat(everySandboxOf(session.getId())).isEmpty();
  }

  /** The session's sandboxes, ended ones too. */
  private List<Sandbox> everySandboxOf(String sessionId) {
    return sandboxes
        .listSandboxes(
            ListSandboxesRequest.newBuilder().setSessionId(sessionId).setIncludeEnded(true).build())
        .getSandboxesList();
  }

  @Test
  void aCallTheSandboxHasNoRoomForSaysSoNotThatNoSandboxCouldBeProvisioned() {
    // Given a reply of more calls at once than a sandbox holds waiting, each long enough that
    // all of them are sent before the first ends, in whatever order they start
    FakeAnthropic.Stream many = FakeAnthropic.Reply.stream();
    for (int i = 0; i < 66; i++) {
      many.toolUse("toolu_call" + i, "bash", "{\"command\":\"sleep 0.2\"}");
    }
    model.enqueue(many.stop("tool_use"), FakeAnthropic.Reply.text("Done."));

    // When the turn runs
    Session session = start("many-" + UUID.randomUUID());
    awaitIdle(sessions, session.getId(), StopReasonType.STOP_REASON_TYPE_END_TURN);

    // Then the call that found no room is an error that says why, and the sandbox was there
    List<String> errors =
        ofType(log(sessions, session.getId()), "agent.tool_result").stream()
            .filter(result -> result.getAgentToolResult().getIsError())
            .map(SandboxLossTest::text)
            .toList();
    assertThat(errors).isNotEmpty();
    assertThat(errors)
        .allSatisfy(
            error ->
                assertThat(error)
                    .startsWith("The call failed: the sandbox has 64 calls")
                    .doesNotContain("provisioned"));
  }

  private Sandbox awaitSandbox(String sessionId) {
    ListSandboxesRequest request =
        ListSandboxesRequest.newBuilder().setSessionId(sessionId).build();
    await()
        .atMost(Duration.ofSeconds(10))
        .until(() -> sandboxes.listSandboxes(request).getSandboxesCount() == 1);
    return sandboxes.listSandboxes(request).getSandboxes(0);
  }

  private Session start(String marker) {
    return Fixtures.startWithTools(agents, sessions, marker);
  }

  private static List<Event> ofType(List<Event> events, String type) {
    return events.stream().filter(event -> event.getType().equals(type)).toList();
  }

  private static String text(Event result) {
    return result.getAgentToolResult().getContent(0).getText().getText();
  }
}
