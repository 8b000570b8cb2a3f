package dev.corral.agent;

import com.fasterxml.jackson.databind.JsonNode;
import dev.corral.common.HttpUrls;
import dev.corral.common.IdKind;
import dev.corral.common.InputRules;
import dev.corral.common.InvalidArgumentException;
import dev.corral.common.Json;
import dev.corral.proto.v1.Agent;
import dev.corral.proto.v1.AgentToolset;
import dev.corral.proto.v1.CustomTool;
import dev.corral.proto.v1.McpServer;
import dev.corral.proto.v1.McpToolset;
import dev.corral.proto.v1.PermissionPolicy;
import dev.corral.proto.v1.Tool;
import dev.corral.proto.v1.ToolConfig;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.regex.Pattern;

/** What a valid agent definition looks like (limits follow Claude Managed Agents). */
public final class AgentRules {

  public static final int MAX_NAME = 256;
  public static final int MAX_DESCRIPTION = 2048;
  public static final int MAX_MODEL = 256;
  public static final int MAX_SYSTEM = 100_000;
  public static final int MAX_TOOLS = 128;
  public static final int MAX_TOOL_DESCRIPTION = 10_000;

  /** The built-in tools an agent toolset can configure. */
  public static final List<String> BUILT_IN_TOOLS =
      List.of("bash", "read", "write", "edit", "glob", "grep");

  /**
   * The names the built-in toolset offers the model: the tools it can configure, and {@code
   * session_log}. A custom tool may not take one (the Messages API refuses two tools of one name).
   */
  public static final List<String> TOOLSET_NAMES =
      List.of("bash", "read", "write", "edit", "glob", "grep", "session_log");

  /** Names of built-in and custom tools, as the model's API takes them. */
  public static final Pattern CUSTOM_TOOL_NAME = Pattern.compile("[A-Za-z0-9_-]{1,128}");

  private static final Pattern MODEL = Pattern.compile("[A-Za-z0-9._:/@-]+");

  private AgentRules() {}

  /** Checks the definition fields of {@code agent}; field names are those of the create request. */
  static Agent check(Agent agent) {
    name(agent.getName());
    description(agent.getDescription());
    model(agent.getModel());
    system(agent.getSystem());
    tools(agent.getToolsList());
    mcpServers(agent);
    InputRules.metadata("metadata", agent.getMetadataMap());
    if (agent.getSerializedSize() > MAX_AGENT_BYTES) {
      // every model request of its sessions carries it, and every session keeps a copy: past
      // this it fits no model's window anyway
      throw new InvalidArgumentException(
          agent.getToolsList().stream().mapToInt(Tool::getSerializedSize).sum()
                  > agent.getSystem().length()
              ? "tools"
              : "system",
          "makes the agent "
              + agent.getSerializedSize()
              + " bytes with everything else it holds; an agent is at most "
              + MAX_AGENT_BYTES
              + " bytes");
    }
    return agent;
  }

  /** The most bytes an agent's definition may take in all. */
  public static final int MAX_AGENT_BYTES = 1 << 20;

  /** MCP servers an agent may declare. */
  public static final int MAX_MCP_SERVERS = 20;

  static void name(String name) {
    InputRules.name("name", name, 1, MAX_NAME);
  }

  static void description(String description) {
    InputRules.length("description", description, 0, MAX_DESCRIPTION);
  }

  static void model(String model) {
    InputRules.length("model", model, 1, MAX_MODEL);
    if (!MODEL.matcher(model).matches()) {
      throw new InvalidArgumentException("model", "must be a model id such as claude-sonnet-4-5");
    }
  }

  static void system(String system) {
    InputRules.length("system", system, 0, MAX_SYSTEM);
    if (!system.isEmpty() && InputRules.blank(system)) {
      // the Messages API refuses a blank system block: every turn of the agent would fail
      throw new InvalidArgumentException("system", "must not be only whitespace (or be empty)");
    }
  }

  /** The longest name of an MCP server, as the Managed Agents API takes it. */
  public static final int MAX_MCP_SERVER_NAME = 255;

  /** Names of MCP tools, as the MCP specification has them. */
  public static final Pattern MCP_TOOL_NAME = Pattern.compile("[A-Za-z0-9_.-]{1,128}");

  /** The prefix of the names under which MCP tools are offered to the model. */
  public static final String MCP_PREFIX = "mcp__";

  /** The names the Messages API takes for a tool. */
  public static final Pattern MCP_MODEL_NAME = Pattern.compile("[A-Za-z0-9_-]{1,64}");

  /**
   * Server names that reach the model as they are: without "__", so that {@code
   * mcp__<server>__<tool>} says where the server's name ends.
   */
  private static final Pattern PLAIN_MCP_SERVER_NAME =
      Pattern.compile("(?!.*__)[A-Za-z0-9_-]{1,32}");

  private static final Pattern NOT_IN_MODEL_NAMES = Pattern.compile("[^A-Za-z0-9_-]+");

