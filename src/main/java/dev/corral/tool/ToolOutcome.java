package dev.corral.tool;

/** What a tool call returned: text for the model, and whether it is an error. */
public record ToolOutcome(String output, boolean isError) {

  public static ToolOutcome ok(String output) {
    return new ToolOutcome(output, false);
  }

  public static ToolOutcome error(String output) {
    return new ToolOutcome(output, true);
  }
}
