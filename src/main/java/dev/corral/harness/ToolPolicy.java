package dev.corral.harness;

import dev.corral.proto.v1.Agent;
import dev.corral.proto.v1.AgentToolset;
import dev.corral.proto.v1.EvaluatedPermission;
import dev.corral.proto.v1.McpToolset;
import dev.corral.proto.v1.PermissionPolicy;
import dev.corral.proto.v1.Tool;
import dev.corral.proto.v1.ToolConfig;
import java.util.List;
import java.util.Optional;

/**
 * What an agent's toolsets say about one tool: enabled, and its permission policy. The built-in
 * toolset and each MCP server's toolset read alike: a default, then per-tool entries.
 */
final class ToolPolicy {

  private ToolPolicy() {}

  static boolean enabled(AgentToolset toolset, String name) {
    return enabled(toolset.getDefaultConfig(), toolset.getConfigsList(), name);
  }

  /**
   * The permission the harness records on an agent.tool_use of {@code name}: DENY when the agent
   * has no built-in toolset or its toolset does not enable the tool (the model named it anyway), so
   * the call is answered with an error and never runs.
   */
  static EvaluatedPermission evaluate(Agent agent, String name) {
    Optional<AgentToolset> toolset =
        agent.getToolsList().stream().filter(Tool::hasToolset).map(Tool::getToolset).findFirst();
    if (toolset.isEmpty() || !enabled(toolset.get(), name)) {
      return EvaluatedPermission.EVALUATED_PERMISSION_DENY;
    }
    return permission(toolset.get().getDefaultConfig(), toolset.get().getConfigsList(), name);
  }

  /** Whether the agent's toolset for MCP server {@code server} enables its tool {@code name}. */
  static boolean mcpEnabled(Agent agent, String server, String name) {
    return mcpToolset(agent, server)
        .map(toolset -> enabled(toolset.getDefaultConfig(), toolset.getConfigsList(), name))
        .orElse(false);
  }

  /** The permission the harness records on an agent.mcp_tool_use. */
  static EvaluatedPermission evaluateMcp(Agent agent, String server, String name) {
    return mcpToolset(agent, server)
        .map(toolset -> permission(toolset.getDefaultConfig(), toolset.getConfigsList(), name))
        .orElse(EvaluatedPermission.EVALUATED_PERMISSION_ASK);
  }

  /** Whether {@code name} is one of the agent's custom (client-run) tools. */
  static boolean isCustom(Agent agent, String name) {
    return agent.getToolsList().stream()
        .anyMatch(tool -> tool.hasCustom() && tool.getCustom().getName().equals(name));
  }

  private static Optional<McpToolset> mcpToolset(Agent agent, String server) {
    return agent.getToolsList().stream()
        .filter(Tool::hasMcpToolset)
        .map(Tool::getMcpToolset)
        .filter(toolset -> toolset.getMcpServerName().equals(server))
        .findFirst();
  }

  private static boolean enabled(ToolConfig defaults, List<ToolConfig> configs, String name) {
    ToolConfig config = configOf(configs, name);
    if (config.hasEnabled()) {
      return config.getEnabled();
    }
    return !defaults.hasEnabled() || defaults.getEnabled();
  }

  private static EvaluatedPermission permission(
      ToolConfig defaults, List<ToolConfig> configs, String name) {
    PermissionPolicy policy = configOf(configs, name).getPermissionPolicy();
    if (policy == PermissionPolicy.PERMISSION_POLICY_UNSPECIFIED) {
      policy = defaults.getPermissionPolicy();
    }
    return policy == PermissionPolicy.PERMISSION_POLICY_ALWAYS_ASK
        ? EvaluatedPermission.EVALUATED_PERMISSION_ASK
        : EvaluatedPermission.EVALUATED_PERMISSION_ALLOW;
  }

  private static ToolConfig configOf(List<ToolConfig> configs, String name) {
    return configs.stream()
        .filter(config -> config.getName().equals(name))
        .findFirst()
        .orElse(ToolConfig.getDefaultInstance());
  }
}
