package dev.corral.harness;

import dev.corral.proto.v1.StopReason;
import java.util.List;

/** What the harness does next; the output of {@link Decision#next}. */
sealed interface Step {

  /** Stop what runs, give every open call a result, close the open model call, idle. */
  record Interrupt(List<ToolCallState> unanswered, String openSpanId) implements Step {}

  /** A model call a dead harness started and never finished: record that it ended. */
  record CloseOrphanSpan(String spanId) implements Step {}

  /**
   * Calls a dead harness may have started: their outcome is unknown, so they get an error result
   * instead of running again.
   */
  record ResolveUnknown(List<ToolCallState> calls) implements Step {}

  /** Calls the user denied: their result is the denial. */
  record ApplyDenials(List<ToolCallState> calls) implements Step {}

  /** Run these built-in calls (in parallel). */
  record RunTools(List<ToolCallState> calls) implements Step {}

  /** Call the model; {@code attempt} is 1 for a first try, more for retries. */
  record CallModel(int attempt) implements Step {}

  /** Go idle, for {@code reason}. */
  record Idle(StopReason reason) implements Step {}

  /** Something is in flight; nothing to start now. */
  record Wait() implements Step {}

  /** Nothing to do and nothing in flight: release the lease and end the run. */
  record Done() implements Step {}
}
