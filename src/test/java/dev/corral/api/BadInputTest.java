package dev.corral.api;

import static dev.corral.testing.Fixtures.createSession;
import static dev.corral.testing.Fixtures.emit;
import static dev.corral.testing.Fixtures.userMessage;
import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import com.google.rpc.BadRequest;
import dev.corral.proto.v1.AgentServiceGrpc;
import dev.corral.proto.v1.AgentToolset;
import dev.corral.proto.v1.ArchiveAgentRequest;
import dev.corral.proto.v1.ArchiveSessionRequest;
import dev.corral.proto.v1.ConfirmationResult;
import dev.corral.proto.v1.ContentBlock;
import dev.corral.proto.v1.CreateAgentRequest;
import dev.corral.proto.v1.CreateSessionRequest;
import dev.corral.proto.v1.CustomTool;
import dev.corral.proto.v1.DeleteSessionRequest;
import dev.corral.proto.v1.EmitEventRequest;
import dev.corral.proto.v1.Event;
import dev.corral.proto.v1.GetAgentRequest;
import dev.corral.proto.v1.GetEventsRequest;
import dev.corral.proto.v1.GetSessionRequest;
import dev.corral.proto.v1.ImageBlock;
import dev.corral.proto.v1.ListAgentVersionsRequest;
import dev.corral.proto.v1.ListAgentsRequest;
import dev.corral.proto.v1.ListSessionsRequest;
import dev.corral.proto.v1.Session;
import dev.corral.proto.v1.SessionServiceGrpc;
import dev.corral.proto.v1.SessionStatusRunning;
import dev.corral.proto.v1.StreamEventsRequest;
import dev.corral.proto.v1.TextBlock;
import dev.corral.proto.v1.Tool;
import dev.corral.proto.v1.ToolConfig;
import dev.corral.proto.v1.UpdateAgentRequest;
import dev.corral.proto.v1.UserCustomToolResult;
import dev.corral.proto.v1.UserMessage;
import dev.corral.proto.v1.UserToolConfirmation;
import dev.corral.testing.RawCalls;
import dev.corral.testing.StreamRecorder;
import io.grpc.Channel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.protobuf.StatusProto;
import io.quarkus.grpc.GrpcClient;
import io.quarkus.test.junit.QuarkusTest;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.assertj.core.api.SoftAssertions;
import org.junit.jupiter.api.Test;

/**
 * Sends every kind of bad input to every RPC and checks the status, that the message names the
 * problem without leaking internals, that nothing changed, and that the server still answers.
 */
@QuarkusTest
class BadInputTest {

  private static final String UNKNOWN_SESSION = "sesn_00000000000000000000000000";
  private static final String UNKNOWN_AGENT = "agent_00000000000000000000000000";
  private static final String UNKNOWN_EVENT = "sevt_00000000000000000000000000";

  @GrpcClient("corral")
  Channel channel;

  @GrpcClient("corral")
  SessionServiceGrpc.SessionServiceBlockingStub sessions;

  @GrpcClient("corral")
  AgentServiceGrpc.AgentServiceBlockingStub agents;

  @GrpcClient("corral")
  dev.corral.proto.v1.SandboxServiceGrpc.SandboxServiceBlockingStub sandboxes;

  @GrpcClient("corral")
  dev.corral.proto.v1.EnvironmentServiceGrpc.EnvironmentServiceBlockingStub environments;

  private record Case(String name, Status.Code code, String mentions, Runnable call) {}

  /** {@code emit} with a user message of one image. */
  private static EmitEventRequest withImage(
      EmitEventRequest emit, String mediaType, com.google.protobuf.ByteString data) {
    return withImage(emit, ImageBlock.newBuilder().setMediaType(mediaType).setData(data));
  }

  private static EmitEventRequest withImage(EmitEventRequest emit, ImageBlock.Builder image) {
    return emit.toBuilder()
        .setEvent(
            Event.newBuilder()
                .setUserMessage(
                    UserMessage.newBuilder().addContent(ContentBlock.newBuilder().setImage(image))))
        .build();
  }

  @Test
  void everyKindOfBadInputGetsAClearStatusAndChangesNothing() {
    // Given a session with two events and an archived agent
    Session session = createSession(agents, sessions);
    String id = session.getId();
    sessions.emitEvent(emit(id, "one"));
    sessions.emitEvent(emit(id, "two"));
    String archivedAgent =
        agents
            .createAgent(CreateAgentRequest.newBuilder().setName("old").setModel("m").build())
            .getAgent()
            .getId();
    agents.archiveAgent(ArchiveAgentRequest.newBuilder().setAgentId(archivedAgent).build());
    List<Event> logBefore = allEvents(id);

    // When every bad request is sent
    List<Case> cases = new ArrayList<>();
    sessionCases(cases, id, session.getAgent().getId(), archivedAgent);
    eventCases(cases, id);
    readCases(cases, id);
    agentCases(cases, session.getAgent().getId(), archivedAgent);
    networkingCases(cases);
    resourceCases(cases, id, session.getAgent().getId());
    String archivedSession = createSession(agents, sessions).getId();
    sessions.archiveSession(
        ArchiveSessionRequest.newBuilder().setSessionId(archivedSession).build());
    add(
        cases,
        "provision a sandbox for an archived session",
        Status.Code.FAILED_PRECONDITION,
        "archived",
        () ->
            sandboxes.provision(
                dev.corral.proto.v1.ProvisionRequest.newBuilder()
                    .setSessionId(archivedSession)
                    .build()));

    // Then each gets its status, names the problem, and leaks nothing
    SoftAssertions softly = new SoftAssertions();
    for (Case c : cases) {
      StatusRuntimeException failure = null;
      try {
        c.call().run();
      } catch (StatusRuntimeException e) {
        failure = e;
      }
      softly.assertThat(failure).as(c.name() + " fails").isNotNull();
      if (failure == null) {
        continue;
      }
      String description = String.valueOf(failure.getStatus().getDescription());
      softly
          .assertThat(failure.getStatus().getCode())
          .as(c.name() + ": " + description)
          .isEqualTo(c.code());
      softly.assertThat(description).as(c.name()).contains(c.mentions());
      softly
          .assertThat(description)
          .as(c.name() + " leaks internals")
          .doesNotContainPattern("Exception|java\\.|dev\\.corral|\\bat [a-z]+\\.[a-z]");
      if (c.code() == Status.Code.INVALID_ARGUMENT) {
        softly
            .assertThat(fieldViolation(failure))
            .as(c.name() + " names the field")
            .startsWith(c.mentions().split(":")[0]);
      }
    }
    softly.assertAll();

    // And the log is untouched and the server still answers
    assertThat(allEvents(id)).isEqualTo(logBefore);
    assertThat(
            sessions
                .getSession(GetSessionRequest.newBuilder().setSessionId(id).build())
                .getSession()
                .getLastSeq())
        .isEqualTo(2);
    assertThat(sessions.emitEvent(emit(id, "three")).getEvent().getSeq()).isEqualTo(3);
  }

  @Test
  void badStreamRequestsFailWithInvalidArgument() {
    for (StreamEventsRequest bad :
        List.of(
            StreamEventsRequest.newBuilder().setSessionId("nope").build(),
            StreamEventsRequest.newBuilder().setSessionId(UNKNOWN_SESSION).setAfterSeq(-1).build(),
            StreamEventsRequest.newBuilder()
                .setSessionId(UNKNOWN_SESSION)
                .addTypes("user.nonsense")
                .build())) {
      StreamRecorder stream = StreamRecorder.follow(channel, bad);
      await().atMost(Duration.ofSeconds(10)).until(() -> stream.closedWith() != null);
      assertThat(stream.closedWith().getCode())
          .as(bad.toString())
          .isEqualTo(Status.Code.INVALID_ARGUMENT);
    }
  }