  /** The hexadecimal digits of the hash that tells two cut names apart. */
  private static final int NAME_HASH_DIGITS = 12;

  /**
   * The name the model knows {@code server}'s {@code tool} by, always one the Messages API takes:
   * {@code mcp__<server>__<tool>} when that is one, else its characters outside [A-Za-z0-9_-] made
   * "-", cut to fit, and a hash of the server's and the tool's names (a server named "docs search",
   * a tool named "files.read", or a long name).
   */
  public static String mcpModelName(String server, String tool) {
    String plain = MCP_PREFIX + server + "__" + tool;
    if (PLAIN_MCP_SERVER_NAME.matcher(server).matches()
        && MCP_MODEL_NAME.matcher(plain).matches()) {
      return plain;
    }
    byte[] digest;
    try {
      digest =
          java.security.MessageDigest.getInstance("SHA-256")
              .digest((server + '\0' + tool).getBytes(java.nio.charset.StandardCharsets.UTF_8));
    } catch (java.security.NoSuchAlgorithmException impossible) {
      throw new IllegalStateException("every JVM has SHA-256", impossible);
    }
    String hash = java.util.HexFormat.of().formatHex(digest, 0, NAME_HASH_DIGITS / 2);
    String legible = NOT_IN_MODEL_NAMES.matcher(plain).replaceAll("-");
    int room = 64 - 1 - NAME_HASH_DIGITS;
    return legible.substring(0, Math.min(room, legible.length())) + "_" + hash;
  }

  /** Checks the name of an MCP server: 1 to 255 characters, none of them a control character. */
  public static String mcpServerName(String field, String name) {
    return InputRules.name(field, name, 1, MAX_MCP_SERVER_NAME);
  }

  /**
   * Checks a list of MCP servers on its own (their number, names, URLs and credential ids).
   *
   * @return the servers' names
   */
  static Set<String> mcpServerList(List<McpServer> servers) {
    if (servers.size() > MAX_MCP_SERVERS) {
      throw new InvalidArgumentException(
          "mcp_servers", "has " + servers.size() + " servers; the limit is " + MAX_MCP_SERVERS);
    }
    Set<String> names = new HashSet<>();
    for (int i = 0; i < servers.size(); i++) {
      String field = "mcp_servers[" + i + "]";
      McpServer server = servers.get(i);
      mcpServerName(field + ".name", server.getName());
      if (!names.add(server.getName())) {
        throw new InvalidArgumentException(field + ".name", "names a server a second time");
      }
      HttpUrls.normalized(field + ".url", server.getUrl());
      if (!server.getCredentialId().isEmpty()) {
        IdKind.CREDENTIAL.require(field + ".credential_id", server.getCredentialId());
      }
    }
    return names;
  }

  private static void mcpServers(Agent agent) {
    List<McpServer> servers = agent.getMcpServersList();
    Set<String> names = mcpServerList(servers);
    Set<String> enabled = new HashSet<>();
    List<Tool> tools = agent.getToolsList();
    for (int i = 0; i < tools.size(); i++) {
      if (tools.get(i).hasMcpToolset()) {
        String field = "tools[" + i + "].mcp_toolset";
        McpToolset toolset = tools.get(i).getMcpToolset();
        if (!names.contains(toolset.getMcpServerName())) {
          throw new InvalidArgumentException(
              field + ".mcp_server_name", "names no server of mcp_servers");
        }
        if (!enabled.add(toolset.getMcpServerName())) {
          throw new InvalidArgumentException(
              field + ".mcp_server_name", "has a toolset already; a server has at most one");
        }
        mcpToolset(field, toolset);
      }
    }
    for (int i = 0; i < servers.size(); i++) {
      if (!enabled.contains(servers.get(i).getName())) {
        throw new InvalidArgumentException(
            "mcp_servers[" + i + "]", "is used by no mcp_toolset of tools; add one or remove it");
      }
    }
  }

  /** The longest input_schema_json of a custom tool (as MCP tools' schemas). */
  static final int MAX_SCHEMA_CHARS = 64 * 1024;

  /** Tools one MCP toolset may configure one by one. */
  static final int MAX_TOOL_CONFIGS = 128;

  private static void mcpToolset(String field, McpToolset toolset) {
    if (toolset.getConfigsCount() > MAX_TOOL_CONFIGS) {
      throw new InvalidArgumentException(
          field + ".configs", "configures more than " + MAX_TOOL_CONFIGS + " tools");
    }
    if (!toolset.getDefaultConfig().getName().isEmpty()) {
      throw new InvalidArgumentException(field + ".default_config.name", "must be empty");
    }
    policy(field + ".default_config.permission_policy", toolset.getDefaultConfig());
    Set<String> configured = new HashSet<>();
    for (int i = 0; i < toolset.getConfigsCount(); i++) {
      ToolConfig config = toolset.getConfigs(i);
      String at = field + ".configs[" + i + "]";
      if (!MCP_TOOL_NAME.matcher(config.getName()).matches()) {
        throw new InvalidArgumentException(
            at + ".name", "must be 1 to 128 characters of [A-Za-z0-9_.-]");
      }
      if (!configured.add(config.getName())) {
        throw new InvalidArgumentException(
            at + ".name", "configures " + config.getName() + " a second time");
      }
      policy(at + ".permission_policy", config);
    }
  }

