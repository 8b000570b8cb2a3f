package dev.corral.harness;

import dev.corral.model.ModelException;
import dev.corral.model.ModelResponse;
import dev.corral.proto.v1.Agent;
import dev.corral.proto.v1.AgentCustomToolUse;
import dev.corral.proto.v1.AgentMcpToolResult;
import dev.corral.proto.v1.AgentMcpToolUse;
import dev.corral.proto.v1.AgentMessage;
import dev.corral.proto.v1.AgentThinking;
import dev.corral.proto.v1.AgentToolResult;
import dev.corral.proto.v1.AgentToolUse;
import dev.corral.proto.v1.ContentBlock;
import dev.corral.proto.v1.Event;
import dev.corral.proto.v1.RetryStatus;
import dev.corral.proto.v1.SessionError;
import dev.corral.proto.v1.SessionStatusIdle;
import dev.corral.proto.v1.SessionStatusRunning;
import dev.corral.proto.v1.SpanModelRequestEnd;
import dev.corral.proto.v1.SpanModelRequestStart;
import dev.corral.proto.v1.StopReason;
import dev.corral.proto.v1.StopReasonType;
import dev.corral.proto.v1.TextBlock;
import dev.corral.session.EventType;
import dev.corral.session.NewEvent;
import dev.corral.tool.OfferedTools;
import java.util.List;

/** The events a harness appends, built in one place. */
final class EventsFactory {

  private EventsFactory() {}

  static NewEvent running() {
    return NewEvent.of(
        Event.newBuilder()
            .setSessionStatusRunning(SessionStatusRunning.getDefaultInstance())
            .build());
  }

  static NewEvent idle(StopReason reason) {
    return NewEvent.of(
        Event.newBuilder()
            .setSessionStatusIdle(SessionStatusIdle.newBuilder().setStopReason(reason))
            .build());
  }

  /**
   * The result of {@code call}: an agent.mcp_tool_result for an MCP call, else agent.tool_result.
   */
  static NewEvent resultOf(ToolCallState call, String text, boolean isError) {
    if (call.kind() != ToolCallState.Kind.MCP) {
      return toolResult(call.eventId(), text, isError);
    }
    AgentMcpToolResult.Builder result =
        AgentMcpToolResult.newBuilder().setMcpToolUseId(call.eventId()).setIsError(isError);
    if (!text.isEmpty()) {
      result.addContent(text(text));
    }
    return NewEvent.of(Event.newBuilder().setAgentMcpToolResult(result).build());
  }

  static NewEvent toolResult(String toolUseId, String text, boolean isError) {
    AgentToolResult.Builder result =
        AgentToolResult.newBuilder().setToolUseId(toolUseId).setIsError(isError);
    if (!text.isEmpty()) {
      result.addContent(text(text));
    }
    return NewEvent.of(Event.newBuilder().setAgentToolResult(result).build());
  }

  static NewEvent spanStart(String id, String model) {
    return spanStart(id, model, "", "");
  }

  static NewEvent spanStart(String id, String model, String purpose) {
    return spanStart(id, model, purpose, "");
  }

  static NewEvent spanStart(String id, String model, String purpose, String traceId) {
    Event start =
        Event.newBuilder()
            .setSpanModelRequestStart(
                SpanModelRequestStart.newBuilder()
                    .setModel(model)
                    .setPurpose(purpose)
                    .setTraceId(traceId))
            .build();
    return new NewEvent(id, EventType.SPAN_MODEL_REQUEST_START, start, null);
  }

  static NewEvent compacted(
      long fromSeq, long upToSeq, String summary, long tokensBefore, long tokensAfter) {
    return NewEvent.of(
        Event.newBuilder()
            .setAgentContextCompacted(
                dev.corral.proto.v1.AgentContextCompacted.newBuilder()
                    .setFromSeq(fromSeq)
                    .setUpToSeq(upToSeq)
                    .setSummary(summary)
                    .setPreCompactionTokens(tokensBefore)
                    .setPostCompactionTokens(tokensAfter))
            .build());
  }

  static NewEvent spanEnd(String startId, ModelResponse response) {
    return NewEvent.of(
        Event.newBuilder()
            .setSpanModelRequestEnd(
                SpanModelRequestEnd.newBuilder()
                    .setModelRequestStartId(startId)
                    .setModelUsage(response.usage())
                    .setStopReason(response.stopReason()))
            .build());
  }

  static NewEvent failedSpanEnd(String startId, String error) {
    return failedSpanEnd(startId, error, null);
  }

  /** A failed call's span end, with what it used if an answer came ({@code usage} non-null). */
  static NewEvent failedSpanEnd(
      String startId, String error, dev.corral.proto.v1.ModelUsage usage) {
    SpanModelRequestEnd.Builder end =
        SpanModelRequestEnd.newBuilder()
            .setModelRequestStartId(startId)
            .setIsError(true)
            .setErrorMessage(error);
    if (usage != null) {
      end.setModelUsage(usage);
    }
    return NewEvent.of(Event.newBuilder().setSpanModelRequestEnd(end).build());
  }