  @Test
  void aMistakeQuotingLongNonAsciiInputIsStillInvalidArgument() {
    // Given input the error quotes, of characters that cost 9 bytes each once percent-encoded in
    // grpc-message (and which its details carry twice more): its trailers outgrew the 8 KiB a
    // client takes, and the client reset the stream, read as INTERNAL
    String wide = "工".repeat(1_000);
    String id = createSession(agents, sessions).getId();

    // When it is sent as an event type to a read, a stream and a sandbox's tool
    StatusRuntimeException read =
        org.assertj.core.api.Assertions.catchThrowableOfType(
            StatusRuntimeException.class,
            () ->
                sessions.getEvents(
                    GetEventsRequest.newBuilder().setSessionId(id).addTypes(wide).build()));
    StreamRecorder stream =
        StreamRecorder.follow(
            channel, StreamEventsRequest.newBuilder().setSessionId(id).addTypes(wide).build());
    await().atMost(Duration.ofSeconds(10)).until(() -> stream.closedWith() != null);
    StatusRuntimeException tool =
        org.assertj.core.api.Assertions.catchThrowableOfType(
            StatusRuntimeException.class,
            () ->
                sandboxes.execute(
                    dev.corral.proto.v1.ExecuteRequest.newBuilder()
                        .setSandboxId("sbx_00000000000000000000000000")
                        .setName(wide)
                        .setInputJson("{}")
                        .build()));

    // Then each is the status of the mistake, its message cut to fit and saying so
    assertThat(read.getStatus().getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT);
    assertThat(read.getStatus().getDescription())
        .startsWith("types[0]")
        .contains("more characters");
    assertThat(fieldViolation(read)).isEqualTo("types[0]");
    assertThat(stream.closedWith().getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT);
    assertThat(tool.getStatus().getCode())
        .isIn(Status.Code.INVALID_ARGUMENT, Status.Code.NOT_FOUND);
  }

  private void sessionCases(List<Case> cases, String id, String agentId, String archivedAgent) {
    CreateSessionRequest create = CreateSessionRequest.newBuilder().setAgentId(agentId).build();
    add(
        cases,
        "create without agent",
        Status.Code.INVALID_ARGUMENT,
        "agent_id",
        () -> sessions.createSession(create.toBuilder().clearAgentId().build()));
    add(
        cases,
        "create with malformed agent id",
        Status.Code.INVALID_ARGUMENT,
        "agent_id",
        () -> sessions.createSession(create.toBuilder().setAgentId("agent_x").build()));
    add(
        cases,
        "create with unknown agent",
        Status.Code.NOT_FOUND,
        "agent",
        () -> sessions.createSession(create.toBuilder().setAgentId(UNKNOWN_AGENT).build()));
    add(
        cases,
        "create with negative version",
        Status.Code.INVALID_ARGUMENT,
        "agent_version",
        () -> sessions.createSession(create.toBuilder().setAgentVersion(-1).build()));
    add(
        cases,
        "create with unknown version",
        Status.Code.NOT_FOUND,
        "agent version",
        () -> sessions.createSession(create.toBuilder().setAgentVersion(99).build()));
    add(
        cases,
        "create from archived agent",
        Status.Code.FAILED_PRECONDITION,
        "archived",
        () -> sessions.createSession(create.toBuilder().setAgentId(archivedAgent).build()));
    add(
        cases,
        "create with NUL in the title",
        Status.Code.INVALID_ARGUMENT,
        "title",
        () -> sessions.createSession(create.toBuilder().setTitle("a\u0000b").build()));
    add(
        cases,
        "create with NUL in a metadata value",
        Status.Code.INVALID_ARGUMENT,
        "metadata",
        () -> sessions.createSession(create.toBuilder().putMetadata("k", "v\u0000").build()));
    add(
        cases,
        "create with an escape sequence in a metadata value",
        Status.Code.INVALID_ARGUMENT,
        "metadata[k]",
        () ->
            sessions.createSession(
                create.toBuilder().putMetadata("k", "\u001b]52;c;cHduZWQ=\u0007").build()));
    add(
        cases,
        "create with a line break in a metadata key",
        Status.Code.INVALID_ARGUMENT,
        "metadata key",
        () -> sessions.createSession(create.toBuilder().putMetadata("a\nb", "v").build()));
    add(
        cases,
        "create with long title",
        Status.Code.INVALID_ARGUMENT,
        "title",
        () -> sessions.createSession(create.toBuilder().setTitle("t".repeat(257)).build()));
    add(
        cases,
        "create with 17 metadata pairs",
        Status.Code.INVALID_ARGUMENT,
        "metadata",
        () -> {
          CreateSessionRequest.Builder b = create.toBuilder();
          for (int i = 0; i < 17; i++) {
            b.putMetadata("k" + i, "v");
          }
          sessions.createSession(b.build());
        });
    add(
        cases,
        "create with a harness initial event",
        Status.Code.INVALID_ARGUMENT,
        "initial_events[0]",
        () ->
            sessions.createSession(
                create.toBuilder()
                    .addInitialEvents(
                        Event.newBuilder()
                            .setUserInterrupt(
                                dev.corral.proto.v1.UserInterrupt.getDefaultInstance()))
                    .build()));
    add(
        cases,
        "create with an initial event only a harness emits",
        Status.Code.INVALID_ARGUMENT,
        "initial_events[0]: must be a user.message",
        () ->
            sessions.createSession(
                create.toBuilder()
                    .addInitialEvents(
                        Event.newBuilder()
                            .setAgentMessage(
                                dev.corral.proto.v1.AgentMessage.newBuilder()
                                    .addContent(
                                        dev.corral.proto.v1.ContentBlock.newBuilder()
                                            .setText(
                                                dev.corral.proto.v1.TextBlock.newBuilder()
                                                    .setText("forged")))))
                    .build()));
    add(
        cases,
        "create with 51 initial events",
        Status.Code.INVALID_ARGUMENT,
        "initial_events",
        () -> {
          CreateSessionRequest.Builder b = create.toBuilder();
          for (int i = 0; i < 51; i++) {
            b.addInitialEvents(userMessage("m"));
          }
          sessions.createSession(b.build());
        });
    add(
        cases,
        "get with empty id",
        Status.Code.INVALID_ARGUMENT,
        "session_id",
        () -> sessions.getSession(GetSessionRequest.getDefaultInstance()));
    add(
        cases,
        "get with malformed id",
        Status.Code.INVALID_ARGUMENT,
        "session_id",
        () -> sessions.getSession(GetSessionRequest.newBuilder().setSessionId(id + "x").build()));
    add(
        cases,
        "get unknown",
        Status.Code.NOT_FOUND,
        UNKNOWN_SESSION,
        () ->
            sessions.getSession(
                GetSessionRequest.newBuilder().setSessionId(UNKNOWN_SESSION).build()));
    for (boolean asVarint : new boolean[] {false, true}) {
      // the field number corral's decoder marks a request it could not decode with
      com.google.protobuf.UnknownFieldSet.Field.Builder forged =
          com.google.protobuf.UnknownFieldSet.Field.newBuilder();
      if (asVarint) {
        forged.addVarint(7);
      } else {
        forged.addLengthDelimited(com.google.protobuf.ByteString.copyFromUtf8("x"));
      }
      add(
          cases,
          "get unknown, with the decoder's own problem field as "
              + (asVarint ? "a number" : "bytes"),
          Status.Code.NOT_FOUND,
          UNKNOWN_SESSION,
          () ->
              sessions.getSession(
                  GetSessionRequest.newBuilder()
                      .setSessionId(UNKNOWN_SESSION)
                      .setUnknownFields(
                          com.google.protobuf.UnknownFieldSet.newBuilder()
                              .addField((1 << 29) - 1, forged.build())
                              .build())
                      .build()));
    }
    add(
        cases,
        "list with negative page size",
        Status.Code.INVALID_ARGUMENT,
        "page_size",
        () -> sessions.listSessions(ListSessionsRequest.newBuilder().setPageSize(-1).build()));
    add(
        cases,
        "list with absurd page size",
        Status.Code.INVALID_ARGUMENT,
        "page_size",
        () ->
            sessions.listSessions(ListSessionsRequest.newBuilder().setPageSize(1_000_000).build()));
    add(
        cases,
        "list with forged token",
        Status.Code.INVALID_ARGUMENT,
        "page_token",
        () ->
            sessions.listSessions(
                ListSessionsRequest.newBuilder().setPageToken("not-a-token!").build()));
    add(
        cases,
        "list with unknown status",
        Status.Code.INVALID_ARGUMENT,
        "statuses[0]",
        () -> sessions.listSessions(ListSessionsRequest.newBuilder().addStatusesValue(42).build()));
    add(
        cases,
        "archive unknown",
        Status.Code.NOT_FOUND,
        UNKNOWN_SESSION,
        () ->
            sessions.archiveSession(
                ArchiveSessionRequest.newBuilder().setSessionId(UNKNOWN_SESSION).build()));
    add(
        cases,
        "delete malformed",
        Status.Code.INVALID_ARGUMENT,
        "session_id",
        () ->
            sessions.deleteSession(
                DeleteSessionRequest.newBuilder().setSessionId("sesn_").build()));
    add(
        cases,
        "delete unknown",
        Status.Code.NOT_FOUND,
        UNKNOWN_SESSION,
        () ->
            sessions.deleteSession(
                DeleteSessionRequest.newBuilder().setSessionId(UNKNOWN_SESSION).build()));
  }

