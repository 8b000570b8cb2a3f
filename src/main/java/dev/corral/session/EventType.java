package dev.corral.session;

import dev.corral.proto.v1.Event;
import dev.corral.proto.v1.Event.PayloadCase;
import java.util.EnumMap;
import java.util.HashMap;
import java.util.Map;
import java.util.Optional;

/** Every event type, its wire name ({domain}.{action}) and who may emit it. */
public enum EventType {
  USER_MESSAGE("user.message", PayloadCase.USER_MESSAGE, Origin.CLIENT),
  USER_INTERRUPT("user.interrupt", PayloadCase.USER_INTERRUPT, Origin.CLIENT),
  USER_TOOL_CONFIRMATION(
      "user.tool_confirmation", PayloadCase.USER_TOOL_CONFIRMATION, Origin.CLIENT),
  USER_CUSTOM_TOOL_RESULT(
      "user.custom_tool_result", PayloadCase.USER_CUSTOM_TOOL_RESULT, Origin.CLIENT),

  AGENT_MESSAGE("agent.message", PayloadCase.AGENT_MESSAGE, Origin.HARNESS),
  AGENT_THINKING("agent.thinking", PayloadCase.AGENT_THINKING, Origin.HARNESS),
  AGENT_TOOL_USE("agent.tool_use", PayloadCase.AGENT_TOOL_USE, Origin.HARNESS),
  AGENT_TOOL_RESULT("agent.tool_result", PayloadCase.AGENT_TOOL_RESULT, Origin.HARNESS),
  AGENT_CUSTOM_TOOL_USE("agent.custom_tool_use", PayloadCase.AGENT_CUSTOM_TOOL_USE, Origin.HARNESS),
  AGENT_CONTEXT_COMPACTED(
      "agent.context_compacted", PayloadCase.AGENT_CONTEXT_COMPACTED, Origin.HARNESS),
  AGENT_MCP_TOOL_USE("agent.mcp_tool_use", PayloadCase.AGENT_MCP_TOOL_USE, Origin.HARNESS),
  AGENT_MCP_TOOL_RESULT("agent.mcp_tool_result", PayloadCase.AGENT_MCP_TOOL_RESULT, Origin.HARNESS),

  SESSION_STATUS_RUNNING(
      "session.status_running", PayloadCase.SESSION_STATUS_RUNNING, Origin.HARNESS),
  SESSION_STATUS_IDLE("session.status_idle", PayloadCase.SESSION_STATUS_IDLE, Origin.HARNESS),
  SESSION_STATUS_RESCHEDULED(
      "session.status_rescheduled", PayloadCase.SESSION_STATUS_RESCHEDULED, Origin.HARNESS),
  SESSION_STATUS_TERMINATED(
      "session.status_terminated", PayloadCase.SESSION_STATUS_TERMINATED, Origin.HARNESS),
  SESSION_ERROR("session.error", PayloadCase.SESSION_ERROR, Origin.HARNESS),

  SPAN_MODEL_REQUEST_START(
      "span.model_request_start", PayloadCase.SPAN_MODEL_REQUEST_START, Origin.HARNESS),
  SPAN_MODEL_REQUEST_END(
      "span.model_request_end", PayloadCase.SPAN_MODEL_REQUEST_END, Origin.HARNESS),

  SANDBOX_PROVISIONED("sandbox.provisioned", PayloadCase.SANDBOX_PROVISIONED, Origin.HARNESS),
  SANDBOX_LOST("sandbox.lost", PayloadCase.SANDBOX_LOST, Origin.HARNESS),
  SANDBOX_EGRESS_DENIED("sandbox.egress_denied", PayloadCase.SANDBOX_EGRESS_DENIED, Origin.HARNESS);

  /** Who may append an event of a type. */
  public enum Origin {
    /** Any client, without a lease. */
    CLIENT,
    /** Only the harness holding the session's lease, with its epoch. */
    HARNESS
  }

  private static final Map<String, EventType> BY_WIRE_NAME = new HashMap<>();
  private static final Map<PayloadCase, EventType> BY_PAYLOAD = new EnumMap<>(PayloadCase.class);

  static {
    for (EventType type : values()) {
      BY_WIRE_NAME.put(type.wireName, type);
      BY_PAYLOAD.put(type.payloadCase, type);
    }
  }

  private final String wireName;
  private final PayloadCase payloadCase;
  private final Origin origin;

  EventType(String wireName, PayloadCase payloadCase, Origin origin) {
    this.wireName = wireName;
    this.payloadCase = payloadCase;
    this.origin = origin;
  }

  public String wireName() {
    return wireName;
  }

  public Origin origin() {
    return origin;
  }

  /**
   * Appending this type to a session gives a harness work to do. An interrupt too: it jumps the
   * queue, so it does not wait for the next scan to find a session waiting on the client.
   */
  public boolean wakesHarness() {
    return this == USER_MESSAGE
        || this == USER_CUSTOM_TOOL_RESULT
        || this == USER_TOOL_CONFIRMATION
        || this == USER_INTERRUPT;
  }

  public static Optional<EventType> fromWireName(String wireName) {
    return Optional.ofNullable(BY_WIRE_NAME.get(wireName));
  }

  /** The type of the payload set in {@code event}, if any. */
  public static Optional<EventType> of(Event event) {
    return Optional.ofNullable(BY_PAYLOAD.get(event.getPayloadCase()));
  }

  /** A stop reason's name on the wire: {@code end_turn}, {@code requires_action}, ... */
  public static String stopReasonName(dev.corral.proto.v1.StopReasonType type) {
    return type.name().substring("STOP_REASON_TYPE_".length()).toLowerCase(java.util.Locale.ROOT);
  }
}
