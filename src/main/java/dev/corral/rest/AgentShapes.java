package dev.corral.rest;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.corral.common.InvalidArgumentException;
import dev.corral.proto.v1.Agent;
import dev.corral.proto.v1.AgentToolset;
import dev.corral.proto.v1.CustomTool;
import dev.corral.proto.v1.McpServer;
import dev.corral.proto.v1.McpToolset;
import dev.corral.proto.v1.PermissionPolicy;
import dev.corral.proto.v1.Tool;
import dev.corral.proto.v1.ToolConfig;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.Set;

/**
 * Agents in the API's shape: {@code agent_toolset_20260401}, {@code mcp_toolset} and {@code custom}
 * tools, {@code url} MCP servers (with corral's {@code credential_id} beside them), the model as an
 * object. Skills and multi-agent are not corral's: a request that uses them is refused.
 */
final class AgentShapes {

  static final String TOOLSET = "agent_toolset_20260401";
  private static final Set<String> TOOL_TYPES = Set.of(TOOLSET, "mcp_toolset", "custom");

  private AgentShapes() {}

  static ObjectNode agent(Agent agent) {
    ObjectNode node = Shapes.object().put("type", "agent").put("id", agent.getId());
    node.put("name", agent.getName());
    node.set(
        "description",
        agent.getDescription().isEmpty()
            ? Shapes.NODES.nullNode()
            : Shapes.NODES.textNode(agent.getDescription()));
    node.putObject("model").put("id", agent.getModel());
    node.set(
        "system",
        agent.getSystem().isEmpty()
            ? Shapes.NODES.nullNode()
            : Shapes.NODES.textNode(agent.getSystem()));
    ArrayNode tools = node.putArray("tools");
    agent.getToolsList().forEach(tool -> tools.add(tool(tool)));
    ArrayNode servers = node.putArray("mcp_servers");
    for (McpServer server : agent.getMcpServersList()) {
      ObjectNode shaped =
          servers
              .addObject()
              .put("type", "url")
              .put("name", server.getName())
              .put("url", server.getUrl());
      if (!server.getCredentialId().isEmpty()) {
        shaped.put("credential_id", server.getCredentialId());
      }
    }
    node.putArray("skills");
    // corral's server makes every call an agent's tools need as itself
    node.putObject("execution_identity").put("type", "service_account");
    node.set("metadata", Shapes.metadata(agent.getMetadataMap()));
    node.put("version", agent.getVersion());
    node.set("created_at", Shapes.time(agent.hasCreatedAt(), agent.getCreatedAt()));
    node.set("updated_at", Shapes.time(agent.hasUpdatedAt(), agent.getUpdatedAt()));
    node.set("archived_at", Shapes.time(agent.hasArchivedAt(), agent.getArchivedAt()));
    return node;
  }

  private static ObjectNode tool(Tool tool) {
    switch (tool.getToolCase()) {
      case TOOLSET -> {
        AgentToolset toolset = tool.getToolset();
        ObjectNode node = Shapes.object().put("type", TOOLSET);
        node.set("default_config", config(toolset.getDefaultConfig(), DEFAULTS));
        ArrayNode configs = node.putArray("configs");
        toolset
            .getConfigsList()
            .forEach(
                config ->
                    configs.add(
                        config(config, toolset.getDefaultConfig())
                            .put("type", config.getName())
                            .put("name", config.getName())));
        return node;
      }
      case MCP_TOOLSET -> {
        McpToolset toolset = tool.getMcpToolset();
        ObjectNode node =
            Shapes.object()
                .put("type", "mcp_toolset")
                .put("mcp_server_name", toolset.getMcpServerName());
        node.set("default_config", config(toolset.getDefaultConfig(), DEFAULTS));
        ArrayNode configs = node.putArray("configs");
        toolset
            .getConfigsList()
            .forEach(
                config ->
                    configs.add(
                        config(config, toolset.getDefaultConfig()).put("name", config.getName())));
        return node;
      }
      case CUSTOM -> {
        CustomTool custom = tool.getCustom();
        ObjectNode node =
            Shapes.object()
                .put("type", "custom")
                .put("name", custom.getName())
                .put("description", custom.getDescription());
        node.set("input_schema", Shapes.parsed(custom.getInputSchemaJson()));
        return node;
      }
      default -> {
        return Shapes.object().put("type", "unknown");
      }
    }
  }

