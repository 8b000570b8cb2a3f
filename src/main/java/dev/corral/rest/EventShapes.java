package dev.corral.rest;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.corral.common.InvalidArgumentException;
import dev.corral.proto.v1.ClonedRepository;
import dev.corral.proto.v1.ConfirmationResult;
import dev.corral.proto.v1.EvaluatedPermission;
import dev.corral.proto.v1.Event;
import dev.corral.proto.v1.RetryStatus;
import dev.corral.proto.v1.StopReason;
import dev.corral.proto.v1.UserCustomToolResult;
import dev.corral.proto.v1.UserInterrupt;
import dev.corral.proto.v1.UserMessage;
import dev.corral.proto.v1.UserToolConfirmation;
import java.util.Set;

/**
 * Events in the API's shape: the envelope ({@code id}, {@code type}, {@code processed_at}) with the
 * payload's fields beside it, and corral's {@code session_id} and {@code seq} as extra keys. Names
 * follow the API where corral's differ: {@code agent.context_compacted} is {@code
 * agent.thread_context_compacted}, the {@code interrupted} stop reason is {@code end_turn} (with
 * {@code corral_stop_reason}), a retry status is an object. corral's own events ({@code sandbox.*})
 * keep their names.
 */
final class EventShapes {

  static final Set<String> SENDABLE =
      Set.of("user.message", "user.interrupt", "user.tool_confirmation", "user.custom_tool_result");

  private EventShapes() {}

  /** The API's name of a corral event type. */
  static String wireType(String type) {
    return type.equals("agent.context_compacted") ? "agent.thread_context_compacted" : type;
  }

  static ObjectNode event(Event event) {
    ObjectNode node =
        Shapes.object().put("id", event.getId()).put("type", wireType(event.getType()));
    node.set("processed_at", Shapes.time(event.hasProcessedAt(), event.getProcessedAt()));
    node.put("session_id", event.getSessionId()).put("seq", event.getSeq());
    switch (event.getPayloadCase()) {
      case USER_MESSAGE ->
          node.set("content", Shapes.content(event.getUserMessage().getContentList()));
      case USER_INTERRUPT -> {}
      case USER_TOOL_CONFIRMATION -> {
        UserToolConfirmation confirmation = event.getUserToolConfirmation();
        node.put("tool_use_id", confirmation.getToolUseId())
            .put(
                "result",
                confirmation.getResult() == ConfirmationResult.CONFIRMATION_RESULT_ALLOW
                    ? "allow"
                    : "deny");
        if (!confirmation.getDenyMessage().isEmpty()) {
          node.put("deny_message", confirmation.getDenyMessage());
        }
      }
      case USER_CUSTOM_TOOL_RESULT -> {
        UserCustomToolResult result = event.getUserCustomToolResult();
        node.put("custom_tool_use_id", result.getCustomToolUseId());
        node.set("content", Shapes.content(result.getContentList()));
        node.put("is_error", result.getIsError());
      }
      case AGENT_MESSAGE ->
          node.set("content", Shapes.content(event.getAgentMessage().getContentList()));
      case AGENT_THINKING -> {}
      case AGENT_TOOL_USE -> {
        var use = event.getAgentToolUse();
        node.put("name", use.getName());
        node.set("input", Shapes.parsed(use.getInputJson()));
        permission(node, use.getEvaluatedPermission());
      }
      case AGENT_TOOL_RESULT -> {
        var result = event.getAgentToolResult();
        node.put("tool_use_id", result.getToolUseId());
        node.set("content", Shapes.content(result.getContentList()));
        node.put("is_error", result.getIsError());
      }
      case AGENT_CUSTOM_TOOL_USE -> {
        var use = event.getAgentCustomToolUse();
        node.put("name", use.getName());
        node.set("input", Shapes.parsed(use.getInputJson()));
      }
      case AGENT_CONTEXT_COMPACTED -> {
        var compacted = event.getAgentContextCompacted();
        node.put("from_seq", compacted.getFromSeq())
            .put("up_to_seq", compacted.getUpToSeq())
            .put("pre_compaction_tokens", compacted.getPreCompactionTokens())
            .put("post_compaction_tokens", compacted.getPostCompactionTokens());
      }
      case AGENT_MCP_TOOL_USE -> {
        var use = event.getAgentMcpToolUse();
        node.put("mcp_server_name", use.getMcpServerName()).put("name", use.getName());
        node.set("input", Shapes.parsed(use.getInputJson()));
        permission(node, use.getEvaluatedPermission());
      }
      case AGENT_MCP_TOOL_RESULT -> {
        var result = event.getAgentMcpToolResult();
        node.put("mcp_tool_use_id", result.getMcpToolUseId());
        node.set("content", Shapes.content(result.getContentList()));
        node.put("is_error", result.getIsError());
      }
      case SESSION_STATUS_IDLE ->
          node.set("stop_reason", stopReason(event.getSessionStatusIdle().getStopReason()));
      case SESSION_STATUS_RUNNING -> {}
      case SESSION_STATUS_RESCHEDULED ->
          node.put("reason", event.getSessionStatusRescheduled().getReason());
      case SESSION_STATUS_TERMINATED ->
          node.put("reason", event.getSessionStatusTerminated().getReason());
      case SESSION_ERROR -> {
        var error = event.getSessionError();
        ObjectNode shaped =
            node.putObject("error")
                .put("type", error.getErrorType())
                .put("message", error.getMessage());
        shaped.putObject("retry_status").put("type", retryStatus(error.getRetryStatus()));
        if (!error.getMcpServerName().isEmpty()) {
          shaped.put("mcp_server_name", error.getMcpServerName());
        }
        if (error.getInputRefused()) {
          shaped.put("corral_input_refused", true);
        }
      }
      case SPAN_MODEL_REQUEST_START -> {
        node.put("model", event.getSpanModelRequestStart().getModel());
        if (!event.getSpanModelRequestStart().getTraceId().isEmpty()) {
          node.put("corral_trace_id", event.getSpanModelRequestStart().getTraceId());
        }
      }
      case SPAN_MODEL_REQUEST_END -> {
        var end = event.getSpanModelRequestEnd();
        node.put("model_request_start_id", end.getModelRequestStartId())
            .put("is_error", end.getIsError());
        node.putObject("model_usage")
            .put("input_tokens", end.getModelUsage().getInputTokens())
            .put("output_tokens", end.getModelUsage().getOutputTokens())
            .put("cache_creation_input_tokens", end.getModelUsage().getCacheCreationInputTokens())
            .put("cache_read_input_tokens", end.getModelUsage().getCacheReadInputTokens());
      }
      case SANDBOX_PROVISIONED -> {
        var provisioned = event.getSandboxProvisioned();
        node.put("sandbox_id", provisioned.getSandboxId())
            .put("environment_id", provisioned.getEnvironmentId())
            .put("driver", provisioned.getDriver());
        ArrayNode repositories = node.putArray("repositories");
        for (ClonedRepository repository : provisioned.getRepositoriesList()) {
          repositories
              .addObject()
              .put("resource_id", repository.getResourceId())
              .put("url", repository.getUrl())
              .put("mount_path", repository.getMountPath())
              .put("commit", repository.getCommit())
              .put("error", repository.getError());
        }
      }
      case SANDBOX_LOST ->
          node.put("sandbox_id", event.getSandboxLost().getSandboxId())
              .put("reason", event.getSandboxLost().getReason());
      case SANDBOX_EGRESS_DENIED -> {
        var denied = event.getSandboxEgressDenied();
        node.put("sandbox_id", denied.getSandboxId())
            .put("host", denied.getHost())
            .put("port", denied.getPort())
            .put("reason", denied.getReason());
      }
      default -> {}
    }
    return node;
  }

