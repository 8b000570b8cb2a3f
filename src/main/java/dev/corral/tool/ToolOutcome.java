package dev.corral.tool;

import dev.corral.proto.v1.Event;
import java.util.List;

/**
 * What a tool call returned: text for the model, whether it is an error, and events the harness
 * records with the result (a sandbox.lost the call ran into).
 */
public record ToolOutcome(String output, boolean isError, List<Event> notices) {

  public ToolOutcome {
    notices = List.copyOf(notices);
  }

  public static ToolOutcome ok(String output) {
    return new ToolOutcome(output, false, List.of());
  }

  public static ToolOutcome error(String output) {
    return new ToolOutcome(output, true, List.of());
  }

  public ToolOutcome withNoticesAfter(List<Event> more) {
    List<Event> all = new java.util.ArrayList<>(notices);
    all.addAll(more);
    return new ToolOutcome(output, isError, all);
  }

  public ToolOutcome prefixed(String note) {
    return new ToolOutcome(note + "\n\n" + output, isError, notices);
  }
}