  /** What a toolset's tools are when nothing is configured: enabled, always allowed. */
  private static final ToolConfig DEFAULTS =
      ToolConfig.newBuilder()
          .setEnabled(true)
          .setPermissionPolicy(PermissionPolicy.PERMISSION_POLICY_ALWAYS_ALLOW)
          .build();

  /**
   * A tool's config as the harness applies it: what it sets, else what {@code defaults} (the
   * toolset's default config) sets, else enabled and always allowed.
   */
  private static ObjectNode config(ToolConfig config, ToolConfig defaults) {
    PermissionPolicy policy = config.getPermissionPolicy();
    if (policy == PermissionPolicy.PERMISSION_POLICY_UNSPECIFIED) {
      policy = defaults.getPermissionPolicy();
    }
    boolean enabled =
        config.hasEnabled() ? config.getEnabled() : !defaults.hasEnabled() || defaults.getEnabled();
    ObjectNode node = Shapes.object().put("enabled", enabled);
    node.putObject("permission_policy")
        .put(
            "type",
            policy == PermissionPolicy.PERMISSION_POLICY_ALWAYS_ASK
                ? "always_ask"
                : "always_allow");
    return node;
  }

  // --- requests
  // -----------------------------------------------------------------------------------

  /** The model of a request: {@code "claude-…"} or {@code {"id":"claude-…", …}}. */
  static Optional<String> model(JsonNode body) {
    if (!Fields.has(body, "model")) {
      return Optional.empty();
    }
    JsonNode model = body.get("model");
    if (model.isTextual()) {
      return Optional.of(model.asText());
    }
    if (model.isObject()) {
      return Optional.of(Fields.string(model, "id", "model.id"));
    }
    throw new InvalidArgumentException("model", "must be a model id or an object with its id");
  }

  /** Fails on what corral's agents do not have. */
  static void refuseUnsupported(JsonNode body) {
    Fields.unsupported(body, "skills", "skills", "corral agents have no skills");
    Fields.unsupported(body, "multiagent", "multiagent", "corral agents are not multi-agent");
    Fields.optionalObject(body, "execution_identity", "execution_identity")
        .filter(identity -> !identity.isEmpty())
        .ifPresent(
            identity -> {
              if (!"service_account".equals(identity.path("type").asText())) {
                throw new InvalidArgumentException(
                    "execution_identity.type",
                    "corral's server makes an agent's calls as itself: only service_account is"
                        + " supported");
              }
            });
  }

  static List<Tool> tools(JsonNode body) {
    List<ObjectNode> tools = Fields.objects(body, "tools", "tools");
    List<Tool> parsed = new ArrayList<>();
    for (int i = 0; i < tools.size(); i++) {
      parsed.add(tool(tools.get(i), "tools[" + i + "]"));
    }
    return parsed;
  }

  private static Tool tool(ObjectNode tool, String at) {
    String type = Fields.type(tool, at, TOOL_TYPES);
    switch (type) {
      case "custom" -> {
        Optional<ObjectNode> schema =
            Fields.optionalObject(tool, "input_schema", at + ".input_schema");
        return Tool.newBuilder()
            .setCustom(
                CustomTool.newBuilder()
                    .setName(Fields.string(tool, "name", at + ".name"))
                    .setDescription(
                        Fields.optionalString(tool, "description", at + ".description").orElse(""))
                    .setInputSchemaJson(
                        schema.map(JsonNode::toString).orElse("{\"type\":\"object\"}")))
            .build();
      }
      case "mcp_toolset" -> {
        McpToolset.Builder toolset =
            McpToolset.newBuilder()
                .setMcpServerName(Fields.string(tool, "mcp_server_name", at + ".mcp_server_name"));
        Fields.optionalObject(tool, "default_config", at + ".default_config")
            .ifPresent(
                config -> toolset.setDefaultConfig(config(config, "", at + ".default_config")));
        List<ObjectNode> configs = Fields.objects(tool, "configs", at + ".configs");
        for (int i = 0; i < configs.size(); i++) {
          String path = at + ".configs[" + i + "]";
          toolset.addConfigs(
              config(configs.get(i), Fields.string(configs.get(i), "name", path + ".name"), path));
        }
        return Tool.newBuilder().setMcpToolset(toolset).build();
      }
      default -> {
        AgentToolset.Builder toolset = AgentToolset.newBuilder();
        Fields.optionalObject(tool, "default_config", at + ".default_config")
            .ifPresent(
                config -> toolset.setDefaultConfig(config(config, "", at + ".default_config")));
        List<ObjectNode> configs = Fields.objects(tool, "configs", at + ".configs");
        for (int i = 0; i < configs.size(); i++) {
          String path = at + ".configs[" + i + "]";
          ObjectNode config = configs.get(i);
          String name =
              Fields.optionalString(config, "name", path + ".name")
                  .or(() -> Fields.optionalString(config, "type", path + ".type"))
                  .orElseThrow(() -> new InvalidArgumentException(path + ".name", "is required"));
          if (WEB_TOOLS.contains(name)) {
            // corral has no web tools: turning one off (as SDK clients do) leaves nothing to keep
            if (!Fields.optionalBoolean(config, "enabled", path + ".enabled").orElse(true)
                && config.properties().stream()
                    .allMatch(
                        field -> Set.of("type", "name", "enabled").contains(field.getKey()))) {
              continue;
            }
            throw new InvalidArgumentException(
                path,
                "configures "
                    + name
                    + ", which corral does not have (no web_search or web_fetch); only"
                    + " {\"name\": \""
                    + name
                    + "\", \"enabled\": false} is taken");
          }
          toolset.addConfigs(config(config, name, path));
        }
        return Tool.newBuilder().setToolset(toolset).build();
      }
    }
  }

