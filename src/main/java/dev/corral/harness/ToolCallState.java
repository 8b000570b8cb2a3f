package dev.corral.harness;

import dev.corral.proto.v1.ConfirmationResult;
import dev.corral.proto.v1.EvaluatedPermission;

/**
 * One tool call the model made (an agent.tool_use, agent.custom_tool_use or agent.mcp_tool_use
 * event) and what has happened to it since.
 *
 * @param eventId the id of the tool-use event, which results and confirmations reference
 * @param callId the model's id for the call (toolu_…)
 * @param name the tool's name (an MCP tool's name on its server)
 * @param mcpServer the agent's name for the MCP server of an MCP call, else empty
 * @param readOnly the call changes nothing, so a restarted harness may run it again
 * @param confirmation UNSPECIFIED until a user.tool_confirmation answers an ASK call
 */
record ToolCallState(
    String eventId,
    long seq,
    String callId,
    String name,
    String inputJson,
    Kind kind,
    String mcpServer,
    boolean readOnly,
    EvaluatedPermission permission,
    ConfirmationResult confirmation,
    String denyMessage,
    boolean answered) {

  /** Who runs a call. */
  enum Kind {
    /** A built-in tool, in the session's sandbox. */
    BUILT_IN,
    /** The client, which answers with a user.custom_tool_result. */
    CUSTOM,
    /**
     * No one: a custom call whose input the model's output limit (max_tokens) cut off, not a JSON
     * object, so no client could run it. The harness answers it with an error, as it does a
     * built-in call's.
     */
    CUSTOM_CUT_OFF,
    /** corral's server, at one of the agent's MCP servers. */
    MCP
  }

  ToolCallState confirmed(ConfirmationResult result, String message) {
    return new ToolCallState(
        eventId,
        seq,
        callId,
        name,
        inputJson,
        kind,
        mcpServer,
        readOnly,
        permission,
        result,
        message,
        answered);
  }

  ToolCallState answer() {
    return new ToolCallState(
        eventId,
        seq,
        callId,
        name,
        inputJson,
        kind,
        mcpServer,
        readOnly,
        permission,
        confirmation,
        denyMessage,
        true);
  }

  /** The kind of a custom call whose input is {@code inputJson}: judged once, when folded. */
  static Kind custom(String inputJson) {
    try {
      return JSON.readTree(inputJson).isObject() ? Kind.CUSTOM : Kind.CUSTOM_CUT_OFF;
    } catch (java.io.IOException unfinished) {
      return Kind.CUSTOM_CUT_OFF;
    }
  }

  private static final com.fasterxml.jackson.databind.ObjectMapper JSON =
      new com.fasterxml.jackson.databind.ObjectMapper();

  boolean custom() {
    return kind == Kind.CUSTOM || kind == Kind.CUSTOM_CUT_OFF;
  }

  boolean asks() {
    return permission == EvaluatedPermission.EVALUATED_PERMISSION_ASK;
  }

  /** The agent does not enable the tool: the call is answered with an error, never run. */
  boolean refused() {
    return permission == EvaluatedPermission.EVALUATED_PERMISSION_DENY;
  }

  /** The harness may run it: a built-in or MCP call that is allowed, or was asked and allowed. */
  boolean runnable() {
    if (custom() || answered || refused()) {
      return false;
    }
    return !asks() || confirmation == ConfirmationResult.CONFIRMATION_RESULT_ALLOW;
  }

  /** A custom call whose input was cut off (see {@link Kind#CUSTOM_CUT_OFF}). */
  boolean cutOff() {
    return kind == Kind.CUSTOM_CUT_OFF;
  }

  /** Waits for the client: a custom call without result, or an ASK call without confirmation. */
  boolean waitingForClient() {
    if (answered) {
      return false;
    }
    return (custom() && !cutOff())
        || (asks() && confirmation == ConfirmationResult.CONFIRMATION_RESULT_UNSPECIFIED);
  }

  /** A built-in or MCP call that asks for a confirmation and has none yet. */
  boolean waitingForConfirmation() {
    return !answered
        && !custom()
        && asks()
        && confirmation == ConfirmationResult.CONFIRMATION_RESULT_UNSPECIFIED;
  }

  /**
   * Answered with an error, not run: refused by the agent's toolset, denied by the user, or a
   * custom call cut off.
   */
  boolean denied() {
    return !answered
        && (cutOff()
            || !custom()
                && (refused() || confirmation == ConfirmationResult.CONFIRMATION_RESULT_DENY));
  }
}