  private void eventCases(List<Case> cases, String id) {
    EmitEventRequest ok = emit(id, "fine");
    add(
        cases,
        "emit without event",
        Status.Code.INVALID_ARGUMENT,
        "event",
        () -> sessions.emitEvent(ok.toBuilder().clearEvent().build()));
    add(
        cases,
        "emit without payload",
        Status.Code.INVALID_ARGUMENT,
        "event",
        () ->
            sessions.emitEvent(
                ok.toBuilder().setEvent(Event.newBuilder().setType("user.message")).build()));
    add(
        cases,
        "emit to unknown session",
        Status.Code.NOT_FOUND,
        UNKNOWN_SESSION,
        () -> sessions.emitEvent(ok.toBuilder().setSessionId(UNKNOWN_SESSION).build()));
    add(
        cases,
        "emit with unknown type",
        Status.Code.INVALID_ARGUMENT,
        "event.type",
        () ->
            sessions.emitEvent(
                ok.toBuilder().setEvent(ok.getEvent().toBuilder().setType("user.dance")).build()));
    add(
        cases,
        "emit with mismatched type",
        Status.Code.INVALID_ARGUMENT,
        "event.type",
        () ->
            sessions.emitEvent(
                ok.toBuilder()
                    .setEvent(ok.getEvent().toBuilder().setType("user.interrupt"))
                    .build()));
    add(
        cases,
        "emit with a seq",
        Status.Code.INVALID_ARGUMENT,
        "event.seq",
        () ->
            sessions.emitEvent(
                ok.toBuilder().setEvent(ok.getEvent().toBuilder().setSeq(9)).build()));
    add(
        cases,
        "emit with an id",
        Status.Code.INVALID_ARGUMENT,
        "event.id",
        () ->
            sessions.emitEvent(
                ok.toBuilder().setEvent(ok.getEvent().toBuilder().setId(UNKNOWN_EVENT)).build()));
    add(
        cases,
        "emit harness event without lease",
        Status.Code.INVALID_ARGUMENT,
        "lease_epoch",
        () ->
            sessions.emitEvent(
                ok.toBuilder()
                    .setEvent(
                        Event.newBuilder()
                            .setSessionStatusRunning(SessionStatusRunning.getDefaultInstance()))
                    .build()));
    add(
        cases,
        "emit harness event with a stale lease",
        Status.Code.FAILED_PRECONDITION,
        "lease",
        () ->
            sessions.emitEvent(
                ok.toBuilder()
                    .setLeaseEpoch(3)
                    .setEvent(
                        Event.newBuilder()
                            .setSessionStatusRunning(SessionStatusRunning.getDefaultInstance()))
                    .build()));
    for (var usage :
        List.of(
            dev.corral.proto.v1.ModelUsage.newBuilder().setInputTokens(-5),
            dev.corral.proto.v1.ModelUsage.newBuilder().setOutputTokens(Long.MAX_VALUE))) {
      String field =
          usage.getInputTokens() < 0
              ? "event.span_model_request_end.model_usage.input_tokens"
              : "event.span_model_request_end.model_usage.output_tokens";
      add(
          cases,
          "emit a model request's usage with "
              + field
              + " "
              + usage.getInputTokens()
              + "/"
              + usage.getOutputTokens()
              + " (would undo the budget, or overflow the totals)",
          Status.Code.INVALID_ARGUMENT,
          field,
          () ->
              sessions.emitEvent(
                  ok.toBuilder()
                      .setLeaseEpoch(3)
                      .setEvent(
                          Event.newBuilder()
                              .setSpanModelRequestEnd(
                                  dev.corral.proto.v1.SpanModelRequestEnd.newBuilder()
                                      .setModelUsage(usage)))
                      .build()));
    }
    // payloads a harness sends (with the session's lease epoch, which any member can read)
    java.util.Map<String, Event> harnessEvents = new java.util.LinkedHashMap<>();
    harnessEvents.put(
        "event.agent_tool_use.call_id",
        Event.newBuilder()
            .setAgentToolUse(
                dev.corral.proto.v1.AgentToolUse.newBuilder().setName("bash").setInputJson("{}"))
            .build());
    harnessEvents.put(
        "event.agent_tool_use.input_json.command",
        Event.newBuilder()
            .setAgentToolUse(
                dev.corral.proto.v1.AgentToolUse.newBuilder()
                    .setCallId("toolu_1")
                    .setName("bash")
                    .setInputJson("{\"command\":\"echo \\ud800\"}"))
            .build());
    harnessEvents.put(
        "event.agent_custom_tool_use.name",
        Event.newBuilder()
            .setAgentCustomToolUse(
                dev.corral.proto.v1.AgentCustomToolUse.newBuilder()
                    .setCallId("toolu_1")
                    .setName("has spaces")
                    .setInputJson("{}"))
            .build());
    harnessEvents.put(
        "event.agent_mcp_tool_use.mcp_server_name",
        Event.newBuilder()
            .setAgentMcpToolUse(
                dev.corral.proto.v1.AgentMcpToolUse.newBuilder()
                    .setCallId("toolu_1")
                    .setName("search")
                    .setInputJson("{}"))
            .build());
    harnessEvents.put(
        "event.agent_mcp_tool_use.name",
        Event.newBuilder()
            .setAgentMcpToolUse(
                dev.corral.proto.v1.AgentMcpToolUse.newBuilder()
                    .setCallId("toolu_1")
                    .setMcpServerName("srv")
                    .setName("a b") // not a tool name MCP allows
                    .setInputJson("{}"))
            .build());
    harnessEvents.put(
        "event.agent_message.content[0]",
        Event.newBuilder()
            .setAgentMessage(
                dev.corral.proto.v1.AgentMessage.newBuilder()
                    .addContent(
                        dev.corral.proto.v1.ContentBlock.newBuilder()
                            .setImage(
                                dev.corral.proto.v1.ImageBlock.newBuilder()
                                    .setMediaType("image/png")
                                    .setData(png(1, 1)))))
            .build());
    harnessEvents.put(
        "event.agent_context_compacted.summary",
        Event.newBuilder()
            .setAgentContextCompacted(
                dev.corral.proto.v1.AgentContextCompacted.newBuilder()
                    .setFromSeq(1)
                    .setUpToSeq(2)
                    .setSummary(" \n"))
            .build());
    harnessEvents.put(
        "event.agent_context_compacted.up_to_seq",
        Event.newBuilder()
            .setAgentContextCompacted(
                dev.corral.proto.v1.AgentContextCompacted.newBuilder()
                    .setFromSeq(5)
                    .setUpToSeq(2)
                    .setSummary("a summary"))
            .build());
    harnessEvents.put(
        "event.agent_tool_result.tool_use_id",
        Event.newBuilder()
            .setAgentToolResult(
                dev.corral.proto.v1.AgentToolResult.newBuilder().setToolUseId(UNKNOWN_EVENT))
            .build());
    harnessEvents.put(
        "event.agent_mcp_tool_result.mcp_tool_use_id",
        Event.newBuilder()
            .setAgentMcpToolResult(
                dev.corral.proto.v1.AgentMcpToolResult.newBuilder().setMcpToolUseId(UNKNOWN_EVENT))
            .build());
    harnessEvents.put(
        "event.session_status_idle.stop_reason.type",
        Event.newBuilder()
            .setSessionStatusIdle(dev.corral.proto.v1.SessionStatusIdle.getDefaultInstance())
            .build());
    harnessEvents.forEach(
        (field, event) ->
            add(
                cases,
                "emit a harness event with a bad " + field,
                Status.Code.INVALID_ARGUMENT,
                field,
                () -> sessions.emitEvent(ok.toBuilder().setLeaseEpoch(3).setEvent(event).build())));
    add(
        cases,
        "emit with negative lease epoch",
        Status.Code.INVALID_ARGUMENT,
        "lease_epoch",
        () -> sessions.emitEvent(ok.toBuilder().setLeaseEpoch(-3).build()));
    add(
        cases,
        "emit a message of whitespace alone (the model's API refuses it on every later turn)",
        Status.Code.INVALID_ARGUMENT,
        "event.user_message.content[0].text.text",
        () -> sessions.emitEvent(emit(id, " \n\t ")));
    add(
        cases,
        "emit a message of no-break spaces alone (white space to the model's API too)",
        Status.Code.INVALID_ARGUMENT,
        "event.user_message.content[0].text.text",
        () -> sessions.emitEvent(emit(id, "\u00a0\u2007\u202f\u0085")));
    add(
        cases,
        "emit empty message",
        Status.Code.INVALID_ARGUMENT,
        "event.user_message.content",
        () ->
            sessions.emitEvent(
                ok.toBuilder()
                    .setEvent(Event.newBuilder().setUserMessage(UserMessage.getDefaultInstance()))
                    .build()));
    add(
        cases,
        "emit empty text block",
        Status.Code.INVALID_ARGUMENT,
        "event.user_message.content[0].text.text",
        () ->
            sessions.emitEvent(
                ok.toBuilder()
                    .setEvent(
                        Event.newBuilder()
                            .setUserMessage(
                                UserMessage.newBuilder()
                                    .addContent(
                                        ContentBlock.newBuilder()
                                            .setText(TextBlock.getDefaultInstance()))))
                    .build()));
    add(
        cases,
        "emit image of unknown type",
        Status.Code.INVALID_ARGUMENT,
        "event.user_message.content[0].image.media_type",
        () ->
            sessions.emitEvent(
                withImage(ok, "image/bmp", com.google.protobuf.ByteString.copyFromUtf8("x"))));
    add(
        cases,
        "emit a JPEG labelled as PNG (the model's API refuses it on every later turn)",
        Status.Code.INVALID_ARGUMENT,
        "event.user_message.content[0].image.data",
        () ->
            sessions.emitEvent(
                withImage(
                    ok,
                    "image/png",
                    com.google.protobuf.ByteString.copyFrom(
                        new byte[] {(byte) 0xff, (byte) 0xd8, (byte) 0xff, 0}))));
    for (String url :
        new String[] {"https://", "https://a b/x.png", "https://x/" + "a".repeat(9000)}) {
      add(
          cases,
          "emit an image whose URL the model's API cannot fetch: "
              + url.substring(0, Math.min(20, url.length())),
          Status.Code.INVALID_ARGUMENT,
          "event.user_message.content[0].image.url",
          () ->
              sessions.emitEvent(
                  withImage(ok, ImageBlock.newBuilder().setMediaType("image/png").setUrl(url))));
    }
    add(
        cases,
        "emit a PNG whose header is damaged (the model's API cannot process it)",
        Status.Code.INVALID_ARGUMENT,
        "event.user_message.content[0].image.data",
        () ->
            sessions.emitEvent(
                withImage(
                    ok,
                    "image/png",
                    png(3, 3)
                        .substring(0, 8)
                        .concat(
                            com.google.protobuf.ByteString.copyFromUtf8(
                                "not a chunk of any PNG")))));
    add(
        cases,
        "emit a message of 21 images (the model is sent a session's latest 20)",
        Status.Code.INVALID_ARGUMENT,
        "event.user_message.content: has 21 images",
        () -> {
          UserMessage.Builder images = UserMessage.newBuilder();
          for (int i = 0; i < 21; i++) {
            images.addContent(
                ContentBlock.newBuilder()
                    .setImage(
                        ImageBlock.newBuilder().setMediaType("image/png").setData(png(2, 2))));
          }
          sessions.emitEvent(
              ok.toBuilder().setEvent(Event.newBuilder().setUserMessage(images)).build());
        });
    add(
        cases,
        "emit a PNG 8001 pixels wide (the model takes at most 8000 on a side)",
        Status.Code.INVALID_ARGUMENT,
        "event.user_message.content[0].image.data",
        () -> sessions.emitEvent(withImage(ok, "image/png", png(8001, 1))));
    add(
        cases,
        "emit with bad idempotency key",
        Status.Code.INVALID_ARGUMENT,
        "idempotency_key",
        () -> sessions.emitEvent(ok.toBuilder().setIdempotencyKey("has spaces").build()));
    add(
        cases,
        "emit with negative expected seq",
        Status.Code.INVALID_ARGUMENT,
        "expected_last_seq",
        () -> sessions.emitEvent(ok.toBuilder().setExpectedLastSeq(-1).build()));
    add(
        cases,
        "emit with stale expected seq",
        Status.Code.ABORTED,
        "expected",
        () -> sessions.emitEvent(ok.toBuilder().setExpectedLastSeq(1).build()));
    add(
        cases,
        "emit oversized event",
        Status.Code.RESOURCE_EXHAUSTED,
        "262144 bytes",
        () -> sessions.emitEvent(emit(id, "x".repeat(300 * 1024))));
    add(
        cases,
        "emit over the gRPC message limit",
        Status.Code.RESOURCE_EXHAUSTED,
        "",
        () -> sessions.emitEvent(emit(id, "x".repeat(5 * 1024 * 1024))));
    add(
        cases,
        "emit invalid UTF-8",
        Status.Code.INVALID_ARGUMENT,
        "event.user_message.content[0].text.text",
        () ->
            RawCalls.unary(
                channel,
                SessionServiceGrpc.getEmitEventMethod(),
                RawCalls.corrupt(emit(id, "PLACEHOLDER").toByteArray(), "PLACEHOLDER")));
    add(
        cases,
        "emit garbage bytes",
        Status.Code.INVALID_ARGUMENT,
        "request",
        () ->
            RawCalls.unary(
                channel,
                SessionServiceGrpc.getEmitEventMethod(),
                new byte[] {(byte) 0xff, 0x01, 0x02}));
    add(
        cases,
        "emit confirmation with malformed id",
        Status.Code.INVALID_ARGUMENT,
        "event.user_tool_confirmation.tool_use_id",
        () ->
            sessions.emitEvent(
                ok.toBuilder()
                    .setEvent(
                        Event.newBuilder()
                            .setUserToolConfirmation(
                                UserToolConfirmation.newBuilder()
                                    .setToolUseId("toolu_1")
                                    .setResult(ConfirmationResult.CONFIRMATION_RESULT_ALLOW)))
                    .build()));
    add(
        cases,
        "emit confirmation without result",
        Status.Code.INVALID_ARGUMENT,
        "event.user_tool_confirmation.result",
        () ->
            sessions.emitEvent(
                ok.toBuilder()
                    .setEvent(
                        Event.newBuilder()
                            .setUserToolConfirmation(
                                UserToolConfirmation.newBuilder().setToolUseId(UNKNOWN_EVENT)))
                    .build()));
    add(
        cases,
        "emit allow with a deny message",
        Status.Code.INVALID_ARGUMENT,
        "event.user_tool_confirmation.deny_message",
        () ->
            sessions.emitEvent(
                ok.toBuilder()
                    .setEvent(
                        Event.newBuilder()
                            .setUserToolConfirmation(
                                UserToolConfirmation.newBuilder()
                                    .setToolUseId(UNKNOWN_EVENT)
                                    .setResult(ConfirmationResult.CONFIRMATION_RESULT_ALLOW)
                                    .setDenyMessage("no")))
                    .build()));
    add(
        cases,
        "emit custom result with malformed id",
        Status.Code.INVALID_ARGUMENT,
        "event.user_custom_tool_result.custom_tool_use_id",
        () ->
            sessions.emitEvent(
                ok.toBuilder()
                    .setEvent(
                        Event.newBuilder()
                            .setUserCustomToolResult(
                                UserCustomToolResult.newBuilder().setCustomToolUseId("")))
                    .build()));
  }

