package dev.corral.tool;

import dev.corral.proto.v1.Event;
import java.util.List;

/**
 * The tools of an agent's MCP servers a session's model may call this turn, besides its built-in
 * and custom tools, and the events that say which servers could not list theirs.
 */
public record OfferedTools(List<Tool> tools, List<Event> notices) {

  public static final OfferedTools NONE = new OfferedTools(List.of(), List.of());

  public OfferedTools {
    tools = List.copyOf(tools);
    notices = List.copyOf(notices);
  }

  /**
   * One MCP tool.
   *
   * @param server the agent's name for its MCP server
   * @param name the tool's name on the server
   * @param inputSchemaJson its JSON Schema
   * @param readOnly the server marked it read-only
   * @param inputAccepted its schema is one the model's API takes ({@link
   *     dev.corral.agent.SchemaShape#acceptsAsInput}), judged once, when it was listed
   */
  public record Tool(
      String server,
      String name,
      String description,
      String inputSchemaJson,
      boolean readOnly,
      boolean inputAccepted) {

    /** A tool whose schema is judged here. */
    public Tool(
        String server, String name, String description, String inputSchemaJson, boolean readOnly) {
      this(
          server,
          name,
          description,
          inputSchemaJson,
          readOnly,
          dev.corral.agent.SchemaShape.acceptsAsInput(inputSchemaJson));
    }
  }
}
