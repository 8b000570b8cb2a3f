package dev.corral.harness;

import static dev.corral.testing.Fixtures.userMessage;
import static dev.corral.testing.SessionLogs.awaitIdle;
import static dev.corral.testing.SessionLogs.log;
import static dev.corral.testing.SessionLogs.types;
import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import com.fasterxml.jackson.databind.JsonNode;
import dev.corral.proto.v1.AgentServiceGrpc;
import dev.corral.proto.v1.ConfirmationResult;
import dev.corral.proto.v1.ContentBlock;
import dev.corral.proto.v1.CreateAgentRequest;
import dev.corral.proto.v1.CreateSessionRequest;
import dev.corral.proto.v1.CustomTool;
import dev.corral.proto.v1.EmitEventRequest;
import dev.corral.proto.v1.Event;
import dev.corral.proto.v1.PermissionPolicy;
import dev.corral.proto.v1.RetryStatus;
import dev.corral.proto.v1.Session;
import dev.corral.proto.v1.SessionBudget;
import dev.corral.proto.v1.SessionServiceGrpc;
import dev.corral.proto.v1.SessionStatus;
import dev.corral.proto.v1.StopReasonType;
import dev.corral.proto.v1.StreamEventsRequest;
import dev.corral.proto.v1.TextBlock;
import dev.corral.proto.v1.Tool;
import dev.corral.proto.v1.UserCustomToolResult;
import dev.corral.proto.v1.UserInterrupt;
import dev.corral.proto.v1.UserToolConfirmation;
import dev.corral.testing.FakeAnthropic;
import dev.corral.testing.FakeAnthropic.Reply;
import dev.corral.testing.HarnessTestProfile;
import dev.corral.testing.InjectFakeAnthropic;
import dev.corral.testing.Processes;
import dev.corral.testing.StreamRecorder;
import io.grpc.Channel;
import io.quarkus.grpc.GrpcClient;
import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.TestProfile;
import java.time.Duration;
import java.util.List;
import java.util.UUID;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** Full sessions through the gRPC API, with the harness talking to a fake Messages API. */
@QuarkusTest
@TestProfile(HarnessTestProfile.class)
class HarnessTest {

  @GrpcClient("corral")
  SessionServiceGrpc.SessionServiceBlockingStub sessions;

  @GrpcClient("corral")
  AgentServiceGrpc.AgentServiceBlockingStub agents;

  @GrpcClient("corral")
  Channel channel;

  @InjectFakeAnthropic FakeAnthropic model;

  @jakarta.inject.Inject dev.corral.session.EventLog eventLog;

  private String marker;

  @BeforeEach
  void reset() {
    model.reset();
    marker = "m-" + UUID.randomUUID();
  }

  @Test
  void userMessageRunsATurnThatEndsIdle() {
    // Given
    model.enqueue(Reply.text("Hello from the model"));

    // When
    Session session = start(agent(), marker);
    awaitIdle(sessions, session.getId(), StopReasonType.STOP_REASON_TYPE_END_TURN);

    // Then
    List<Event> events = log(sessions, session.getId());
    assertThat(types(events))
        .containsExactly(
            "user.message",
            "session.status_running",
            "span.model_request_start",
            "agent.message",
            "span.model_request_end",
            "session.status_idle");
    assertThat(events.get(3).getAgentMessage().getContent(0).getText().getText())
        .isEqualTo("Hello from the model");
    assertThat(events.get(0).getEmittedBy().getKind())
        .isEqualTo(dev.corral.proto.v1.EmitterKind.EMITTER_KIND_API_KEY);
    for (Event harnessEvent : events.subList(1, events.size())) {
      assertThat(harnessEvent.getEmittedBy().getKind())
          .isEqualTo(dev.corral.proto.v1.EmitterKind.EMITTER_KIND_HARNESS);
      assertThat(harnessEvent.getEmittedBy().getReplica()).isNotBlank();
    }
    Event end = events.get(4);
    assertThat(end.getSpanModelRequestEnd().getModelRequestStartId())
        .isEqualTo(events.get(2).getId());
    assertThat(end.getSpanModelRequestEnd().getStopReason()).isEqualTo("end_turn");
    assertThat(end.getSpanModelRequestEnd().getModelUsage().getInputTokens()).isEqualTo(100);
    Session idle = dev.corral.testing.SessionLogs.get(sessions, session.getId());
    assertThat(idle.getUsage().getOutputTokens()).isEqualTo(42);
    assertThat(idle.hasLease() && idle.getLease().hasExpiresAt()).isFalse();

    JsonNode request = model.requestsMentioning(marker).get(0).body();
    assertThat(request.path("model").asText()).isEqualTo("claude-test");
    assertThat(request.path("stream").asBoolean()).isTrue();
    assertThat(request.path("system").get(0).path("cache_control").path("type").asText())
        .isEqualTo("ephemeral");
    assertThat(request.path("messages")).hasSize(1);
    assertThat(request.path("messages").get(0).path("role").asText()).isEqualTo("user");
    assertThat(model.requestsMentioning(marker).get(0).apiKey()).isEqualTo(FakeAnthropic.API_KEY);
    assertThat(model.requestsMentioning(marker).get(0).version()).isEqualTo("2023-06-01");
  }

  @Test
  void sandboxToolsRunInOneLazilyProvisionedSandboxThatKeepsItsShell() {
    // Given a model that first answers, then calls bash twice, then answers
    model.enqueue(
        Reply.toolUse("toolu_1", "bash", "{\"command\":\"mkdir d && cd d && export X=42\"}"),
        Reply.toolUse("toolu_2", "bash", "{\"command\":\"echo $X in $(pwd)\"}"),
        Reply.text("Done."));

    // When
    Session session = start(bashAgent(), marker);
    awaitIdle(sessions, session.getId(), StopReasonType.STOP_REASON_TYPE_END_TURN);

    // Then one sandbox was provisioned, at the first call and not before it
    List<Event> events = log(sessions, session.getId());
    Event provisioned = only(events, "sandbox.provisioned");
    Event firstCall =
        events.stream().filter(e -> e.getType().equals("agent.tool_use")).findFirst().orElseThrow();
    assertThat(provisioned.getSeq()).isGreaterThan(firstCall.getSeq());
    assertThat(provisioned.getSandboxProvisioned().getDriver()).isEqualTo("local");
    List<Event> results =
        events.stream().filter(e -> e.getType().equals("agent.tool_result")).toList();
    assertThat(results).hasSize(2);
    assertThat(provisioned.getSeq()).isLessThan(results.get(0).getSeq());
    assertThat(results.get(0).getAgentToolResult().getIsError()).isFalse();
    // and the second call saw the first call's directory and variable
    assertThat(results.get(1).getAgentToolResult().getContent(0).getText().getText())
        .isEqualTo("42 in /workspace/d");
    JsonNode third = model.requestsMentioning(marker).get(2).body().path("messages");
    JsonNode toolResult = third.get(4).path("content").get(0);
    assertThat(toolResult.path("type").asText()).isEqualTo("tool_result");
    assertThat(toolResult.path("tool_use_id").asText()).isEqualTo("toolu_2");
    assertThat(toolResult.path("is_error").asBoolean()).isFalse();
  }