  private static void tools(List<Tool> tools) {
    if (tools.size() > MAX_TOOLS) {
      throw new InvalidArgumentException(
          "tools", "has " + tools.size() + " entries; the limit is " + MAX_TOOLS);
    }
    Set<String> names = new HashSet<>();
    boolean toolset = false;
    for (int i = 0; i < tools.size(); i++) {
      String field = "tools[" + i + "]";
      Tool tool = tools.get(i);
      switch (tool.getToolCase()) {
        case TOOLSET -> {
          if (toolset) {
            throw new InvalidArgumentException(
                field, "is a second toolset; an agent has at most one");
          }
          toolset = true;
          toolset(field + ".toolset", tool.getToolset());
          names.addAll(BUILT_IN_TOOLS);
        }
        case CUSTOM -> custom(field + ".custom", tool.getCustom(), names);
        case MCP_TOOLSET -> {} // checked with the agent's MCP servers
        default ->
            throw new InvalidArgumentException(field, "has none of toolset, custom, mcp_toolset");
      }
    }
    for (int i = 0; i < tools.size(); i++) {
      if (tools.get(i).hasCustom()
          && toolset
          && TOOLSET_NAMES.contains(tools.get(i).getCustom().getName())) {
        throw new InvalidArgumentException(
            "tools[" + i + "].custom.name", "clashes with the built-in tool of the same name");
      }
    }
  }

  private static void toolset(String field, AgentToolset toolset) {
    if (!toolset.getDefaultConfig().getName().isEmpty()) {
      throw new InvalidArgumentException(field + ".default_config.name", "must be empty");
    }
    policy(field + ".default_config.permission_policy", toolset.getDefaultConfig());
    Set<String> configured = new HashSet<>();
    for (int i = 0; i < toolset.getConfigsCount(); i++) {
      ToolConfig config = toolset.getConfigs(i);
      String at = field + ".configs[" + i + "]";
      if (!BUILT_IN_TOOLS.contains(config.getName())) {
        throw new InvalidArgumentException(
            at + ".name", "must be one of " + String.join(", ", BUILT_IN_TOOLS));
      }
      if (!configured.add(config.getName())) {
        throw new InvalidArgumentException(
            at + ".name", "configures " + config.getName() + " a second time");
      }
      policy(at + ".permission_policy", config);
    }
  }

  private static void policy(String field, ToolConfig config) {
    if (config.getPermissionPolicy() == PermissionPolicy.UNRECOGNIZED) {
      throw new InvalidArgumentException(field, "is not a known policy");
    }
  }

  private static void custom(String field, CustomTool tool, Set<String> names) {
    if (!CUSTOM_TOOL_NAME.matcher(tool.getName()).matches()) {
      throw new InvalidArgumentException(
          field + ".name", "must be 1 to 128 characters of [A-Za-z0-9_-]");
    }
    if (!names.add(tool.getName())) {
      throw new InvalidArgumentException(field + ".name", "is used by another tool of this agent");
    }
    if (tool.getName().startsWith(MCP_PREFIX)) {
      throw new InvalidArgumentException(
          field + ".name", "must not start with " + MCP_PREFIX + ", which names MCP tools");
    }
    InputRules.length(field + ".description", tool.getDescription(), 0, MAX_TOOL_DESCRIPTION);
    if (tool.getInputSchemaJson().length() > MAX_SCHEMA_CHARS) {
      // every request of every session of the agent carries it
      throw new InvalidArgumentException(
          field + ".input_schema_json", "is longer than " + MAX_SCHEMA_CHARS + " characters");
    }
    var schema = Json.requireObject(field + ".input_schema_json", tool.getInputSchemaJson());
    if (!"object".equals(schema.path("type").asText())) {
      throw new InvalidArgumentException(
          field + ".input_schema_json", "must be a JSON Schema with \"type\": \"object\"");
    }
    if (schema.has("properties") && !schema.get("properties").isObject()) {
      throw new InvalidArgumentException(
          field + ".input_schema_json", "has \"properties\" that is not an object");
    }
    JsonNode required = schema.path("required");
    if (!required.isMissingNode()
        && (!required.isArray()
            || java.util.stream.StreamSupport.stream(required.spliterator(), false)
                .anyMatch(name -> !name.isTextual()))) {
      throw new InvalidArgumentException(
          field + ".input_schema_json", "has \"required\" that is not an array of names");
    }
    String problem = SchemaShape.inputProblem(schema);
    if (problem != null) {
      // the Messages API refuses the whole request for it, on every turn of every session
      throw new InvalidArgumentException(
          field + ".input_schema_json",
          "is not an input schema the Messages API takes: " + problem);
    }
  }
}