  /**
   * Closes the span of a model call whose harness stopped while it ran. When its lease was taken
   * over ({@code failed}: the harness died, or lost its lease) the call failed, and counts toward
   * the turn's retries like any failed call, so that a call that kills its replica every time (a
   * reply too large for its memory, say) is not made again for ever: {@code attempt} is the
   * failure's number since the turn's input, 1 first, and past {@code maxRetries} the turn is given
   * up. A lease given back (a replica shutting down) only closes the span: the call is made again.
   */
  static List<NewEvent> orphanClosed(String spanId, boolean failed, int attempt, int maxRetries) {
    String why = "the harness restarted while this call ran";
    if (!failed) {
      return List.of(failedSpanEnd(spanId, why));
    }
    boolean last = attempt > maxRetries;
    List<NewEvent> events = new java.util.ArrayList<>();
    events.add(failedSpanEnd(spanId, why));
    events.add(
        sessionError(
            new ModelException(0, "api_error", "The model call failed: " + why + ".", true, null),
            attempt,
            last));
    if (last) {
      events.add(idle(Decision.stopReason(StopReasonType.STOP_REASON_TYPE_RETRIES_EXHAUSTED)));
    }
    return events;
  }

  static NewEvent sessionError(ModelException error, int attempt, boolean last) {
    String message =
        error.retryable()
            ? error.getMessage()
            : error.getMessage() + " (not retried: the request itself was refused)";
    return NewEvent.of(
        Event.newBuilder()
            .setSessionError(
                SessionError.newBuilder()
                    .setErrorType(error.sessionErrorType())
                    .setMessage(message)
                    .setRetryStatus(
                        last
                            ? RetryStatus.RETRY_STATUS_EXHAUSTED
                            : RetryStatus.RETRY_STATUS_RETRYING)
                    .setAttempt(attempt)
                    .setInputRefused(last && error.inputRefused()))
            .build());
  }

  /** The harness gives a turn up after repeated errors of its own (see HarnessRun.giveUp). */
  static NewEvent harnessGaveUp(String message) {
    return NewEvent.of(
        Event.newBuilder()
            .setSessionError(
                SessionError.newBuilder()
                    .setErrorType("unknown_error")
                    .setMessage(message)
                    .setRetryStatus(RetryStatus.RETRY_STATUS_EXHAUSTED))
            .build());
  }

  /** One block of a model response as the event that records it, under {@code id}. */
  static NewEvent block(String id, ModelResponse.Block block, Agent agent) {
    return block(id, block, agent, java.util.List.of());
  }

  /**
   * One block of a model response as the event that records it, under {@code id}; a call of one of
   * {@code offered} is an agent.mcp_tool_use.
   */
  static NewEvent block(
      String id,
      ModelResponse.Block block,
      Agent agent,
      java.util.List<OfferedTools.Tool> offered) {
    Event event;
    if (block instanceof ModelResponse.Text text) {
      event =
          Event.newBuilder()
              .setAgentMessage(AgentMessage.newBuilder().addContent(text(text.text())))
              .build();
    } else if (block instanceof ModelResponse.Thinking thinking) {
      event =
          Event.newBuilder()
              .setAgentThinking(
                  AgentThinking.newBuilder()
                      .setThinking(thinking.thinking())
                      .setSignature(thinking.signature()))
              .build();
    } else if (block instanceof ModelResponse.RedactedThinking redacted) {
      event =
          Event.newBuilder()
              .setAgentThinking(AgentThinking.newBuilder().setRedactedData(redacted.data()))
              .build();
    } else {
      event = toolUse((ModelResponse.ToolUse) block, agent, offered);
    }
    return new NewEvent(id, EventType.of(event).orElseThrow(), event, null);
  }

  private static Event toolUse(
      ModelResponse.ToolUse use, Agent agent, java.util.List<OfferedTools.Tool> offered) {
    var mcp = McpNames.called(agent, offered, use.name());
    if (mcp.isPresent()) {
      return Event.newBuilder()
          .setAgentMcpToolUse(
              AgentMcpToolUse.newBuilder()
                  .setCallId(use.id())
                  .setMcpServerName(mcp.get().server())
                  .setName(mcp.get().name())
                  .setInputJson(use.inputJson())
                  .setEvaluatedPermission(
                      ToolPolicy.evaluateMcp(agent, mcp.get().server(), mcp.get().name()))
                  .setReadOnly(mcp.get().readOnly()))
          .build();
    }
    if (ToolPolicy.isCustom(agent, use.name())) {
      return Event.newBuilder()
          .setAgentCustomToolUse(
              AgentCustomToolUse.newBuilder()
                  .setCallId(use.id())
                  .setName(use.name())
                  .setInputJson(use.inputJson()))
          .build();
    }
    return Event.newBuilder()
        .setAgentToolUse(
            AgentToolUse.newBuilder()
                .setCallId(use.id())
                .setName(use.name())
                .setInputJson(use.inputJson())
                .setEvaluatedPermission(ToolPolicy.evaluate(agent, use.name())))
        .build();
  }

  private static ContentBlock text(String text) {
    return ContentBlock.newBuilder().setText(TextBlock.newBuilder().setText(text)).build();
  }
}