  @Test
  void toolInputThatDoesNotMatchTheSchemaIsAToolErrorAndNoSandboxIsProvisioned() {
    // Given
    model.enqueue(Reply.toolUse("toolu_1", "read", "{\"path\":\"a.txt\"}"), Reply.text("Oops."));

    // When
    Session session = start(bashAgent(), marker);
    awaitIdle(sessions, session.getId(), StopReasonType.STOP_REASON_TYPE_END_TURN);

    // Then
    List<Event> events = log(sessions, session.getId());
    Event result = only(events, "agent.tool_result");
    assertThat(result.getAgentToolResult().getIsError()).isTrue();
    assertThat(result.getAgentToolResult().getContent(0).getText().getText())
        .contains("input.path");
    assertThat(events).noneMatch(e -> e.getType().equals("sandbox.provisioned"));
  }

  @Test
  void halfASurrogatePairInAModelsToolInputDoesNotBreakTheNextRequest() {
    // Given a model whose tool input holds half of a surrogate pair (a JSON escape without its
    // partner), which the Messages API refuses to read back ("no low surrogate in string")
    model.enqueue(Reply.toolUse("toolu_1", "read", "{\"path\":\"a\\ud83d\"}"), Reply.text("Done."));

    // When
    Session session = start(bashAgent(), marker);

    // Then the turn ends normally, the half replaced by U+FFFD in what is sent back
    awaitIdle(sessions, session.getId(), StopReasonType.STOP_REASON_TYPE_END_TURN);
    assertThat(model.violations()).isEmpty();
    JsonNode sentBack = model.requestsMentioning(marker).get(1).messages().get(1);
    assertThat(sentBack.path("content").get(0).path("input").path("path").asText())
        .isEqualTo("a\uFFFD");
  }

  @Test
  void aToolTheAgentDoesNotEnableNeverRunsWhateverTheModelCalls() {
    // Given an agent with only a custom tool, and one whose toolset disables bash (asking for the
    // rest), each with a model that calls bash anyway
    model.enqueue(
        Reply.toolUse("toolu_x", "bash", "{\"command\":\"touch /workspace/ran\"}"),
        Reply.text("I see."));
    Session customOnly = start(agentWith(weatherTool()), marker);
    awaitIdle(sessions, customOnly.getId(), StopReasonType.STOP_REASON_TYPE_END_TURN);
    model.enqueue(
        Reply.toolUse("toolu_y", "bash", "{\"command\":\"touch /workspace/ran\"}"),
        Reply.text("I see."));
    Tool bashDisabled =
        Tool.newBuilder()
            .setToolset(
                dev.corral.proto.v1.AgentToolset.newBuilder()
                    .setDefaultConfig(
                        dev.corral.proto.v1.ToolConfig.newBuilder()
                            .setPermissionPolicy(PermissionPolicy.PERMISSION_POLICY_ALWAYS_ASK))
                    .addConfigs(
                        dev.corral.proto.v1.ToolConfig.newBuilder()
                            .setName("bash")
                            .setEnabled(false)))
            .build();
    Session disabled = start(agentWith(bashDisabled), marker);
    awaitIdle(sessions, disabled.getId(), StopReasonType.STOP_REASON_TYPE_END_TURN);

    // Then each call is answered with an error, without a sandbox or a confirmation
    for (Session session : List.of(customOnly, disabled)) {
      List<Event> events = log(sessions, session.getId());
      Event use = only(events, "agent.tool_use");
      assertThat(use.getAgentToolUse().getEvaluatedPermission())
          .isEqualTo(dev.corral.proto.v1.EvaluatedPermission.EVALUATED_PERMISSION_DENY);
      Event result = only(events, "agent.tool_result");
      assertThat(result.getAgentToolResult().getIsError()).isTrue();
      assertThat(result.getAgentToolResult().getContent(0).getText().getText())
          .contains("not enabled for this agent");
      assertThat(events).noneMatch(e -> e.getType().equals("sandbox.provisioned"));
    }
  }

  @Test
  void aMessageSentWhileTheModelAnswersIsTheNextUserTurnAfterThatAnswer() {
    // Given a model whose first answer waits until it is let go
    java.util.concurrent.CompletableFuture<Void> letGo =
        new java.util.concurrent.CompletableFuture<>();
    model.enqueue(
        (response, request) ->
            letGo.thenRun(() -> Reply.text("first answer").send(response, request)),
        Reply.text("second answer"));
    Session session = start(agent(), marker);
    await()
        .atMost(Duration.ofSeconds(10))
        .until(() -> model.requestsMentioning(marker).size() == 1);

    // When a second message arrives during that call
    sessions.emitEvent(dev.corral.testing.Fixtures.emit(session.getId(), "second " + marker));
    letGo.complete(null);
    await()
        .atMost(Duration.ofSeconds(10))
        .until(
            () ->
                log(sessions, session.getId()).stream()
                        .filter(e -> e.getType().equals("agent.message"))
                        .count()
                    == 2);
    awaitIdle(sessions, session.getId(), StopReasonType.STOP_REASON_TYPE_END_TURN);

    // Then the next request answers it: user, assistant (the first answer), user (the message)
    assertThat(model.violations()).isEmpty();
    JsonNode messages = model.requestsMentioning(marker).get(1).body().path("messages");
    assertThat(messages).hasSize(3);
    assertThat(messages.get(0).path("content").get(0).path("text").asText()).isEqualTo(marker);
    assertThat(messages.get(1).path("role").asText()).isEqualTo("assistant");
    assertThat(messages.get(1).path("content").get(0).path("text").asText())
        .isEqualTo("first answer");
    assertThat(messages.get(2).path("role").asText()).isEqualTo("user");
    assertThat(messages.get(2).path("content").get(0).path("text").asText())
        .isEqualTo("second " + marker);
  }

  @Test
  void theSandboxIsInTheLogAsSoonAsItIsProvisionedBeforeTheFirstCallEnds() {
    // Given a first tool call that takes a while
    model.enqueue(
        Reply.toolUse("toolu_p", "bash", "{\"command\":\"sleep 2.3; echo done\"}"),
        Reply.text("Done."));

    // When
    Session session = start(bashAgent(), marker);
    await().atMost(Duration.ofSeconds(10)).until(() -> Processes.running("sleep 2.3"));

    // Then while it runs (a harness that died now would leave this), the log names its sandbox
    List<String> during = types(log(sessions, session.getId()));
    assertThat(during).contains("sandbox.provisioned").doesNotContain("agent.tool_result");
    awaitIdle(sessions, session.getId(), StopReasonType.STOP_REASON_TYPE_END_TURN);
    List<String> after = types(log(sessions, session.getId()));
    assertThat(after.indexOf("sandbox.provisioned")).isLessThan(after.indexOf("agent.tool_result"));
    assertThat(after.stream().filter("sandbox.provisioned"::equals)).hasSize(1);
  }

  @Test
  void theModelReadsItsOwnLogWithoutASandbox() {
    // Given a model that asks for the user's messages in its log
    model.enqueue(
        Reply.toolUse("toolu_log", "session_log", "{\"types\":[\"user.message\"],\"limit\":5}"),
        Reply.text("I have reread it."));

    // When
    Session session = start(bashAgent(), marker);
    awaitIdle(sessions, session.getId(), StopReasonType.STOP_REASON_TYPE_END_TURN);

    // Then the result lists the message with its seq, and no sandbox was needed
    List<Event> events = log(sessions, session.getId());
    Event result = only(events, "agent.tool_result");
    assertThat(result.getAgentToolResult().getIsError()).isFalse();
    assertThat(result.getAgentToolResult().getContent(0).getText().getText())
        .startsWith("#1 user.message: " + marker)
        .contains("the log's last seq is");
    assertThat(events).noneMatch(e -> e.getType().equals("sandbox.provisioned"));
  }