  private void readCases(List<Case> cases, String id) {
    GetEventsRequest ok = GetEventsRequest.newBuilder().setSessionId(id).build();
    add(
        cases,
        "events with absurd page size",
        Status.Code.INVALID_ARGUMENT,
        "page_size",
        () -> sessions.getEvents(ok.toBuilder().setPageSize(1001).build()));
    add(
        cases,
        "events with negative page size",
        Status.Code.INVALID_ARGUMENT,
        "page_size",
        () -> sessions.getEvents(ok.toBuilder().setPageSize(-5).build()));
    add(
        cases,
        "events after a negative seq",
        Status.Code.INVALID_ARGUMENT,
        "after_seq",
        () -> sessions.getEvents(ok.toBuilder().setAfterSeq(-1).build()));
    add(
        cases,
        "events with tail set to false",
        Status.Code.INVALID_ARGUMENT,
        "tail",
        () -> sessions.getEvents(ok.toBuilder().setTail(false).build()));
    add(
        cases,
        "events before a negative seq",
        Status.Code.INVALID_ARGUMENT,
        "before_seq",
        () -> sessions.getEvents(ok.toBuilder().setBeforeSeq(-1).build()));
    add(
        cases,
        "events before seq 0",
        Status.Code.INVALID_ARGUMENT,
        "before_seq",
        () -> sessions.getEvents(ok.toBuilder().setBeforeSeq(0).build()));
    add(
        cases,
        "events of unknown type",
        Status.Code.INVALID_ARGUMENT,
        "types[1]",
        () ->
            sessions.getEvents(
                ok.toBuilder().addTypes("user.message").addTypes("agent.nothing").build()));
    add(
        cases,
        "events of unknown session",
        Status.Code.NOT_FOUND,
        UNKNOWN_SESSION,
        () -> sessions.getEvents(ok.toBuilder().setSessionId(UNKNOWN_SESSION).build()));
  }

