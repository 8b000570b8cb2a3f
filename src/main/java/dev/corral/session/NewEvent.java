package dev.corral.session;

import dev.corral.common.IdKind;
import dev.corral.proto.v1.Event;

/**
 * An event about to be appended: only its payload is set; the log assigns seq and processed_at.
 *
 * @param id the event id; the harness may choose it in advance so that live deltas and the stored
 *     event share it
 * @param idempotencyKey null, or a key that makes a retried append return the original event
 * @param closesConfirmation a result of a call that asked for a confirmation and got none (an
 *     interrupt answered it): it takes the call's one confirmation too, so that a confirmation
 *     racing it is refused by the log rather than appended after the result
 */
public record NewEvent(
    String id, EventType type, Event payload, String idempotencyKey, boolean closesConfirmation) {

  public NewEvent {
    if (type == null || EventType.of(payload).orElse(null) != type) {
      throw new IllegalArgumentException("type " + type + " does not match the payload");
    }
  }

  public NewEvent(String id, EventType type, Event payload, String idempotencyKey) {
    this(id, type, payload, idempotencyKey, false);
  }

  /** This result, closing its call's confirmation too (see {@link #closesConfirmation}). */
  public NewEvent closingConfirmation() {
    if (resultFor() == null) {
      throw new IllegalArgumentException(type + " is no tool result");
    }
    return new NewEvent(id, type, payload, idempotencyKey, true);
  }

  /** An event with a fresh id and no idempotency key. */
  public static NewEvent of(Event payload) {
    return of(payload, null);
  }

  public static NewEvent of(Event payload, String idempotencyKey) {
    EventType type =
        EventType.of(payload)
            .orElseThrow(() -> new IllegalArgumentException("event has no payload"));
    return new NewEvent(IdKind.EVENT.next(), type, onlyPayload(payload), idempotencyKey);
  }

  /** The id of the tool call this event is the result of, or null. At most one per call. */
  String resultFor() {
    return switch (type) {
      case AGENT_TOOL_RESULT -> payload.getAgentToolResult().getToolUseId();
      case AGENT_MCP_TOOL_RESULT -> payload.getAgentMcpToolResult().getMcpToolUseId();
      case USER_CUSTOM_TOOL_RESULT -> payload.getUserCustomToolResult().getCustomToolUseId();
      default -> null;
    };
  }

  /**
   * The model's id of the tool call this event makes (toolu_…), or null. A session's calls each
   * have their own: every model request sends them all back, and the API refuses two alike.
   */
  String callId() {
    return switch (type) {
      case AGENT_TOOL_USE -> payload.getAgentToolUse().getCallId();
      case AGENT_CUSTOM_TOOL_USE -> payload.getAgentCustomToolUse().getCallId();
      case AGENT_MCP_TOOL_USE -> payload.getAgentMcpToolUse().getCallId();
      default -> null;
    };
  }

  /** The id of the tool call this event confirms or denies, or null. At most one per call. */
  String confirmationFor() {
    if (closesConfirmation) {
      return resultFor();
    }
    return type == EventType.USER_TOOL_CONFIRMATION
        ? payload.getUserToolConfirmation().getToolUseId()
        : null;
  }

  /** This event as appended by {@code emitter}. */
  public NewEvent emittedBy(dev.corral.proto.v1.EventEmitter emitter) {
    return new NewEvent(
        id,
        type,
        payload.toBuilder().setEmittedBy(emitter).build(),
        idempotencyKey,
        closesConfirmation);
  }

  /** The event without its envelope: what is stored in the body column. */
  static Event onlyPayload(Event event) {
    return event.toBuilder()
        .clearId()
        .clearSessionId()
        .clearSeq()
        .clearType()
        .clearProcessedAt()
        .build();
  }
}