  @Test
  void aSessionLogCallWithAnUnknownTypeIsAnErrorTheModelSees() {
    model.enqueue(
        Reply.toolUse("toolu_bad", "session_log", "{\"types\":[\"no.such\"]}"),
        Reply.text("Sorry."));

    Session session = start(bashAgent(), marker);
    awaitIdle(sessions, session.getId(), StopReasonType.STOP_REASON_TYPE_END_TURN);

    Event result = only(log(sessions, session.getId()), "agent.tool_result");
    assertThat(result.getAgentToolResult().getIsError()).isTrue();
    assertThat(result.getAgentToolResult().getContent(0).getText().getText())
        .contains("'no.such' is not an event type");
  }

  @jakarta.inject.Inject FoldedStates folded;

  @Test
  void theNextTurnStartsFromTheStateThePreviousRunLeftAndReadsOnlyNewEvents() {
    // Given a turn that ended
    Session session = start(agent(), marker);
    awaitIdle(sessions, session.getId(), StopReasonType.STOP_REASON_TYPE_END_TURN);
    await().atMost(Duration.ofSeconds(10)).until(() -> folded.size() > 0);

    // When the next message comes, its run takes that state (and gives it back when it ends)
    sessions.emitEvent(dev.corral.testing.Fixtures.emit(session.getId(), "again " + marker));
    await()
        .atMost(Duration.ofSeconds(10))
        .until(
            () ->
                log(sessions, session.getId()).stream().filter(Event::hasAgentMessage).count()
                    == 2);
    awaitIdle(sessions, session.getId(), StopReasonType.STOP_REASON_TYPE_END_TURN);

    // Then the second request carries the whole conversation all the same
    JsonNode messages = model.requestsMentioning("again " + marker).get(0).body().path("messages");
    assertThat(messages).hasSize(3);
    assertThat(messages.get(0).path("content").get(0).path("text").asText()).isEqualTo(marker);
    long lastSeq = log(sessions, session.getId()).size();
    await()
        .atMost(Duration.ofSeconds(10))
        .until(
            () -> {
              SessionState kept = folded.take(session.getId());
              if (kept == null) {
                return false;
              }
              folded.keep(kept);
              return kept.lastSeq() == lastSeq;
            });
  }

  @Test
  void thinkingIsKeptAndSentBackToContinueAToolUseTurn() {
    // Given a model that thinks before it calls a tool
    model.enqueue(
        FakeAnthropic.Reply.stream()
            .thinking("I should list the files")
            .toolUse("toolu_t", "bash", "{\"command\":\"ls\"}")
            .stop("tool_use"),
        Reply.text("Done."));

    // When
    Session session = start(bashAgent(), marker);
    awaitIdle(sessions, session.getId(), StopReasonType.STOP_REASON_TYPE_END_TURN);

    // Then the thinking block and its signature are stored and go back with the tool result
    Event thinking = only(log(sessions, session.getId()), "agent.thinking");
    assertThat(thinking.getAgentThinking().getThinking()).isEqualTo("I should list the files");
    assertThat(thinking.getAgentThinking().getSignature()).isNotEmpty();
    JsonNode assistant =
        model.requestsMentioning(marker).get(1).body().path("messages").get(1).path("content");
    assertThat(assistant.get(0).path("type").asText()).isEqualTo("thinking");
    assertThat(assistant.get(0).path("signature").asText())
        .isEqualTo(thinking.getAgentThinking().getSignature());
    assertThat(assistant.get(1).path("type").asText()).isEqualTo("tool_use");
  }

  @Test
  void aMessageWithAnImageReachesTheModelAsTheApiTakesIt() throws Exception {
    // Given a real PNG of 40 by 30 pixels
    var out = new java.io.ByteArrayOutputStream();
    javax.imageio.ImageIO.write(
        new java.awt.image.BufferedImage(40, 30, java.awt.image.BufferedImage.TYPE_INT_RGB),
        "png",
        out);
    model.enqueue(Reply.text("A black rectangle."));
    Event message = userMessage(marker);
    message =
        message.toBuilder()
            .setUserMessage(
                message.getUserMessage().toBuilder()
                    .addContent(
                        ContentBlock.newBuilder()
                            .setImage(
                                dev.corral.proto.v1.ImageBlock.newBuilder()
                                    .setMediaType("image/png")
                                    .setData(
                                        com.google.protobuf.ByteString.copyFrom(
                                            out.toByteArray())))))
            .build();

    // When it is sent
    Session session =
        sessions
            .createSession(
                CreateSessionRequest.newBuilder()
                    .setAgentId(agent())
                    .addInitialEvents(message)
                    .build())
            .getSession();
    awaitIdle(sessions, session.getId(), StopReasonType.STOP_REASON_TYPE_END_TURN);

    // Then the model got it whole, as base64 of its media type
    JsonNode image =
        model
            .requestsMentioning(marker)
            .get(0)
            .body()
            .path("messages")
            .get(0)
            .path("content")
            .get(1);
    assertThat(image.path("source").path("media_type").asText()).isEqualTo("image/png");
    assertThat(java.util.Base64.getDecoder().decode(image.path("source").path("data").asText()))
        .isEqualTo(out.toByteArray());
    assertThat(model.violations()).isEmpty();
  }

  @Test
  void customToolPausesTheSessionUntilTheClientAnswers() {
    // Given
    model.enqueue(
        Reply.toolUse("toolu_w", "get_weather", "{\"city\":\"Oslo\"}"),
        Reply.text("It is sunny in Oslo."));
    Session session = start(agentWith(weatherTool()), marker);

    // When the model calls the client's tool
    Session waiting =
        awaitIdle(sessions, session.getId(), StopReasonType.STOP_REASON_TYPE_REQUIRES_ACTION);
    Event call = only(log(sessions, session.getId()), "agent.custom_tool_use");
    sessions.emitEvent(
        EmitEventRequest.newBuilder()
            .setSessionId(session.getId())
            .setEvent(
                Event.newBuilder()
                    .setUserCustomToolResult(
                        UserCustomToolResult.newBuilder()
                            .setCustomToolUseId(call.getId())
                            .addContent(text("sunny, 21 C"))))
            .build());

    // Then the turn resumes with the client's result
    awaitIdle(sessions, session.getId(), StopReasonType.STOP_REASON_TYPE_END_TURN);
    assertThat(waiting.getStopReason().getEventIdsList()).containsExactly(call.getId());
    assertThat(call.getAgentCustomToolUse().getInputJson()).isEqualTo("{\"city\":\"Oslo\"}");
    JsonNode result =
        model
            .requestsMentioning(marker)
            .get(1)
            .body()
            .path("messages")
            .get(2)
            .path("content")
            .get(0);
    assertThat(result.path("tool_use_id").asText()).isEqualTo("toolu_w");
    assertThat(result.path("content").get(0).path("text").asText()).isEqualTo("sunny, 21 C");
  }