  private void networkingCases(List<Case> cases) {
    java.util.function.Function<dev.corral.proto.v1.Networking.Builder, Runnable> create =
        networking ->
            () ->
                environments.createEnvironment(
                    dev.corral.proto.v1.CreateEnvironmentRequest.newBuilder()
                        .setName("bad networking")
                        .setNetworking(networking)
                        .build());
    dev.corral.proto.v1.Networking.Builder limited =
        dev.corral.proto.v1.Networking.newBuilder()
            .setMode(dev.corral.proto.v1.NetworkMode.NETWORK_MODE_LIMITED);
    add(
        cases,
        "limited without hosts",
        Status.Code.INVALID_ARGUMENT,
        "networking.allowed_hosts",
        create.apply(limited.clone()));
    for (String host :
        List.of(
            "https://pypi.org",
            "pypi.org:443",
            "pypi.org/simple",
            "*",
            "*.*.org",
            "PyPI.org",
            "a..b",
            "-x.org",
            "10.0.0.256",
            "::1",
            "pypi.org\n",
            "x".repeat(300))) {
      add(
          cases,
          "allowed host " + host.substring(0, Math.min(20, host.length())),
          Status.Code.INVALID_ARGUMENT,
          "networking.allowed_hosts[1]",
          create.apply(limited.clone().addAllowedHosts("ok.example.com").addAllowedHosts(host)));
    }
    for (int port : new int[] {0, -1, 65536}) {
      add(
          cases,
          "allowed port " + port,
          Status.Code.INVALID_ARGUMENT,
          "networking.allowed_ports[0]",
          create.apply(limited.clone().addAllowedHosts("pypi.org").addAllowedPorts(port)));
    }
    add(
        cases,
        "an allowed host twice",
        Status.Code.INVALID_ARGUMENT,
        "networking.allowed_hosts[2]",
        create.apply(
            limited
                .clone()
                .addAllowedHosts("pypi.org")
                .addAllowedHosts("*.pypi.org")
                .addAllowedHosts("pypi.org")));
    add(
        cases,
        "an allowed port twice",
        Status.Code.INVALID_ARGUMENT,
        "networking.allowed_ports[1]",
        create.apply(
            limited.clone().addAllowedHosts("pypi.org").addAllowedPorts(443).addAllowedPorts(443)));
    add(
        cases,
        "hosts without limited",
        Status.Code.INVALID_ARGUMENT,
        "networking.allowed_hosts",
        create.apply(
            dev.corral.proto.v1.Networking.newBuilder()
                .setMode(dev.corral.proto.v1.NetworkMode.NETWORK_MODE_UNRESTRICTED)
                .addAllowedHosts("pypi.org")));
    add(
        cases,
        "unknown network mode",
        Status.Code.INVALID_ARGUMENT,
        "networking.mode",
        create.apply(dev.corral.proto.v1.Networking.newBuilder().setModeValue(7)));
    // an update wraps the lists and maps it replaces: its errors name the request's fields
    String environment =
        environments
            .createEnvironment(
                dev.corral.proto.v1.CreateEnvironmentRequest.newBuilder()
                    .setName("updated")
                    .build())
            .getEnvironment()
            .getId();
    add(
        cases,
        "update with a blank setup command",
        Status.Code.INVALID_ARGUMENT,
        "setup_commands.commands[0]",
        () ->
            environments.updateEnvironment(
                dev.corral.proto.v1.UpdateEnvironmentRequest.newBuilder()
                    .setEnvironmentId(environment)
                    .setSetupCommands(
                        dev.corral.proto.v1.SetupCommands.newBuilder().addCommands(""))
                    .build()));
    // what a field holds is checked before the environment is looked up: its state and version
    // do not hide a bad field
    add(
        cases,
        "update of no environment with a blank setup command",
        Status.Code.INVALID_ARGUMENT,
        "setup_commands.commands[0]",
        () ->
            environments.updateEnvironment(
                dev.corral.proto.v1.UpdateEnvironmentRequest.newBuilder()
                    .setEnvironmentId(dev.corral.common.IdKind.ENVIRONMENT.next())
                    .setSetupCommands(
                        dev.corral.proto.v1.SetupCommands.newBuilder().addCommands(""))
                    .build()));
    add(
        cases,
        "update with a stale version to a negative call timeout",
        Status.Code.INVALID_ARGUMENT,
        "resources.call_timeout_ms",
        () ->
            environments.updateEnvironment(
                dev.corral.proto.v1.UpdateEnvironmentRequest.newBuilder()
                    .setEnvironmentId(environment)
                    .setExpectedVersion(9)
                    .setResources(
                        dev.corral.proto.v1.SandboxResources.newBuilder().setCallTimeoutMs(-1))
                    .build()));
    // 32 commands of 10,000 four-byte characters each are 1.3 MB: every list page and warm-pool
    // pass would read that for each of a tenant's environments
    add(
        cases,
        "setup commands past 64 KiB in all",
        Status.Code.INVALID_ARGUMENT,
        "setup_commands",
        () ->
            environments.createEnvironment(
                dev.corral.proto.v1.CreateEnvironmentRequest.newBuilder()
                    .setName("large setup")
                    .addAllSetupCommands(
                        java.util.Collections.nCopies(7, "echo " + "\uD83D\uDE00".repeat(2_500)))
                    .build()));
  }

