package dev.corral.harness;

import dev.corral.agent.AgentRules;
import dev.corral.proto.v1.Agent;
import dev.corral.tool.OfferedTools;
import java.util.List;
import java.util.Optional;

/**
 * How MCP tools are named to the model ({@link AgentRules#mcpModelName}), offered only when the
 * tool's name is one MCP allows, the agent declares the server, and its toolset enables the tool.
 */
final class McpNames {

  private McpNames() {}

  static String modelName(String server, String tool) {
    return AgentRules.mcpModelName(server, tool);
  }

  /**
   * The tools of {@code offered} the model may see, in their order. An MCP server's listing is not
   * corral's to trust: a tool whose name MCP does not allow (of any length, with any character), or
   * whose input is not an object, or whose schema is malformed, which the API refuses, is left out,
   * and of two tools with one model name (servers "a" and "a_" listing "_x" and "x" both give
   * mcp__a___x) only the first is seen.
   */
  static List<OfferedTools.Tool> enabled(Agent agent, List<OfferedTools.Tool> offered) {
    java.util.Set<String> names = new java.util.HashSet<>();
    long[] left = {MAX_DEFINITION_CHARS};
    return offered.stream()
        .filter(tool -> AgentRules.MCP_TOOL_NAME.matcher(tool.name()).matches())
        .filter(tool -> ToolPolicy.mcpEnabled(agent, tool.server(), tool.name()))
        // judged when listed, not at every request: a listing's schemas can be megabytes, and
        // requests are projected on an event loop
        .filter(OfferedTools.Tool::inputAccepted)
        .filter(tool -> names.add(modelName(tool.server(), tool.name())))
        .filter(tool -> (left[0] -= definitionChars(tool)) >= 0)
        .toList();
  }

  /**
   * What the definitions of one request's MCP tools may take in all (some 50,000 tokens): twenty
   * servers may list 128 tools each with long descriptions and schemas, which would leave no room
   * for the conversation, or outgrow the window before any turn. Tools past it are not offered.
   */
  static final long MAX_DEFINITION_CHARS = 200_000;

  private static long definitionChars(OfferedTools.Tool tool) {
    return tool.name().length() + tool.description().length() + tool.inputSchemaJson().length();
  }

  /** The offered tool the model called by {@code modelName}, if it was offered. */
  static Optional<OfferedTools.Tool> called(
      Agent agent, List<OfferedTools.Tool> offered, String modelName) {
    if (!modelName.startsWith(AgentRules.MCP_PREFIX)) {
      return Optional.empty();
    }
    return enabled(agent, offered).stream()
        .filter(tool -> modelName(tool.server(), tool.name()).equals(modelName))
        .findFirst();
  }
}
