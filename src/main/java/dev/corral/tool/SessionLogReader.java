package dev.corral.tool;

import dev.corral.proto.v1.ContentBlock;
import dev.corral.proto.v1.Event;
import dev.corral.session.EventLog;
import dev.corral.session.EventPage;
import dev.corral.session.EventSlice;
import dev.corral.session.EventType;
import io.smallrye.mutiny.Uni;
import jakarta.enterprise.context.ApplicationScoped;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;

/**
 * The {@code session_log} tool: the model reads positional slices of its own session's log, which
 * stays whole when older turns were compacted out of its context. Each event is one entry: its seq,
 * type and text (texts cut at {@value #MAX_EVENT_CHARS} characters), so that the model can reread
 * what happened before an action or rewind a few events.
 */
@ApplicationScoped
public class SessionLogReader {

  static final int MAX_EVENT_CHARS = 2_000;

  private final EventLog log;

  SessionLogReader(EventLog log) {
    this.log = log;
  }

  Uni<ToolOutcome> read(String sessionId, ToolInput.SessionLog input) {
    Set<String> types = new LinkedHashSet<>();
    for (String type : input.types()) {
      if (EventType.fromWireName(type).isEmpty()) {
        return Uni.createFrom()
            .item(
                ToolOutcome.error(
                    "Invalid input: input.types: '"
                        + type
                        + "' is not an event type (for example user.message, agent.message,"
                        + " agent.tool_use, agent.tool_result)"));
      }
      types.add(type);
    }
    EventSlice slice =
        new EventSlice(
            sessionId,
            input.last()
                ? EventSlice.Position.TAIL
                : input.beforeSeq() > 0 ? EventSlice.Position.BEFORE : EventSlice.Position.AFTER,
            input.beforeSeq() > 0 ? input.beforeSeq() : input.afterSeq(),
            input.limit(),
            types);
    return log.read(slice).map(page -> ToolOutcome.ok(render(page, slice)));
  }

  private static String render(EventPage page, EventSlice slice) {
    if (page.events().isEmpty()) {
      return "(no such events; the log's last seq is " + page.lastSeq() + ")";
    }
    StringBuilder out = new StringBuilder();
    for (Event event : page.events()) {
      out.append('#').append(event.getSeq()).append(' ').append(event.getType());
      String text = textOf(event);
      if (!text.isEmpty()) {
        if (text.length() > MAX_EVENT_CHARS) {
          text =
              dev.corral.common.Json.cut(text, MAX_EVENT_CHARS)
                  + " […"
                  + (text.length() - MAX_EVENT_CHARS)
                  + " more characters]";
        }
        out.append(": ").append(text);
      }
      out.append('\n');
    }
    if (page.hasMore()) {
      long edge =
          slice.position() == EventSlice.Position.AFTER
              ? page.events().get(page.events().size() - 1).getSeq()
              : page.events().get(0).getSeq();
      out.append(
          slice.position() == EventSlice.Position.AFTER
              ? "(more after: after_seq " + edge + ")"
              : "(more before: before_seq " + edge + ")");
    }
    out.append("(the log's last seq is ").append(page.lastSeq()).append(')');
    return out.toString();
  }

  private static String textOf(Event event) {
    return switch (event.getPayloadCase()) {
      case USER_MESSAGE -> texts(event.getUserMessage().getContentList());
      case AGENT_MESSAGE -> texts(event.getAgentMessage().getContentList());
      case AGENT_THINKING -> event.getAgentThinking().getThinking();
      case AGENT_TOOL_USE ->
          event.getAgentToolUse().getName() + " " + event.getAgentToolUse().getInputJson();
      case AGENT_CUSTOM_TOOL_USE ->
          event.getAgentCustomToolUse().getName()
              + " "
              + event.getAgentCustomToolUse().getInputJson();
      case AGENT_TOOL_RESULT ->
          (event.getAgentToolResult().getIsError() ? "(error) " : "")
              + texts(event.getAgentToolResult().getContentList());
      case USER_CUSTOM_TOOL_RESULT ->
          (event.getUserCustomToolResult().getIsError() ? "(error) " : "")
              + texts(event.getUserCustomToolResult().getContentList());
      case AGENT_CONTEXT_COMPACTED ->
          "seq "
              + event.getAgentContextCompacted().getFromSeq()
              + ".."
              + event.getAgentContextCompacted().getUpToSeq()
              + " summarised";
      case SESSION_ERROR -> event.getSessionError().getMessage();
      case SESSION_STATUS_IDLE ->
          event.getSessionStatusIdle().getStopReason().getType().name().toLowerCase();
      default -> "";
    };
  }

  private static String texts(List<ContentBlock> blocks) {
    StringBuilder text = new StringBuilder();
    for (ContentBlock block : blocks) {
      if (text.length() > 0) {
        text.append(' ');
      }
      text.append(block.hasImage() ? "[image]" : block.getText().getText());
    }
    return text.toString();
  }
}