  private void resourceCases(List<Case> cases, String sessionId, String agentId) {
    java.util.function.Function<dev.corral.proto.v1.GitRepository.Builder, Runnable> add =
        repository ->
            () ->
                sessions.addSessionResource(
                    dev.corral.proto.v1.AddSessionResourceRequest.newBuilder()
                        .setSessionId(sessionId)
                        .setResource(
                            dev.corral.proto.v1.SessionResource.newBuilder()
                                .setGitRepository(repository))
                        .build());
    dev.corral.proto.v1.GitRepository.Builder good =
        dev.corral.proto.v1.GitRepository.newBuilder().setUrl("https://github.com/acme/app.git");
    add(
        cases,
        "repository mounted at a path of 2,000 characters",
        Status.Code.INVALID_ARGUMENT,
        "resource.git_repository.mount_path",
        add.apply(
            good.clone()
                .setMountPath(String.join("/", java.util.Collections.nCopies(400, "abcd")))));
    add(
        cases,
        "repository without url",
        Status.Code.INVALID_ARGUMENT,
        "resource.git_repository.url",
        add.apply(good.clone().clearUrl()));
    for (String url :
        List.of(
            "git@github.com:acme/app.git",
            "file:///etc",
            "https://user:token@github.com/acme/app.git",
            "ssh://github.com/acme/app.git",
            "https:///nohost",
            "https://github.com:99999/acme/app.git")) {
      add(
          cases,
          "repository url " + url,
          Status.Code.INVALID_ARGUMENT,
          "resource.git_repository.url",
          add.apply(good.clone().setUrl(url)));
    }
    for (String ref : List.of("--upload-pack=evil", "a..b", "$(id)", "main;id", "a b")) {
      add(
          cases,
          "repository ref " + ref,
          Status.Code.INVALID_ARGUMENT,
          "resource.git_repository.ref",
          add.apply(good.clone().setRef(ref)));
    }
    for (String mount : List.of("../up", "/abs", "a/../../b", ".", "a//b", "$(id)", "a b")) {
      add(
          cases,
          "repository mount " + mount,
          Status.Code.INVALID_ARGUMENT,
          "resource.git_repository.mount_path",
          add.apply(good.clone().setMountPath(mount)));
    }
    add(
        cases,
        "repository credential id malformed",
        Status.Code.INVALID_ARGUMENT,
        "resource.git_repository.credential_id",
        add.apply(good.clone().setCredentialId("cred_x")));
    add(
        cases,
        "resource with an id",
        Status.Code.INVALID_ARGUMENT,
        "resource.id",
        () ->
            sessions.addSessionResource(
                dev.corral.proto.v1.AddSessionResourceRequest.newBuilder()
                    .setSessionId(sessionId)
                    .setResource(
                        dev.corral.proto.v1.SessionResource.newBuilder()
                            .setId("sres_00000000000000000000000000")
                            .setGitRepository(good))
                    .build()));
    add(
        cases,
        "resource without repository",
        Status.Code.INVALID_ARGUMENT,
        "resource",
        () ->
            sessions.addSessionResource(
                dev.corral.proto.v1.AddSessionResourceRequest.newBuilder()
                    .setSessionId(sessionId)
                    .setResource(dev.corral.proto.v1.SessionResource.getDefaultInstance())
                    .build()));
    add(
        cases,
        "resource of an unknown session",
        Status.Code.NOT_FOUND,
        "session",
        () ->
            sessions.addSessionResource(
                dev.corral.proto.v1.AddSessionResourceRequest.newBuilder()
                    .setSessionId(UNKNOWN_SESSION)
                    .setResource(
                        dev.corral.proto.v1.SessionResource.newBuilder().setGitRepository(good))
                    .build()));
    add(
        cases,
        "remove an unknown resource",
        Status.Code.NOT_FOUND,
        "session resource",
        () ->
            sessions.removeSessionResource(
                dev.corral.proto.v1.RemoveSessionResourceRequest.newBuilder()
                    .setSessionId(sessionId)
                    .setResourceId("sres_00000000000000000000000000")
                    .build()));
    add(
        cases,
        "remove a malformed resource id",
        Status.Code.INVALID_ARGUMENT,
        "resource_id",
        () ->
            sessions.removeSessionResource(
                dev.corral.proto.v1.RemoveSessionResourceRequest.newBuilder()
                    .setSessionId(sessionId)
                    .setResourceId("sres_x")
                    .build()));
    dev.corral.proto.v1.CreateSessionRequest.Builder create =
        dev.corral.proto.v1.CreateSessionRequest.newBuilder().setAgentId(agentId);
    for (int i = 0; i < 17; i++) {
      create.addResources(
          dev.corral.proto.v1.SessionResource.newBuilder()
              .setGitRepository(good.clone().setMountPath("repo" + i)));
    }
    add(
        cases,
        "create with 17 repositories",
        Status.Code.INVALID_ARGUMENT,
        "resources",
        () -> sessions.createSession(create.build()));
    add(
        cases,
        "create with two repositories at one mount path",
        Status.Code.INVALID_ARGUMENT,
        "resources[1].git_repository.mount_path",
        () ->
            sessions.createSession(
                dev.corral.proto.v1.CreateSessionRequest.newBuilder()
                    .setAgentId(agentId)
                    .addResources(
                        dev.corral.proto.v1.SessionResource.newBuilder().setGitRepository(good))
                    .addResources(
                        dev.corral.proto.v1.SessionResource.newBuilder()
                            .setGitRepository(good.clone().setUrl("https://gitlab.com/x/app")))
                    .build()));
  }

