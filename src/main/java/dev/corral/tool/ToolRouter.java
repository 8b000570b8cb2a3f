package dev.corral.tool;

import io.smallrye.mutiny.Uni;

/**
 * Sends a tool call to where it runs: {@code execute(name, input) -> string}. A failure of the
 * tool, of its sandbox or of its input is a {@link ToolOutcome#error} the model sees, never an
 * exception, so that every call gets a result. Cancelling the returned Uni stops the call.
 */
public interface ToolRouter {

  Uni<ToolOutcome> execute(ToolCall call);

  /**
   * One call of a built-in tool by the harness working a session.
   *
   * @param toolUseId the id of the agent.tool_use event
   */
  record ToolCall(String sessionId, String toolUseId, String name, String inputJson) {}
}