  /** The API's web tools, members of its toolset that corral does not have. */
  private static final Set<String> WEB_TOOLS = Set.of("web_search", "web_fetch");

  private static ToolConfig config(ObjectNode config, String name, String at) {
    ToolConfig.Builder builder = ToolConfig.newBuilder().setName(name);
    Fields.optionalBoolean(config, "enabled", at + ".enabled").ifPresent(builder::setEnabled);
    Fields.optionalObject(config, "permission_policy", at + ".permission_policy")
        .ifPresent(
            policy -> {
              String type =
                  Fields.type(
                      policy, at + ".permission_policy", Set.of("always_allow", "always_ask"));
              builder.setPermissionPolicy(
                  type.equals("always_ask")
                      ? PermissionPolicy.PERMISSION_POLICY_ALWAYS_ASK
                      : PermissionPolicy.PERMISSION_POLICY_ALWAYS_ALLOW);
            });
    return builder.build();
  }

  static List<McpServer> mcpServers(JsonNode body) {
    List<ObjectNode> servers = Fields.objects(body, "mcp_servers", "mcp_servers");
    List<McpServer> parsed = new ArrayList<>();
    for (int i = 0; i < servers.size(); i++) {
      String at = "mcp_servers[" + i + "]";
      ObjectNode server = servers.get(i);
      Fields.type(server, at, Set.of("url"));
      parsed.add(
          McpServer.newBuilder()
              .setName(Fields.string(server, "name", at + ".name"))
              .setUrl(Fields.string(server, "url", at + ".url"))
              .setCredentialId(
                  Fields.optionalString(server, "credential_id", at + ".credential_id").orElse(""))
              .build());
    }
    return parsed;
  }

  /** An agent from a create request. */
  static Agent definition(JsonNode body) {
    refuseUnsupported(body);
    return Agent.newBuilder()
        .setName(Fields.string(body, "name", "name"))
        .setDescription(Fields.optionalString(body, "description", "description").orElse(""))
        .setModel(
            model(body).orElseThrow(() -> new InvalidArgumentException("model", "is required")))
        .setSystem(Fields.optionalString(body, "system", "system").orElse(""))
        .addAllTools(tools(body))
        .addAllMcpServers(mcpServers(body))
        .putAllMetadata(
            Fields.metadata(body, "metadata", "metadata")
                .map(AgentShapes::withoutNulls)
                .orElse(java.util.Map.of()))
        .build();
  }

  static java.util.Map<String, String> withoutNulls(java.util.Map<String, String> entries) {
    java.util.Map<String, String> kept = new java.util.LinkedHashMap<>();
    entries.forEach(
        (key, value) -> {
          if (value != null) {
            kept.put(key, value);
          }
        });
    return kept;
  }

  /** {@code current} with a metadata patch applied: a null value deletes its key. */
  static java.util.Map<String, String> patched(
      java.util.Map<String, String> current, java.util.Map<String, String> patch) {
    java.util.Map<String, String> merged = new java.util.LinkedHashMap<>(current);
    patch.forEach(
        (key, value) -> {
          if (value == null) {
            merged.remove(key);
          } else {
            merged.put(key, value);
          }
        });
    return merged;
  }
}