  private void agentCases(List<Case> cases, String agentId, String archivedAgent) {
    CreateAgentRequest ok =
        CreateAgentRequest.newBuilder().setName("a").setModel("claude-test").build();
    mcpCases(cases, ok);
    add(
        cases,
        "agent without name",
        Status.Code.INVALID_ARGUMENT,
        "name",
        () -> agents.createAgent(ok.toBuilder().clearName().build()));
    add(
        cases,
        "agent with long name",
        Status.Code.INVALID_ARGUMENT,
        "name",
        () -> agents.createAgent(ok.toBuilder().setName("n".repeat(257)).build()));
    add(
        cases,
        "agent without model",
        Status.Code.INVALID_ARGUMENT,
        "model",
        () -> agents.createAgent(ok.toBuilder().clearModel().build()));
    add(
        cases,
        "agent with odd model",
        Status.Code.INVALID_ARGUMENT,
        "model",
        () -> agents.createAgent(ok.toBuilder().setModel("claude sonnet").build()));
    add(
        cases,
        "agent with huge system prompt",
        Status.Code.INVALID_ARGUMENT,
        "system",
        () -> agents.createAgent(ok.toBuilder().setSystem("s".repeat(100_001)).build()));
    add(
        cases,
        "agent with a blank system prompt",
        Status.Code.INVALID_ARGUMENT,
        "system",
        () -> agents.createAgent(ok.toBuilder().setSystem(" \n\t ").build()));
    add(
        cases,
        "agent with a system prompt of no-break spaces",
        Status.Code.INVALID_ARGUMENT,
        "system",
        () -> agents.createAgent(ok.toBuilder().setSystem("\u00a0\u2007\u202f").build()));
    add(
        cases,
        "custom tool with invalid JSON schema",
        Status.Code.INVALID_ARGUMENT,
        "tools[0].custom.input_schema_json",
        () -> agents.createAgent(ok.toBuilder().addTools(custom("lookup", "{\"type\": ")).build()));
    for (String[] schema :
        new String[][] {
          {"trailing text", "{\"type\":\"object\"} trailing"},
          {"two values", "{\"type\":\"object\"}{}"},
          {"a duplicate key", "{\"type\":\"object\",\"type\":\"string\"}"},
          {"3000 levels", "{\"a\":".repeat(3_000) + "1" + "}".repeat(3_000)},
          {"1500 levels of arrays", "{\"a\":" + "[".repeat(1_500) + "]".repeat(1_500) + "}"},
          {"a 3000-digit number", "{\"maximum\":" + "9".repeat(3_000) + "}"},
          {"a NUL escape", "{\"description\":\"a\\u0000b\"}"},
          {"an exponent out of range", "{\"type\":\"object\",\"maximum\":1e2147483648}"},
          {"properties that are no object", "{\"type\":\"object\",\"properties\":5}"},
          {"required that is no list of names", "{\"type\":\"object\",\"required\":[1]}"},
          {
            "a property of no known type",
            "{\"type\":\"object\",\"properties\":{\"q\":{\"type\":\"strng\"}}}"
          },
          {
            "items that are a list", "{\"type\":\"object\",\"properties\":{\"l\":{\"items\":[{}]}}}"
          },
          {"anyOf at the top", "{\"type\":\"object\",\"anyOf\":[{\"required\":[\"a\"]}]}"},
          {
            "a property name the Messages API refuses",
            "{\"type\":\"object\",\"properties\":{\"filter[id]\":{}}}"
          },
          {
            "70,000 characters",
            "{\"type\":\"object\",\"description\":\"" + "d".repeat(70_000) + "\"}"
          }
        }) {
      add(
          cases,
          "custom tool schema with " + schema[0],
          Status.Code.INVALID_ARGUMENT,
          "tools[0].custom.input_schema_json",
          () -> agents.createAgent(ok.toBuilder().addTools(custom("lookup", schema[1])).build()));
    }
    add(
        cases,
        "agent whose tools make it larger than 1 MiB",
        Status.Code.INVALID_ARGUMENT,
        "tools",
        () -> {
          CreateAgentRequest.Builder big = ok.toBuilder();
          for (int i = 0; i < 20; i++) {
            big.addTools(
                custom(
                    "t" + i,
                    "{\"type\":\"object\",\"description\":\"" + "d".repeat(60_000) + "\"}"));
          }
          agents.createAgent(big.build());
        });
    add(
        cases,
        "agent name with a newline (it would forge log lines)",
        Status.Code.INVALID_ARGUMENT,
        "name",
        () -> agents.createAgent(ok.toBuilder().setName("a\nINFO forged").build()));
    add(
        cases,
        "agent name with NUL",
        Status.Code.INVALID_ARGUMENT,
        "name",
        () -> agents.createAgent(ok.toBuilder().setName("a\u0000b").build()));
    add(
        cases,
        "custom tool with non-object schema",
        Status.Code.INVALID_ARGUMENT,
        "tools[0].custom.input_schema_json",
        () -> agents.createAgent(ok.toBuilder().addTools(custom("lookup", "[1,2]")).build()));
    add(
        cases,
        "custom tool with bad name",
        Status.Code.INVALID_ARGUMENT,
        "tools[0].custom.name",
        () ->
            agents.createAgent(
                ok.toBuilder().addTools(custom("look up", "{\"type\":\"object\"}")).build()));
    add(
        cases,
        "custom tools with one name",
        Status.Code.INVALID_ARGUMENT,
        "tools[1].custom.name",
        () ->
            agents.createAgent(
                ok.toBuilder()
                    .addTools(custom("x", "{\"type\":\"object\"}"))
                    .addTools(custom("x", "{\"type\":\"object\"}"))
                    .build()));
    add(
        cases,
        "custom tool named as the toolset's session_log",
        Status.Code.INVALID_ARGUMENT,
        "tools[1].custom.name",
        () ->
            agents.createAgent(
                ok.toBuilder()
                    .addTools(Tool.newBuilder().setToolset(AgentToolset.getDefaultInstance()))
                    .addTools(custom("session_log", "{\"type\":\"object\"}"))
                    .build()));
    add(
        cases,
        "toolset configuring an unknown tool",
        Status.Code.INVALID_ARGUMENT,
        "tools[0].toolset.configs[0].name",
        () ->
            agents.createAgent(
                ok.toBuilder()
                    .addTools(
                        Tool.newBuilder()
                            .setToolset(
                                AgentToolset.newBuilder()
                                    .addConfigs(ToolConfig.newBuilder().setName("rm"))))
                    .build()));
    add(
        cases,
        "two toolsets",
        Status.Code.INVALID_ARGUMENT,
        "tools[1]",
        () ->
            agents.createAgent(
                ok.toBuilder()
                    .addTools(Tool.newBuilder().setToolset(AgentToolset.getDefaultInstance()))
                    .addTools(Tool.newBuilder().setToolset(AgentToolset.getDefaultInstance()))
                    .build()));
    add(
        cases,
        "get agent malformed",
        Status.Code.INVALID_ARGUMENT,
        "agent_id",
        () ->
            agents.getAgent(
                GetAgentRequest.newBuilder()
                    .setAgentId("sesn_00000000000000000000000000")
                    .build()));
    add(
        cases,
        "get agent unknown",
        Status.Code.NOT_FOUND,
        UNKNOWN_AGENT,
        () -> agents.getAgent(GetAgentRequest.newBuilder().setAgentId(UNKNOWN_AGENT).build()));
    add(
        cases,
        "get agent negative version",
        Status.Code.INVALID_ARGUMENT,
        "version",
        () ->
            agents.getAgent(
                GetAgentRequest.newBuilder().setAgentId(agentId).setVersion(-1).build()));
    add(
        cases,
        "get agent unknown version",
        Status.Code.NOT_FOUND,
        "version",
        () ->
            agents.getAgent(
                GetAgentRequest.newBuilder().setAgentId(agentId).setVersion(42).build()));
    add(
        cases,
        "update with stale version",
        Status.Code.ABORTED,
        "version",
        () ->
            agents.updateAgent(
                UpdateAgentRequest.newBuilder()
                    .setAgentId(agentId)
                    .setExpectedVersion(7)
                    .setName("b")
                    .build()));
    add(
        cases,
        "update with a negative expected version",
        Status.Code.INVALID_ARGUMENT,
        "expected_version",
        () ->
            agents.updateAgent(
                UpdateAgentRequest.newBuilder()
                    .setAgentId(agentId)
                    .setExpectedVersion(-1)
                    .setName("b")
                    .build()));
    add(
        cases,
        "update archived",
        Status.Code.FAILED_PRECONDITION,
        "archived",
        () ->
            agents.updateAgent(
                UpdateAgentRequest.newBuilder().setAgentId(archivedAgent).setName("b").build()));
    add(
        cases,
        "update archived to a bad model (the field's own check first)",
        Status.Code.INVALID_ARGUMENT,
        "model",
        () ->
            agents.updateAgent(
                UpdateAgentRequest.newBuilder()
                    .setAgentId(archivedAgent)
                    .setModel("bad model!")
                    .build()));
    add(
        cases,
        "update with stale version to an empty name (the field's own check first)",
        Status.Code.INVALID_ARGUMENT,
        "name",
        () ->
            agents.updateAgent(
                UpdateAgentRequest.newBuilder()
                    .setAgentId(agentId)
                    .setExpectedVersion(7)
                    .setName("")
                    .build()));
    add(
        cases,
        "update to an empty name",
        Status.Code.INVALID_ARGUMENT,
        "name",
        () ->
            agents.updateAgent(
                UpdateAgentRequest.newBuilder().setAgentId(agentId).setName("").build()));
    add(
        cases,
        "update to a tool with a bad name (named as the update request holds it)",
        Status.Code.INVALID_ARGUMENT,
        "tools.tools[0].custom.name",
        () ->
            agents.updateAgent(
                UpdateAgentRequest.newBuilder()
                    .setAgentId(agentId)
                    .setTools(
                        dev.corral.proto.v1.ToolList.newBuilder()
                            .addTools(custom("bad name", "{\"type\":\"object\"}")))
                    .build()));
    add(
        cases,
        "update to metadata with 17 pairs",
        Status.Code.INVALID_ARGUMENT,
        "metadata.entries",
        () -> {
          var metadata = dev.corral.proto.v1.Metadata.newBuilder();
          for (int i = 0; i < 17; i++) {
            metadata.putEntries("k" + i, "v");
          }
          agents.updateAgent(
              UpdateAgentRequest.newBuilder().setAgentId(agentId).setMetadata(metadata).build());
        });
    add(
        cases,
        "update unknown",
        Status.Code.NOT_FOUND,
        UNKNOWN_AGENT,
        () ->
            agents.updateAgent(
                UpdateAgentRequest.newBuilder().setAgentId(UNKNOWN_AGENT).setName("b").build()));
    add(
        cases,
        "list agents absurd page",
        Status.Code.INVALID_ARGUMENT,
        "page_size",
        () -> agents.listAgents(ListAgentsRequest.newBuilder().setPageSize(101).build()));
    add(
        cases,
        "list agents forged token",
        Status.Code.INVALID_ARGUMENT,
        "page_token",
        () ->
            agents.listAgents(
                ListAgentsRequest.newBuilder()
                    .setPageToken(dev.corral.common.Paging.token("sesn_x"))
                    .build()));
    add(
        cases,
        "versions of unknown agent",
        Status.Code.NOT_FOUND,
        UNKNOWN_AGENT,
        () ->
            agents.listAgentVersions(
                ListAgentVersionsRequest.newBuilder().setAgentId(UNKNOWN_AGENT).build()));
    add(
        cases,
        "versions of unknown agent past a first page",
        Status.Code.NOT_FOUND,
        UNKNOWN_AGENT,
        () ->
            agents.listAgentVersions(
                ListAgentVersionsRequest.newBuilder()
                    .setAgentId(UNKNOWN_AGENT)
                    .setPageToken(dev.corral.common.Paging.token("5"))
                    .build()));
    add(
        cases,
        "versions with forged token",
        Status.Code.INVALID_ARGUMENT,
        "page_token",
        () ->
            agents.listAgentVersions(
                ListAgentVersionsRequest.newBuilder()
                    .setAgentId(agentId)
                    .setPageToken("djE6LTE")
                    .build()));
    add(
        cases,
        "archive unknown agent",
        Status.Code.NOT_FOUND,
        UNKNOWN_AGENT,
        () ->
            agents.archiveAgent(
                ArchiveAgentRequest.newBuilder().setAgentId(UNKNOWN_AGENT).build()));
  }

