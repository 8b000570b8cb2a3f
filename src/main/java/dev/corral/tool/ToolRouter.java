package dev.corral.tool;

import dev.corral.proto.v1.Event;
import dev.corral.proto.v1.McpServer;
import dev.corral.proto.v1.Session;
import io.smallrye.mutiny.Uni;
import java.util.List;
import java.util.function.Function;

/**
 * Sends a tool call to where it runs: {@code execute(name, input) -> string}. A failure of the
 * tool, of its sandbox or of its input is a {@link ToolOutcome#error} the model sees, never an
 * exception, so that every call gets a result. Cancelling the returned Uni stops the call.
 */
public interface ToolRouter {

  Uni<ToolOutcome> execute(ToolCall call);

  /**
   * Called when a harness starts on a session, before its first model call: a router that
   * provisions eagerly does it here and returns the events to record. Lazy routers return none.
   */
  default Uni<List<Event>> prepare(String sessionId) {
    return Uni.createFrom().item(List.of());
  }

  /** The MCP tools the agent of {@code session} may be offered this turn (none by default). */
  default Uni<OfferedTools> offered(Session session) {
    return Uni.createFrom().item(OfferedTools.NONE);
  }

  /**
   * One call of a built-in or MCP tool by the harness working a session.
   *
   * @param toolUseId the id of the agent.tool_use (or agent.mcp_tool_use) event
   * @param name the tool's name (for an MCP tool, its name on its server)
   * @param mcp the MCP server of an MCP call and the session's tenant, or null for a built-in tool
   * @param record appends events the call brings about before its result (sandbox.provisioned as
   *     soon as its sandbox is); the call goes on once they are in the log
   */
  record ToolCall(
      String sessionId,
      String toolUseId,
      String name,
      String inputJson,
      McpTarget mcp,
      Function<List<Event>, Uni<Void>> record,
      io.opentelemetry.context.Context trace) {}

  /**
   * Where an MCP call goes, for whom.
   *
   * @param vaultIds the session's vaults: a server without a credential of its own uses the one of
   *     them bound to its URL
   */
  record McpTarget(String tenantId, McpServer server, List<String> vaultIds) {}
}