  @Test
  void aCustomCallCutOffAtMaxTokensIsAnsweredWithAnErrorNotLeftToTheClient() {
    // Given a reply cut off at its output limit in the middle of a custom tool's input
    model.enqueue(
        Reply.stream().toolUse("toolu_c", "get_weather", "{\"city\":\"Os").stop("max_tokens"),
        Reply.text("Shorter, then."));
    Session session = start(agentWith(weatherTool()), marker);

    // When the turn goes on
    awaitIdle(sessions, session.getId(), StopReasonType.STOP_REASON_TYPE_END_TURN);

    // Then the harness answered the call with an error (no client could run that input), and
    // the model read it
    Event result = errorClosingTheCustomCall(log(sessions, session.getId()));
    assertThat(result.getAgentToolResult().getContent(0).getText().getText())
        .contains("cut off at your output limit");
    JsonNode sent =
        model
            .requestsMentioning(marker)
            .get(1)
            .body()
            .path("messages")
            .get(2)
            .path("content")
            .get(0);
    assertThat(sent.path("tool_use_id").asText()).isEqualTo("toolu_c");
    assertThat(sent.path("is_error").asBoolean()).isTrue();
  }

  @Test
  void deniedConfirmationSendsTheDenialToTheModel() {
    // Given a bash tool that always asks
    Event call =
        callAwaitingConfirmation(
            Reply.toolUse("toolu_rm", "bash", "{\"command\":\"rm -rf /\"}"),
            Reply.text("Understood."));
    String sessionId = call.getSessionId();
    Session waiting = dev.corral.testing.SessionLogs.get(sessions, sessionId);

    // When the user denies it
    sessions.emitEvent(
        confirmation(
            sessionId,
            call.getId(),
            ConfirmationResult.CONFIRMATION_RESULT_DENY,
            "Not on my machine."));

    // Then
    awaitIdle(sessions, sessionId, StopReasonType.STOP_REASON_TYPE_END_TURN);
    assertThat(waiting.getStopReason().getEventIdsList()).containsExactly(call.getId());
    assertThat(call.getAgentToolUse().getEvaluatedPermission())
        .isEqualTo(dev.corral.proto.v1.EvaluatedPermission.EVALUATED_PERMISSION_ASK);
    Event result = only(log(sessions, sessionId), "agent.tool_result");
    assertThat(result.getAgentToolResult().getIsError()).isTrue();
    assertThat(result.getAgentToolResult().getContent(0).getText().getText())
        .isEqualTo("Not on my machine.");
  }

  @Test
  void allowedConfirmationRunsTheTool() {
    // Given
    Event call =
        callAwaitingConfirmation(
            Reply.toolUse("toolu_ls", "bash", "{\"command\":\"echo confirmed\"}"),
            Reply.text("Done."));
    String sessionId = call.getSessionId();

    // When
    sessions.emitEvent(
        confirmation(sessionId, call.getId(), ConfirmationResult.CONFIRMATION_RESULT_ALLOW, ""));

    // Then the call ran and the turn ended
    awaitIdle(sessions, sessionId, StopReasonType.STOP_REASON_TYPE_END_TURN);
    Event result = only(log(sessions, sessionId), "agent.tool_result");
    assertThat(result.getAgentToolResult().getContent(0).getText().getText())
        .isEqualTo("confirmed");
  }

  @Test
  void anInterruptRightAfterAConfirmationIsNeverSwallowed() {
    // Given a call waiting for confirmation, and a model whose next answer never ends
    Event call =
        callAwaitingConfirmation(
            Reply.toolUse("toolu_ok", "bash", "{\"command\":\"echo ran\"}"), Reply.hang());
    String sessionId = call.getSessionId();

    // When the client allows it and interrupts at once
    sessions.emitEvent(
        confirmation(sessionId, call.getId(), ConfirmationResult.CONFIRMATION_RESULT_ALLOW, ""));
    interrupt(sessionId);

    // Then, whichever the harness saw first, the interrupt stops the turn, and the call has one
    // result: the status_running of the confirmed call does not hide the interrupt before it
    awaitIdle(sessions, sessionId, StopReasonType.STOP_REASON_TYPE_INTERRUPTED);
    assertThat(
            log(sessions, sessionId).stream()
                .filter(Event::hasAgentToolResult)
                .filter(event -> event.getAgentToolResult().getToolUseId().equals(call.getId())))
        .hasSize(1);
  }

  @Test
  void aDenialThatCameWithAnInterruptReachesTheModelWithItsReason() {
    // Given a call waiting for confirmation
    Event call =
        callAwaitingConfirmation(
            Reply.toolUse("toolu_denied", "bash", "{\"command\":\"echo never\"}"));
    String sessionId = call.getSessionId();

    // When the client denies it, with a reason, and interrupts, both in one append (a "deny and
    // stop" button), so that the harness sees them together
    eventLog
        .append(
            new dev.corral.session.AppendRequest(
                sessionId,
                List.of(
                    dev.corral.session.NewEvent.of(
                        confirmation(
                                sessionId,
                                call.getId(),
                                ConfirmationResult.CONFIRMATION_RESULT_DENY,
                                "not on the production host")
                            .getEvent()),
                    dev.corral.session.NewEvent.of(
                        Event.newBuilder()
                            .setUserInterrupt(UserInterrupt.getDefaultInstance())
                            .build())),
                null,
                null))
        .await()
        .atMost(Duration.ofSeconds(10));

    // Then the call's one result is the denial with its reason, not a call that may have run
    awaitIdle(sessions, sessionId, StopReasonType.STOP_REASON_TYPE_INTERRUPTED);
    Event result = only(log(sessions, sessionId), "agent.tool_result");
    String said = result.getAgentToolResult().getContent(0).getText().getText();
    assertThat(said).contains("not on the production host").doesNotContain("may have run");
    assertThat(result.getAgentToolResult().getIsError()).isTrue();
  }

  @Test
  void aConfirmationRetriedWithItsKeyAfterTheCallRanGetsTheEventFirstSent() {
    // Given a confirmed call that has run, the confirmation sent with an idempotency key
    Event call =
        callAwaitingConfirmation(
            Reply.toolUse("toolu_again", "bash", "{\"command\":\"echo once\"}"),
            Reply.text("Done."));
    String sessionId = call.getSessionId();
    EmitEventRequest allow =
        confirmation(sessionId, call.getId(), ConfirmationResult.CONFIRMATION_RESULT_ALLOW, "")
            .toBuilder()
            .setIdempotencyKey("confirm-" + call.getId())
            .build();
    var first = sessions.emitEvent(allow);
    awaitIdle(sessions, sessionId, StopReasonType.STOP_REASON_TYPE_END_TURN);
    only(log(sessions, sessionId), "agent.tool_result");

    // When the client, whose answer was lost, sends it again with the same key
    var retry = sessions.emitEvent(allow);

    // Then it gets the event it first sent, as the key promises, and nothing more is logged
    assertThat(retry.getDeduplicated()).isTrue();
    assertThat(retry.getEvent().getId()).isEqualTo(first.getEvent().getId());
    only(log(sessions, sessionId), "user.tool_confirmation");
  }

