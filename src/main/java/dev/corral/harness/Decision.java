package dev.corral.harness;

import dev.corral.proto.v1.SessionStatus;
import dev.corral.proto.v1.StopReason;
import dev.corral.proto.v1.StopReasonType;
import java.util.List;
import java.util.Set;

/**
 * What to do next, as a pure function of the folded state and of what this run has in flight. No
 * I/O, no clock: the same inputs always give the same step, which is what the replay tests check.
 */
final class Decision {

  private Decision() {}

  /**
   * The next step.
   *
   * @param inherited ids of tool calls that had no result when this run started (a dead harness may
   *     have run them)
   * @param toolsInFlight ids of tool calls this run is running
   * @param modelInFlight this run has a model call going (or waiting to retry)
   * @param maxRetries retries of a failed model call before the turn is given up
   */
  static Step next(
      SessionState state,
      Set<String> inherited,
      Set<String> toolsInFlight,
      boolean modelInFlight,
      int maxRetries) {
    if (state.status() == SessionStatus.SESSION_STATUS_TERMINATED) {
      return new Step.Done(); // archived: what runs stops, nothing is answered or appended
    }
    List<ToolCallState> unanswered = state.unansweredCalls();
    boolean working =
        state.status() == SessionStatus.SESSION_STATUS_RUNNING
            || !unanswered.isEmpty()
            || state.openSpanId() != null
            || state.interruptCaughtWork();
    if (state.interruptPending() && working) {
      return new Step.Interrupt(unanswered, state.openSpanId());
    }
    if (state.openSpanId() != null && !modelInFlight) {
      return new Step.CloseOrphanSpan(state.openSpanId());
    }
    List<ToolCallState> unknown =
        unanswered.stream()
            .filter(
                call -> call.runnable() && inherited.contains(call.eventId()) && !readOnly(call))
            .toList();
    if (!unknown.isEmpty()) {
      return new Step.ResolveUnknown(unknown);
    }
    List<ToolCallState> denied = unanswered.stream().filter(ToolCallState::denied).toList();
    if (!denied.isEmpty()) {
      return new Step.ApplyDenials(denied);
    }
    List<ToolCallState> runnable =
        unanswered.stream()
            .filter(ToolCallState::runnable)
            .filter(call -> !toolsInFlight.contains(call.eventId()))
            .toList();
    if (!runnable.isEmpty()) {
      return new Step.RunTools(runnable);
    }
    if (!toolsInFlight.isEmpty() || modelInFlight) {
      return new Step.Wait();
    }
    List<String> waiting =
        unanswered.stream()
            .filter(ToolCallState::waitingForClient)
            .map(ToolCallState::eventId)
            .toList();
    if (!waiting.isEmpty()) {
      StopReason requiresAction =
          StopReason.newBuilder()
              .setType(StopReasonType.STOP_REASON_TYPE_REQUIRES_ACTION)
              .addAllEventIds(waiting)
              .build();
      return alreadyIdle(state, requiresAction) ? new Step.Done() : new Step.Idle(requiresAction);
    }
    if (state.hasUnansweredInput()) {
      if (state.budgetReached()) {
        // input came after any earlier idle (that one answered all before it): say it again
        return new Step.Idle(stopReason(StopReasonType.STOP_REASON_TYPE_BUDGET_REACHED));
      }
      if (state.failuresSinceInput() > maxRetries) {
        return new Step.Idle(stopReason(StopReasonType.STOP_REASON_TYPE_RETRIES_EXHAUSTED));
      }
      return new Step.CallModel(state.failuresSinceInput() + 1);
    }
    if (state.status() == SessionStatus.SESSION_STATUS_RUNNING) {
      return new Step.Idle(
          stopReason(
              state.replyRefused()
                  ? StopReasonType.STOP_REASON_TYPE_REFUSAL
                  : StopReasonType.STOP_REASON_TYPE_END_TURN));
    }
    return new Step.Done();
  }

  private static boolean readOnly(ToolCallState call) {
    return call.readOnly();
  }

  private static boolean alreadyIdle(SessionState state, StopReason reason) {
    return state.status() == SessionStatus.SESSION_STATUS_IDLE
        && state.lastStopReason().equals(reason);
  }

  static StopReason stopReason(StopReasonType type) {
    return StopReason.newBuilder().setType(type).build();
  }
}
