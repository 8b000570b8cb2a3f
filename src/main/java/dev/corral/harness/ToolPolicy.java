package dev.corral.harness;

import dev.corral.proto.v1.Agent;
import dev.corral.proto.v1.AgentToolset;
import dev.corral.proto.v1.EvaluatedPermission;
import dev.corral.proto.v1.PermissionPolicy;
import dev.corral.proto.v1.Tool;
import dev.corral.proto.v1.ToolConfig;
import java.util.Optional;

/** What an agent's toolset says about one built-in tool: enabled, and its permission policy. */
final class ToolPolicy {

  private ToolPolicy() {}

  static boolean enabled(AgentToolset toolset, String name) {
    ToolConfig config = configOf(toolset, name);
    if (config.hasEnabled()) {
      return config.getEnabled();
    }
    return !toolset.getDefaultConfig().hasEnabled() || toolset.getDefaultConfig().getEnabled();
  }

  /** The permission the harness records on an agent.tool_use of {@code name}. */
  static EvaluatedPermission evaluate(Agent agent, String name) {
    Optional<AgentToolset> toolset =
        agent.getToolsList().stream().filter(Tool::hasToolset).map(Tool::getToolset).findFirst();
    if (toolset.isEmpty() || !enabled(toolset.get(), name)) {
      return EvaluatedPermission.EVALUATED_PERMISSION_ALLOW;
    }
    PermissionPolicy policy = configOf(toolset.get(), name).getPermissionPolicy();
    if (policy == PermissionPolicy.PERMISSION_POLICY_UNSPECIFIED) {
      policy = toolset.get().getDefaultConfig().getPermissionPolicy();
    }
    return policy == PermissionPolicy.PERMISSION_POLICY_ALWAYS_ASK
        ? EvaluatedPermission.EVALUATED_PERMISSION_ASK
        : EvaluatedPermission.EVALUATED_PERMISSION_ALLOW;
  }

  /** Whether {@code name} is one of the agent's custom (client-run) tools. */
  static boolean isCustom(Agent agent, String name) {
    return agent.getToolsList().stream()
        .anyMatch(tool -> tool.hasCustom() && tool.getCustom().getName().equals(name));
  }

  private static ToolConfig configOf(AgentToolset toolset, String name) {
    return toolset.getConfigsList().stream()
        .filter(config -> config.getName().equals(name))
        .findFirst()
        .orElse(ToolConfig.getDefaultInstance());
  }
}