  @Test
  void aConfirmationOfACallAnInterruptAnsweredIsRefused() {
    // Given a call waiting for confirmation, which an interrupt then answers
    Event call =
        callAwaitingConfirmation(
            Reply.toolUse("toolu_late", "bash", "{\"command\":\"echo late\"}"));
    String sessionId = call.getSessionId();
    interrupt(sessionId);
    awaitIdle(sessions, sessionId, StopReasonType.STOP_REASON_TYPE_INTERRUPTED);

    // When the client allows it after all
    io.grpc.StatusRuntimeException refused =
        org.assertj.core.api.Assertions.catchThrowableOfType(
            io.grpc.StatusRuntimeException.class,
            () ->
                sessions.emitEvent(
                    confirmation(
                        sessionId,
                        call.getId(),
                        ConfirmationResult.CONFIRMATION_RESULT_ALLOW,
                        "")));

    // Then it is told the confirmation no longer applies, and nothing is logged or run
    assertThat(refused.getStatus().getCode()).isEqualTo(io.grpc.Status.Code.FAILED_PRECONDITION);
    assertThat(refused.getStatus().getDescription()).contains("already has its result");
    assertThat(log(sessions, sessionId)).noneMatch(Event::hasUserToolConfirmation);

    // And the log itself refuses it, past that check: the interrupt's result took the call's
    // confirmation too (a confirmation racing the interrupt would otherwise land after it)
    Throwable racing =
        org.assertj.core.api.Assertions.catchThrowable(
            () ->
                eventLog
                    .append(
                        dev.corral.session.AppendRequest.of(
                            sessionId,
                            dev.corral.session.NewEvent.of(
                                confirmation(
                                        sessionId,
                                        call.getId(),
                                        ConfirmationResult.CONFIRMATION_RESULT_ALLOW,
                                        "")
                                    .getEvent())))
                    .await()
                    .atMost(Duration.ofSeconds(10)));
    assertThat(racing).isInstanceOf(dev.corral.session.AlreadyAnsweredException.class);
  }

  @Test
  void interruptStopsTheModelStreamAndIdles() {
    // Given a model that never finishes
    model.enqueue(Reply.hang());
    Session session = start(agent(), marker);
    await()
        .atMost(Duration.ofSeconds(10))
        .until(() -> model.requestsMentioning(marker).size() == 1);

    // When
    interrupt(session.getId());

    // Then
    awaitIdle(sessions, session.getId(), StopReasonType.STOP_REASON_TYPE_INTERRUPTED);
    await()
        .atMost(Duration.ofSeconds(10))
        .until(() -> model.requestsMentioning(marker).get(0).cancelledByClient());
    List<Event> events = log(sessions, session.getId());
    assertThat(types(events)).doesNotContain("agent.message");
    Event end = only(events, "span.model_request_end");
    assertThat(end.getSpanModelRequestEnd().getIsError()).isTrue();

    // And the next message starts a fresh turn
    model.enqueue(Reply.text("Back."));
    sessions.emitEvent(dev.corral.testing.Fixtures.emit(session.getId(), "again " + marker));
    awaitIdle(sessions, session.getId(), StopReasonType.STOP_REASON_TYPE_END_TURN);
    assertThat(model.requestsMentioning(marker)).hasSize(2);
  }

  @Test
  void archivingARunningSessionStopsItsModelCallAndItsHarness() {
    // Given a model call that never finishes
    model.enqueue(Reply.hang());
    Session session = start(agent(), marker);
    await()
        .atMost(Duration.ofSeconds(10))
        .until(() -> model.requestsMentioning(marker).size() == 1);

    // When the session is archived
    Session archived =
        sessions
            .archiveSession(
                dev.corral.proto.v1.ArchiveSessionRequest.newBuilder()
                    .setSessionId(session.getId())
                    .build())
            .getSession();

    // Then it is terminated, the model call is cancelled, and nothing more is called or appended
    assertThat(archived.getStatus()).isEqualTo(SessionStatus.SESSION_STATUS_TERMINATED);
    await()
        .atMost(Duration.ofSeconds(10))
        .until(() -> model.requestsMentioning(marker).get(0).cancelledByClient());
    List<Event> events = log(sessions, session.getId());
    assertThat(types(events).get(events.size() - 1)).isEqualTo("session.status_terminated");
    await()
        .during(Duration.ofSeconds(2))
        .atMost(Duration.ofSeconds(5))
        .until(
            () ->
                log(sessions, session.getId()).size() == events.size()
                    && model.requestsMentioning(marker).size() == 1);
  }

  @Test
  void interruptAnswersPendingCustomToolCalls() {
    // Given a session waiting for a custom tool result
    model.enqueue(Reply.toolUse("toolu_w", "get_weather", "{\"city\":\"Rome\"}"));
    Session session = start(agentWith(weatherTool()), marker);
    awaitIdle(sessions, session.getId(), StopReasonType.STOP_REASON_TYPE_REQUIRES_ACTION);

    // When
    interrupt(session.getId());

    // Then every call has a result and the session is idle (interrupted); the result does not
    // tell the model that the client's call did nothing, as the client may have acted on it
    awaitIdle(sessions, session.getId(), StopReasonType.STOP_REASON_TYPE_INTERRUPTED);
    assertThat(errorClosingTheCustomCall(log(sessions, session.getId())).toString())
        .contains("It may have run, in part or in full");
  }

  @Test
  void aMessageSentAfterAnInterruptIsAnsweredInATurnOfItsOwn() {
    // Given a session waiting for a custom tool result (no harness holds it)
    model.enqueue(
        Reply.toolUse("toolu_w", "get_weather", "{\"city\":\"Rome\"}"),
        Reply.text("Doing that instead."));
    Session session = start(agentWith(weatherTool()), marker);
    awaitIdle(sessions, session.getId(), StopReasonType.STOP_REASON_TYPE_REQUIRES_ACTION);

    // When the client interrupts and, at once, asks for something else
    interrupt(session.getId());
    String instead = "instead-" + UUID.randomUUID();
    sessions.emitEvent(dev.corral.testing.Fixtures.emit(session.getId(), instead));

    // Then the turn is interrupted, and the message gets a turn of its own: it is not left
    // unanswered behind the interrupt's idle
    awaitIdle(sessions, session.getId(), StopReasonType.STOP_REASON_TYPE_END_TURN);
    assertThat(model.requestsMentioning(instead)).hasSize(1);
    List<String> types = types(log(sessions, session.getId()));
    assertThat(types.subList(types.lastIndexOf("user.interrupt"), types.size()))
        .containsSubsequence(
            "session.status_idle",
            "session.status_running",
            "agent.message",
            "session.status_idle");
  }

  @Test
  void aMessageSentDuringACallThatFailsForGoodIsAnsweredInATurnOfItsOwn() {
    // Given a model call that is held, then refused outright
    java.util.concurrent.CompletableFuture<Void> release =
        new java.util.concurrent.CompletableFuture<>();
    model.enqueue(
        (response, request) ->
            release.thenRun(
                () ->
                    Reply.status(400, "invalid_request_error", "messages: refused")
                        .send(response, request)),
        Reply.text("Answering the second."));
    Session session = start(agent(), marker);
    await()
        .atMost(Duration.ofSeconds(10))
        .until(() -> model.requestsMentioning(marker).size() == 1);

    // When the user writes again while the call runs, and the call then fails for good
    String second = "second-" + UUID.randomUUID();
    sessions.emitEvent(dev.corral.testing.Fixtures.emit(session.getId(), second));
    await()
        .atMost(Duration.ofSeconds(10))
        .until(
            () ->
                types(log(sessions, session.getId())).stream()
                        .filter("user.message"::equals)
                        .count()
                    == 2);
    release.complete(null);

    // Then the failed turn idles, and the message sent meanwhile gets a turn of its own
    awaitIdle(sessions, session.getId(), StopReasonType.STOP_REASON_TYPE_END_TURN);
    assertThat(model.requestsMentioning(second)).hasSize(1);
    assertThat(
            log(sessions, session.getId()).stream()
                .filter(Event::hasSessionStatusIdle)
                .map(event -> event.getSessionStatusIdle().getStopReason().getType())
                .toList())
        .containsExactly(
            StopReasonType.STOP_REASON_TYPE_RETRIES_EXHAUSTED,
            StopReasonType.STOP_REASON_TYPE_END_TURN);
  }