  private static Tool custom(String name, String schema) {
    return Tool.newBuilder()
        .setCustom(CustomTool.newBuilder().setName(name).setInputSchemaJson(schema))
        .build();
  }

  private void mcpCases(List<Case> cases, CreateAgentRequest ok) {
    dev.corral.proto.v1.McpServer server =
        dev.corral.proto.v1.McpServer.newBuilder()
            .setName("gh")
            .setUrl("https://mcp.example.com/mcp")
            .build();
    dev.corral.proto.v1.Tool toolset =
        dev.corral.proto.v1.Tool.newBuilder()
            .setMcpToolset(dev.corral.proto.v1.McpToolset.newBuilder().setMcpServerName("gh"))
            .build();
    CreateAgentRequest withMcp = ok.toBuilder().addMcpServers(server).addTools(toolset).build();
    record Bad(String name, String field, CreateAgentRequest request) {}
    List<Bad> bad =
        List.of(
            new Bad(
                "an MCP server name with a control character",
                "mcp_servers[0].name",
                withMcp.toBuilder()
                    .setMcpServers(0, server.toBuilder().setName("g\u001bh"))
                    .setTools(
                        0,
                        toolset.toBuilder()
                            .setMcpToolset(
                                toolset.getMcpToolset().toBuilder().setMcpServerName("g\u001bh")))
                    .build()),
            new Bad(
                "an MCP server name of 256 characters",
                "mcp_servers[0].name",
                withMcp.toBuilder()
                    .setMcpServers(0, server.toBuilder().setName("g".repeat(256)))
                    .setTools(
                        0,
                        toolset.toBuilder()
                            .setMcpToolset(
                                toolset.getMcpToolset().toBuilder()
                                    .setMcpServerName("g".repeat(256))))
                    .build()),
            new Bad(
                "two MCP servers of one name",
                "mcp_servers[1].name",
                withMcp.toBuilder().addMcpServers(server).build()),
            new Bad(
                "an MCP server URL that is not http",
                "mcp_servers[0].url",
                withMcp.toBuilder()
                    .setMcpServers(0, server.toBuilder().setUrl("file:///etc/passwd"))
                    .build()),
            new Bad(
                "an MCP server URL with user information",
                "mcp_servers[0].url",
                withMcp.toBuilder()
                    .setMcpServers(0, server.toBuilder().setUrl("https://u:p@mcp.example.com/"))
                    .build()),
            new Bad(
                "a malformed credential id",
                "mcp_servers[0].credential_id",
                withMcp.toBuilder()
                    .setMcpServers(0, server.toBuilder().setCredentialId("cred_x"))
                    .build()),
            new Bad(
                "an MCP toolset of no server",
                "tools[0].mcp_toolset.mcp_server_name",
                ok.toBuilder().addTools(toolset).build()),
            new Bad(
                "an MCP server no toolset uses",
                "mcp_servers[0]",
                ok.toBuilder().addMcpServers(server).build()),
            new Bad(
                "a config of an MCP tool whose name MCP does not allow",
                "tools[0].mcp_toolset.configs[0].name",
                withMcp.toBuilder()
                    .setTools(
                        0,
                        toolset.toBuilder()
                            .setMcpToolset(
                                toolset.getMcpToolset().toBuilder()
                                    .addConfigs(
                                        dev.corral.proto.v1.ToolConfig.newBuilder()
                                            .setName("search v2")
                                            .setEnabled(false))))
                    .build()),
            new Bad(
                "two toolsets for one server",
                "tools[1].mcp_toolset.mcp_server_name",
                withMcp.toBuilder().addTools(toolset).build()),
            new Bad(
                "a custom tool named like an MCP tool",
                "tools[0].custom.name",
                ok.toBuilder()
                    .addTools(
                        dev.corral.proto.v1.Tool.newBuilder()
                            .setCustom(
                                dev.corral.proto.v1.CustomTool.newBuilder()
                                    .setName("mcp__gh__x")
                                    .setInputSchemaJson("{\"type\":\"object\"}")))
                    .build()));
    // an update of one wrapped list that another field of the agent no longer agrees with names
    // that field as the agent has it, not as a request wrapper the client did not send
    String withMcpId = agents.createAgent(withMcp).getAgent().getId();
    add(
        cases,
        "an update of the tools alone that leaves an MCP server unused",
        Status.Code.INVALID_ARGUMENT,
        "",
        () -> {
          try {
            agents.updateAgent(
                UpdateAgentRequest.newBuilder()
                    .setAgentId(withMcpId)
                    .setTools(dev.corral.proto.v1.ToolList.getDefaultInstance())
                    .build());
          } catch (StatusRuntimeException e) {
            if (!String.valueOf(fieldViolation(e)).equals("mcp_servers[0]")) {
              throw new AssertionError("the update named " + fieldViolation(e), e);
            }
            throw e;
          }
        });
    for (Bad one : bad) {
      add(
          cases,
          one.name(),
          Status.Code.INVALID_ARGUMENT,
          "",
          () -> {
            try {
              agents.createAgent(one.request());
            } catch (StatusRuntimeException e) {
              if (!String.valueOf(fieldViolation(e)).equals(one.field())) {
                throw new AssertionError(one.name() + " named " + fieldViolation(e), e);
              }
              throw e;
            }
          });
    }
  }

  private static void add(
      List<Case> cases, String name, Status.Code code, String mentions, Runnable call) {
    cases.add(new Case(name, code, mentions, call));
  }

  private static String fieldViolation(StatusRuntimeException failure) {
    com.google.rpc.Status status = StatusProto.fromThrowable(failure);
    if (status == null) {
      return "";
    }
    return status.getDetailsList().stream()
        .filter(any -> any.is(BadRequest.class))
        .map(
            any -> {
              try {
                return any.unpack(BadRequest.class).getFieldViolations(0).getField();
              } catch (com.google.protobuf.InvalidProtocolBufferException e) {
                return "";
              }
            })
        .findFirst()
        .orElse("");
  }

  private List<Event> allEvents(String id) {
    return sessions
        .getEvents(GetEventsRequest.newBuilder().setSessionId(id).setPageSize(1000).build())
        .getEventsList();
  }

  /** A PNG of {@code width} by {@code height} black pixels. */
  private static com.google.protobuf.ByteString png(int width, int height) {
    try {
      var out = new java.io.ByteArrayOutputStream();
      javax.imageio.ImageIO.write(
          new java.awt.image.BufferedImage(
              width, height, java.awt.image.BufferedImage.TYPE_INT_RGB),
          "png",
          out);
      return com.google.protobuf.ByteString.copyFrom(out.toByteArray());
    } catch (java.io.IOException e) {
      throw new java.io.UncheckedIOException(e);
    }
  }
}