  private static void permission(ObjectNode node, EvaluatedPermission permission) {
    switch (permission) {
      case EVALUATED_PERMISSION_ALLOW -> node.put("evaluated_permission", "allow");
      case EVALUATED_PERMISSION_ASK -> node.put("evaluated_permission", "ask");
      case EVALUATED_PERMISSION_DENY -> node.put("evaluated_permission", "deny");
      default -> {}
    }
  }

  static ObjectNode stopReason(StopReason reason) {
    ObjectNode node = Shapes.object();
    switch (reason.getType()) {
      case STOP_REASON_TYPE_REQUIRES_ACTION -> {
        node.put("type", "requires_action");
        ArrayNode ids = node.putArray("event_ids");
        reason.getEventIdsList().forEach(ids::add);
      }
      case STOP_REASON_TYPE_RETRIES_EXHAUSTED -> node.put("type", "retries_exhausted");
      case STOP_REASON_TYPE_BUDGET_REACHED -> node.put("type", "budget_reached");
      case STOP_REASON_TYPE_REFUSAL -> node.put("type", "refusal");
      case STOP_REASON_TYPE_INTERRUPTED ->
          node.put("type", "end_turn").put("corral_stop_reason", "interrupted");
      default -> node.put("type", "end_turn");
    }
    return node;
  }

  private static String retryStatus(RetryStatus status) {
    return switch (status) {
      case RETRY_STATUS_RETRYING -> "retrying";
      case RETRY_STATUS_EXHAUSTED -> "exhausted";
      default -> "terminal";
    };
  }

  // --- requests
  // -----------------------------------------------------------------------------------

  /** An event a client sends: a user message, an interrupt, a confirmation or a tool's result. */
  static Event sent(ObjectNode event, String at) {
    String type = Fields.type(event, at, SENDABLE);
    // On any sent event: a confirmation or result meant for a thread must not reach the session.
    Fields.unsupported(
        event, "session_thread_id", at + ".session_thread_id", "corral sessions have no threads");
    Event.Builder built = Event.newBuilder();
    switch (type) {
      case "user.message" ->
          built.setUserMessage(
              UserMessage.newBuilder()
                  .addAllContent(Shapes.content(event, "content", at + ".content")));
      case "user.interrupt" -> built.setUserInterrupt(UserInterrupt.getDefaultInstance());
      case "user.tool_confirmation" -> {
        String result = Fields.string(event, "result", at + ".result");
        if (!result.equals("allow") && !result.equals("deny")) {
          throw new InvalidArgumentException(at + ".result", "must be allow or deny");
        }
        built.setUserToolConfirmation(
            UserToolConfirmation.newBuilder()
                .setToolUseId(Fields.string(event, "tool_use_id", at + ".tool_use_id"))
                .setResult(
                    result.equals("allow")
                        ? ConfirmationResult.CONFIRMATION_RESULT_ALLOW
                        : ConfirmationResult.CONFIRMATION_RESULT_DENY)
                .setDenyMessage(
                    Fields.optionalString(event, "deny_message", at + ".deny_message").orElse("")));
      }
      default ->
          built.setUserCustomToolResult(
              UserCustomToolResult.newBuilder()
                  .setCustomToolUseId(
                      Fields.string(event, "custom_tool_use_id", at + ".custom_tool_use_id"))
                  .addAllContent(Shapes.content(event, "content", at + ".content"))
                  .setIsError(
                      Fields.optionalBoolean(event, "is_error", at + ".is_error").orElse(false)));
    }
    return built.build();
  }
}