  @Test
  void aMessageSentWhileAFailedCallWaitsToBeRetriedReachesTheModel() {
    // Given a model that is rate limited for 3 s once
    model.enqueue(Reply.rateLimited(3), Reply.text("Got both."));
    Session session = start(agent(), marker);
    await()
        .atMost(Duration.ofSeconds(10))
        .until(() -> log(sessions, session.getId()).stream().anyMatch(Event::hasSessionError));

    // When the user writes again while the retry waits
    String second = "second-" + UUID.randomUUID();
    sessions.emitEvent(dev.corral.testing.Fixtures.emit(session.getId(), second));

    // Then the retried request carries it: it is not counted as answered unseen
    awaitIdle(sessions, session.getId(), StopReasonType.STOP_REASON_TYPE_END_TURN);
    assertThat(model.requestsMentioning(second)).isNotEmpty();
  }

  @Test
  void transientModelErrorsAreRetriedAndEachAttemptIsVisible() {
    // Given
    model.enqueue(
        Reply.status(529, "overloaded_error", "Overloaded"),
        Reply.rateLimited(0),
        FakeAnthropic.Reply.stream().text("this will be cut").stop("end_turn").cutAfter(4),
        Reply.text("Finally."));

    // When
    Session session = start(agent(), marker);
    awaitIdle(sessions, session.getId(), StopReasonType.STOP_REASON_TYPE_END_TURN);

    // Then
    List<Event> events = log(sessions, session.getId());
    List<Event> errors = events.stream().filter(Event::hasSessionError).toList();
    assertThat(errors)
        .extracting(e -> e.getSessionError().getRetryStatus())
        .containsOnly(RetryStatus.RETRY_STATUS_RETRYING);
    assertThat(errors).extracting(e -> e.getSessionError().getAttempt()).containsExactly(1, 2, 3);
    assertThat(errors.get(0).getSessionError().getErrorType()).isEqualTo("model_overloaded_error");
    assertThat(errors.get(1).getSessionError().getErrorType())
        .isEqualTo("model_rate_limited_error");
    assertThat(events.stream().filter(Event::hasAgentMessage).toList()).hasSize(1);
    assertThat(only(events, "agent.message").getAgentMessage().getContent(0).getText().getText())
        .isEqualTo("Finally.");
    assertThat(model.requestsMentioning(marker)).hasSize(4);
  }

  @Test
  void retriesRunOutAndTheSessionIdles() {
    // Given a model that is always overloaded
    model.fallback(request -> Reply.status(529, "overloaded_error", "Overloaded"));

    // When
    Session session = start(agent(), marker);
    awaitIdle(sessions, session.getId(), StopReasonType.STOP_REASON_TYPE_RETRIES_EXHAUSTED);

    // Then: 1 call and 3 retries, the last error says it is exhausted
    List<Event> errors =
        log(sessions, session.getId()).stream().filter(Event::hasSessionError).toList();
    assertThat(errors).hasSize(4);
    assertThat(errors.get(3).getSessionError().getRetryStatus())
        .isEqualTo(RetryStatus.RETRY_STATUS_EXHAUSTED);
    assertThat(model.requestsMentioning(marker)).hasSize(4);
  }

  @Test
  void refusedRequestIsNotRetriedAndSaysSo() {
    // Given
    model.enqueue(Reply.status(401, "authentication_error", "invalid x-api-key"));

    // When
    Session session = start(agent(), marker);
    awaitIdle(sessions, session.getId(), StopReasonType.STOP_REASON_TYPE_RETRIES_EXHAUSTED);

    // Then
    Event error = only(log(sessions, session.getId()), "session.error");
    assertThat(error.getSessionError().getMessage())
        .contains("401")
        .contains("authentication_error")
        .contains("not retried");
    assertThat(error.getSessionError().getRetryStatus())
        .isEqualTo(RetryStatus.RETRY_STATUS_EXHAUSTED);
    assertThat(model.requestsMentioning(marker)).hasSize(1);
  }

  @Test
  void anImageTheApiCanNoLongerFetchDoesNotBreakEveryLaterTurn() {
    // Given a model API that fetched an image URL once, and refuses every request holding it
    // after the URL has expired
    String url = "https://images.example/" + marker + ".png?expires=soon";
    java.util.concurrent.atomic.AtomicBoolean expired =
        new java.util.concurrent.atomic.AtomicBoolean();
    model.fallback(
        request ->
            expired.get() && request.path("messages").toString().contains(url)
                ? Reply.status(400, "invalid_request_error", "Unable to download the file.")
                : Reply.text("Noted."));
    Session session = start(agent(), "look " + marker);
    awaitIdle(sessions, session.getId(), StopReasonType.STOP_REASON_TYPE_END_TURN);
    sessions.emitEvent(
        EmitEventRequest.newBuilder()
            .setSessionId(session.getId())
            .setEvent(
                Event.newBuilder()
                    .setUserMessage(
                        dev.corral.proto.v1.UserMessage.newBuilder()
                            .addContent(text("this one " + marker))
                            .addContent(
                                dev.corral.proto.v1.ContentBlock.newBuilder()
                                    .setImage(
                                        dev.corral.proto.v1.ImageBlock.newBuilder()
                                            .setMediaType("image/png")
                                            .setUrl(url)))))
            .build());
    awaitIdle(sessions, session.getId(), StopReasonType.STOP_REASON_TYPE_END_TURN);
    // the URL expires; the next turn's request still holds it and is refused
    expired.set(true);
    sessions.emitEvent(dev.corral.testing.Fixtures.emit(session.getId(), "and now? " + marker));
    awaitIdle(sessions, session.getId(), StopReasonType.STOP_REASON_TYPE_RETRIES_EXHAUSTED);
    Event error = only(log(sessions, session.getId()), "session.error");
    assertThat(error.getSessionError().getInputRefused()).isTrue();

    // When the user writes again
    sessions.emitEvent(dev.corral.testing.Fixtures.emit(session.getId(), "hello again " + marker));

    // Then the turn is answered: the image is a note now, and the refused turn is not sent
    awaitIdle(sessions, session.getId(), StopReasonType.STOP_REASON_TYPE_END_TURN);
    JsonNode messages = model.requestsMentioning("hello again").get(0).body().path("messages");
    assertThat(messages.toString())
        .contains("this one " + marker)
        .doesNotContain(url)
        .doesNotContain("and now?");
    assertThat(model.violations()).isEmpty();
  }

