package dev.corral.session;

import dev.corral.proto.v1.Event;
import dev.corral.proto.v1.ModelUsage;
import java.util.List;

/**
 * What appending some events does to the session row, applied in the same statement as the append
 * so that the queryable session is never behind its log.
 *
 * @param status the new status column value, or null to keep it
 * @param stopReason the new stop reason (protobuf bytes) when the status changes; null clears it
 * @param workPending the new work-pending flag, or null to keep it
 * @param releaseLease the harness is done (idle or terminated): its lease ends with this append, so
 *     that the next user event can wake a new harness at once
 */
record SessionEffects(
    String status, byte[] stopReason, Boolean workPending, ModelUsage usage, boolean releaseLease) {

  static SessionEffects of(List<NewEvent> events) {
    String status = null;
    byte[] stopReason = null;
    Boolean workPending = null;
    ModelUsage.Builder usage = ModelUsage.newBuilder();
    for (NewEvent event : events) {
      Event payload = event.payload();
      switch (event.type()) {
        case USER_MESSAGE, USER_CUSTOM_TOOL_RESULT, USER_TOOL_CONFIRMATION, USER_INTERRUPT ->
            workPending = true;
        case SESSION_STATUS_RUNNING -> {
          status = "running";
          stopReason = null;
        }
        case SESSION_STATUS_IDLE -> {
          status = "idle";
          stopReason = payload.getSessionStatusIdle().getStopReason().toByteArray();
          workPending = false;
        }
        case SESSION_STATUS_RESCHEDULED -> {
          status = "rescheduling";
          stopReason = null;
        }
        case SESSION_STATUS_TERMINATED -> {
          status = "terminated";
          stopReason = null;
          workPending = false;
        }
        case SPAN_MODEL_REQUEST_END -> add(usage, payload.getSpanModelRequestEnd().getModelUsage());
        default -> {}
      }
    }
    boolean releaseLease = "idle".equals(status) || "terminated".equals(status);
    return new SessionEffects(status, stopReason, workPending, usage.build(), releaseLease);
  }

  private static void add(ModelUsage.Builder total, ModelUsage more) {
    total
        .setInputTokens(total.getInputTokens() + more.getInputTokens())
        .setOutputTokens(total.getOutputTokens() + more.getOutputTokens())
        .setCacheCreationInputTokens(
            total.getCacheCreationInputTokens() + more.getCacheCreationInputTokens())
        .setCacheReadInputTokens(total.getCacheReadInputTokens() + more.getCacheReadInputTokens());
  }
}