  @Test
  void aRefusedReplyRunsNoneOfItsToolCallsIdlesAsARefusalAndLeavesTheModelsContext() {
    // Given a model whose safety classifier stops every reply while the trigger is in its context
    // (the API keeps refusing until the turn that caused a refusal is gone)
    String trigger = "trigger-" + marker;
    model.fallback(
        request ->
            request.path("messages").toString().contains(trigger)
                ? Reply.stream()
                    .text("Sure, here is")
                    .toolUse("toolu_r", "bash", "{\"command\":\"touch /workspace/ran\"}")
                    .stop("refusal")
                : Reply.text("Happy to help with that."));

    // When
    Session session = start(bashAgent(), marker + " " + trigger);
    awaitIdle(sessions, session.getId(), StopReasonType.STOP_REASON_TYPE_REFUSAL);

    // Then what the model said is logged, its tool call is not, and no sandbox was provisioned
    List<Event> events = log(sessions, session.getId());
    assertThat(types(events))
        .containsExactly(
            "user.message",
            "session.status_running",
            "span.model_request_start",
            "agent.message",
            "span.model_request_end",
            "session.status_idle");
    assertThat(events.get(4).getSpanModelRequestEnd().getStopReason()).isEqualTo("refusal");

    // When the user writes again
    sessions.emitEvent(
        dev.corral.testing.Fixtures.emit(session.getId(), "something else " + marker));
    awaitIdle(sessions, session.getId(), StopReasonType.STOP_REASON_TYPE_END_TURN);

    // Then the model sees neither the turn that was refused nor the partial reply
    JsonNode messages = model.requestsMentioning(marker).get(1).body().path("messages");
    assertThat(messages).hasSize(1);
    assertThat(messages.get(0).path("content").get(0).path("text").asText())
        .isEqualTo("something else " + marker);
    assertThat(model.requestsMentioning(marker)).hasSize(2);
    assertThat(types(log(sessions, session.getId()))).doesNotContain("agent.tool_use");
  }

  @Test
  void budgetStopsNewModelCalls() {
    // Given a session allowed one model call, whose first answer needs another
    model.enqueue(Reply.toolUse("toolu_1", "bash", "{\"command\":\"ls\"}"));
    Session session =
        start(bashAgent(), marker, SessionBudget.newBuilder().setMaxModelRequests(1).build());

    // Then
    awaitIdle(sessions, session.getId(), StopReasonType.STOP_REASON_TYPE_BUDGET_REACHED);
    assertThat(model.requestsMentioning(marker)).hasSize(1);
    assertThat(types(log(sessions, session.getId()))).contains("agent.tool_result");

    // And a message sent after that gets its own idle (a client waiting for one is not left
    // hanging), without a model call
    sessions.emitEvent(dev.corral.testing.Fixtures.emit(session.getId(), "and now?"));
    await()
        .atMost(Duration.ofSeconds(10))
        .until(
            () ->
                log(sessions, session.getId()).stream().filter(Event::hasSessionStatusIdle).count()
                    == 2);
    assertThat(model.requestsMentioning(marker)).hasSize(1);
  }

  @Test
  void anAnswerTheApiWouldNotTakeBackIsRetriedNotKept() {
    // Given a model whose first answers the Messages API would refuse in the next request's
    // history: two calls with one id, a call whose input is not an object, a call id with a dot
    model.enqueue(
        FakeAnthropic.Reply.stream()
            .toolUse("toolu_d", "bash", "{\"command\":\"touch /workspace/one\"}")
            .toolUse("toolu_d", "bash", "{\"command\":\"touch /workspace/two\"}")
            .stop("tool_use"),
        FakeAnthropic.Reply.stream().toolUse("toolu_a", "bash", "[1]").stop("tool_use"),
        FakeAnthropic.Reply.stream().toolUse("toolu.b", "bash", "{}").stop("tool_use"),
        Reply.text("Fine."));

    // When
    Session session = start(bashAgent(), marker);

    // Then each was a failed attempt, none of its calls ran, and the turn ended on the next
    awaitIdle(sessions, session.getId(), StopReasonType.STOP_REASON_TYPE_END_TURN);
    List<Event> events = log(sessions, session.getId());
    assertThat(events.stream().filter(Event::hasSessionError).toList())
        .extracting(e -> e.getSessionError().getMessage())
        .hasSize(3)
        .allMatch(message -> message.contains("the model's answer"));
    assertThat(events).noneMatch(Event::hasAgentToolUse);
    assertThat(events).noneMatch(e -> e.getType().equals("sandbox.provisioned"));
    assertThat(only(events, "agent.message").getAgentMessage().getContent(0).getText().getText())
        .isEqualTo("Fine.");
  }

  @Test
  void aRetryAfterBelowZeroOrAbsurdlyFarIsKeptWithinItsCeiling() {
    // Given a model that asks to be retried a second ago, then in eleven days
    model.enqueue(Reply.rateLimited(-1), Reply.rateLimited(1_000_000), Reply.text("Back."));

    // When
    Session session = start(agent(), marker);

    // Then the first is retried at once and the second after corral.model.retry-after-max (4 s
    // here), and the turn ends
    awaitIdle(sessions, session.getId(), StopReasonType.STOP_REASON_TYPE_END_TURN);
    assertThat(model.requestsMentioning(marker)).hasSize(3);
  }

  @Test
  void theTokenBudgetCountsCachedInputToo() {
    // Given a session allowed 200 tokens, whose first call reads 100 input tokens and 80 from the
    // prompt cache and writes 42 (the fake's usage), and whose answer needs another call
    model.enqueue(Reply.toolUse("toolu_1", "bash", "{\"command\":\"ls\"}"), Reply.text("Done."));
    Session session =
        start(bashAgent(), marker, SessionBudget.newBuilder().setMaxTokens(200).build());

    // Then the 222 tokens of the first call spend the budget (without the cache reads they would
    // be 142, and a second call would follow)
    awaitIdle(sessions, session.getId(), StopReasonType.STOP_REASON_TYPE_BUDGET_REACHED);
    assertThat(model.requestsMentioning(marker)).hasSize(1);
  }

  @Test
  void messagesSentWhileRunningAreTakenIntoTheNextTurnInOrder() {
    // Given a first call that hangs until we release it
    model.enqueue(Reply.hang());
    Session session = start(agent(), marker);
    await()
        .atMost(Duration.ofSeconds(10))
        .until(() -> model.requestsMentioning(marker).size() == 1);

    // When two more messages arrive while the model works, then the call fails and is retried
    sessions.emitEvent(dev.corral.testing.Fixtures.emit(session.getId(), "second"));
    sessions.emitEvent(dev.corral.testing.Fixtures.emit(session.getId(), "third"));
    model.fallback(request -> Reply.text("All three."));
    interrupt(session.getId());
    awaitIdle(sessions, session.getId(), StopReasonType.STOP_REASON_TYPE_INTERRUPTED);
    sessions.emitEvent(dev.corral.testing.Fixtures.emit(session.getId(), "fourth"));
    awaitIdle(sessions, session.getId(), StopReasonType.STOP_REASON_TYPE_END_TURN);

    // Then the next call carries every message, in order, in one user turn
    JsonNode messages = model.requestsMentioning(marker).get(1).body().path("messages");
    assertThat(messages).hasSize(1);
    List<String> texts = new java.util.ArrayList<>();
    messages.get(0).path("content").forEach(block -> texts.add(block.path("text").asText()));
    assertThat(texts).containsExactly(marker, "second", "third", "fourth");
  }

  @Test
  void liveSubscribersSeeTextDeltasUnderTheIdOfTheFinalEvent() {
    // Given
    model.enqueue(Reply.text("streamed text in pieces"));
    Session session =
        sessions
            .createSession(CreateSessionRequest.newBuilder().setAgentId(agent()).build())
            .getSession();
    StreamRecorder stream =
        StreamRecorder.follow(
            channel,
            StreamEventsRequest.newBuilder()
                .setSessionId(session.getId())
                .setIncludeDeltas(true)
                .build());

    // When
    sessions.emitEvent(dev.corral.testing.Fixtures.emit(session.getId(), marker));
    awaitIdle(sessions, session.getId(), StopReasonType.STOP_REASON_TYPE_END_TURN);
    await()
        .atMost(Duration.ofSeconds(10))
        .until(() -> stream.events().stream().anyMatch(Event::hasSessionStatusIdle));
    stream.cancel();

    // Then
    Event message =
        stream.events().stream().filter(Event::hasAgentMessage).findFirst().orElseThrow();
    StringBuilder deltas = new StringBuilder();
    stream.items().stream()
        .filter(item -> item.hasDelta())
        .forEach(
            item -> {
              assertThat(item.getDelta().getEventId()).isEqualTo(message.getId());
              deltas.append(item.getDelta().getText());
            });
    assertThat(deltas.toString()).isEqualTo("streamed text in pieces");
    assertThat(
            log(sessions, session.getId()).stream()
                .filter(e -> e.getType().equals("agent.message")))
        .hasSize(1);
  }

  @Test
  void aMessageSentTheMomentATurnEndsStartsTheNextTurnAtOnce() throws Exception {
    // Given a session whose every turn the model answers at once
    int turns = 12;
    for (int i = 0; i <= turns; i++) {
      model.enqueue(Reply.text("answer " + i));
    }
    Session session = start(agent(), marker);
    var async = SessionServiceGrpc.newStub(channel);
    java.util.concurrent.BlockingQueue<Long> sentAt =
        new java.util.concurrent.LinkedBlockingQueue<>();
    java.util.List<Long> waits =
        java.util.Collections.synchronizedList(new java.util.ArrayList<>());
    java.util.concurrent.CountDownLatch done = new java.util.concurrent.CountDownLatch(1);
    java.util.concurrent.atomic.AtomicInteger sent =
        new java.util.concurrent.atomic.AtomicInteger();

    // When the client sends its next message as soon as it sees each turn end
    async.streamEvents(
        StreamEventsRequest.newBuilder().setSessionId(session.getId()).build(),
        new io.grpc.stub.StreamObserver<>() {
          @Override
          public void onNext(dev.corral.proto.v1.StreamEventsResponse item) {
            Event event = item.getEvent();
            if (event.hasSessionStatusRunning()) {
              Long at = sentAt.poll();
              if (at != null) {
                waits.add(System.nanoTime() - at);
              }
            } else if (event.hasSessionStatusIdle()) {
              if (sent.getAndIncrement() == turns) {
                done.countDown();
                return;
              }
              sentAt.add(System.nanoTime());
              async.emitEvent(
                  EmitEventRequest.newBuilder()
                      .setSessionId(session.getId())
                      .setEvent(userMessage("next"))
                      .build(),
                  new io.grpc.stub.StreamObserver<>() {
                    @Override
                    public void onNext(dev.corral.proto.v1.EmitEventResponse value) {}

                    @Override
                    public void onError(Throwable t) {}

                    @Override
                    public void onCompleted() {}
                  });
            }
          }

          @Override
          public void onError(Throwable t) {}

          @Override
          public void onCompleted() {}
        });

    // Then every next turn starts at once: none waits for a lease that its replica took for it
    // and then forgot (3 s and a scan)
    assertThat(done.await(60, java.util.concurrent.TimeUnit.SECONDS)).isTrue();
    assertThat(waits).hasSize(turns);
    assertThat(waits.stream().mapToLong(Long::longValue).max().orElseThrow())
        .isLessThan(Duration.ofSeconds(2).toNanos());
  }

  // --- helpers ---------------------------------------------------------------------------------

  private Session start(String agentId, String text) {
    return start(agentId, text, SessionBudget.getDefaultInstance());
  }

  private Session start(String agentId, String text, SessionBudget budget) {
    return sessions
        .createSession(
            CreateSessionRequest.newBuilder()
                .setAgentId(agentId)
                .setBudget(budget)
                .addInitialEvents(userMessage(text))
                .build())
        .getSession();
  }

  /** An agent whose built-in toolset runs bash without asking. */
  private String bashAgent() {
    return agentWith(
        dev.corral.testing.Fixtures.bashToolset(PermissionPolicy.PERMISSION_POLICY_ALWAYS_ALLOW));
  }

  private String agent() {
    return agents
        .createAgent(
            CreateAgentRequest.newBuilder()
                .setName("harness test")
                .setModel("claude-test")
                .setSystem("Be brief.")
                .build())
        .getAgent()
        .getId();
  }

  private String agentWith(Tool tool) {
    return agents
        .createAgent(
            CreateAgentRequest.newBuilder()
                .setName("harness test")
                .setModel("claude-test")
                .addTools(tool)
                .build())
        .getAgent()
        .getId();
  }

  private void interrupt(String sessionId) {
    sessions.emitEvent(
        EmitEventRequest.newBuilder()
            .setSessionId(sessionId)
            .setEvent(Event.newBuilder().setUserInterrupt(UserInterrupt.getDefaultInstance()))
            .build());
  }

  private static Tool weatherTool() {
    return Tool.newBuilder()
        .setCustom(
            CustomTool.newBuilder()
                .setName("get_weather")
                .setDescription("Weather of a city")
                .setInputSchemaJson(
                    "{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}}}"))
        .build();
  }

  /**
   * Starts a session whose agent has a bash tool that always asks and whose model answers with
   * {@code replies} (the first a bash call), and waits until that call awaits confirmation.
   */
  private Event callAwaitingConfirmation(Reply... replies) {
    model.enqueue(replies);
    Session session =
        start(
            agentWith(
                dev.corral.testing.Fixtures.bashToolset(
                    PermissionPolicy.PERMISSION_POLICY_ALWAYS_ASK)),
            marker);
    awaitIdle(sessions, session.getId(), StopReasonType.STOP_REASON_TYPE_REQUIRES_ACTION);
    return only(log(sessions, session.getId()), "agent.tool_use");
  }

  private static EmitEventRequest confirmation(
      String sessionId, String toolUseId, ConfirmationResult result, String message) {
    return EmitEventRequest.newBuilder()
        .setSessionId(sessionId)
        .setEvent(
            Event.newBuilder()
                .setUserToolConfirmation(
                    UserToolConfirmation.newBuilder()
                        .setToolUseId(toolUseId)
                        .setResult(result)
                        .setDenyMessage(message)))
        .build();
  }

  private static ContentBlock text(String text) {
    return ContentBlock.newBuilder().setText(TextBlock.newBuilder().setText(text)).build();
  }

  /** The one agent.tool_result of {@code events}, an error that closes its one custom call. */
  private static Event errorClosingTheCustomCall(List<Event> events) {
    Event call = only(events, "agent.custom_tool_use");
    Event result = only(events, "agent.tool_result");
    assertThat(result.getAgentToolResult().getToolUseId()).isEqualTo(call.getId());
    assertThat(result.getAgentToolResult().getIsError()).isTrue();
    return result;
  }

  private static Event only(List<Event> events, String type) {
    List<Event> matching = events.stream().filter(event -> event.getType().equals(type)).toList();
    assertThat(matching).as(type).hasSize(1);
    return matching.get(0);
  }
}
