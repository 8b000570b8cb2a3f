package dev.corral.rest;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.corral.common.InvalidArgumentException;
import dev.corral.proto.v1.Event;
import dev.corral.proto.v1.SessionServiceGrpc;
import dev.corral.session.EventPage;
import dev.corral.session.EventSlice;
import dev.corral.session.Sessions;
import io.smallrye.mutiny.Uni;
import io.vertx.ext.web.Router;
import jakarta.enterprise.context.ApplicationScoped;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;

/**
 * A session's events: {@code GET …/events} (pages by seq, ascending or descending), {@code POST
 * …/events} (several events, appended together or not at all) and {@code GET …/events/stream}
 * (Server-Sent Events, see {@link EventStream}).
 */
@ApplicationScoped
class EventRoutes {

  /** Events a list page may hold (the API's session runners read history by the thousand). */
  static final int MAX_LIMIT = Sessions.MAX_EVENT_PAGE_SIZE;

  private final Sessions sessions;
  private final EventStream stream;

  EventRoutes(Sessions sessions, EventStream stream) {
    this.sessions = sessions;
    this.stream = stream;
  }

  void install(Router router) {
    router
        .get("/v1/sessions/:session_id/events")
        .handler(RestCall.json(SessionServiceGrpc.getGetEventsMethod(), this::list));
    router
        .post("/v1/sessions/:session_id/events")
        .handler(RestCall.json(SessionServiceGrpc.getEmitEventMethod(), this::send));
    router
        .get("/v1/sessions/:session_id/events/stream")
        .handler(
            context -> {
              RestCall call;
              try {
                call = RestCall.authorized(context, SessionServiceGrpc.getStreamEventsMethod());
              } catch (RuntimeException refused) {
                RestErrors.answer(context, refused);
                return;
              }
              stream.serve(call);
            });
  }

  /** A page of the log: {@code page} is {@code a<seq>} (after it) or {@code d<seq>} (before it). */
  private Uni<ObjectNode> list(RestCall call) {
    call.refuseFilters("created_at");
    String order = call.query("order") == null ? "asc" : call.query("order");
    if (!order.equals("asc") && !order.equals("desc")) {
      throw new InvalidArgumentException("order", "must be asc or desc");
    }
    boolean descending = order.equals("desc");
    String page = call.page();
    long seq = 0;
    if (!page.isEmpty()) {
      if (!page.matches("[ad][0-9]{1,18}")
          || (page.charAt(0) == 'd') != descending
          || page.matches("d0+")) {
        throw new InvalidArgumentException(
            "page", "is not a cursor of this list (a next_page of the same order)");
      }
      seq = Long.parseLong(page.substring(1));
    }
    EventSlice.Position position =
        !descending
            ? EventSlice.Position.AFTER
            : page.isEmpty() ? EventSlice.Position.TAIL : EventSlice.Position.BEFORE;
    List<String> asked = call.queryAll("types");
    List<String> types = new ArrayList<>();
    for (int i = 0; i < asked.size(); i++) {
      String type = asked.get(i);
      if (NEVER_APPENDED.contains(type)) {
        continue;
      }
      String stored =
          type.equals("agent.thread_context_compacted") ? "agent.context_compacted" : type;
      // named by its place among the types the client sent
      if (dev.corral.session.EventType.fromWireName(stored).isEmpty()) {
        throw new InvalidArgumentException(
            "types[" + i + "]", "'" + type + "' is not a known event type");
      }
      types.add(stored);
    }
    int limit = call.limit(MAX_LIMIT);
    if (!asked.isEmpty() && types.isEmpty()) {
      // only types of the API that no corral log holds: none matches (the session must exist)
      return sessions
          .get(call.tenant(), call.path("session_id"))
          .map(session -> page(new EventPage(List.of(), false, 0), descending));
    }
    return sessions
        .events(call.tenant(), call.path("session_id"), position, seq, limit, types)
        .map(events -> page(events, descending));
  }

  /**
   * Event types of the API that corral never appends (threads, outcomes, and the like): a filter
   * may name them, and finds none.
   */
  private static final Set<String> NEVER_APPENDED =
      Set.of(
          "agent.thread_message_received",
          "agent.thread_message_sent",
          "session.deleted",
          "session.thread_created",
          "session.thread_status_idle",
          "session.thread_status_rescheduled",
          "session.thread_status_running",
          "session.thread_status_terminated",
          "session.updated",
          "session.usage",
          "span.outcome_evaluation_start",
          "span.outcome_evaluation_ongoing",
          "span.outcome_evaluation_end",
          "system.message",
          "user.define_outcome",
          "user.tool_result",
          "workflow_run.created",
          "workflow_run.error",
          "workflow_run.phase_ended",
          "workflow_run.phase_started",
          "workflow_run.status_ended",
          "workflow_run.status_idle",
          "workflow_run.status_running");

  private static ObjectNode page(EventPage page, boolean descending) {
    List<Event> events = new ArrayList<>(page.events());
    if (descending) {
      java.util.Collections.reverse(events);
    }
    ObjectNode node = Shapes.object();
    ArrayNode data = node.putArray("data");
    events.forEach(event -> data.add(EventShapes.event(event)));
    if (page.hasMore() && !events.isEmpty()) {
      node.put("next_page", (descending ? "d" : "a") + events.get(events.size() - 1).getSeq());
    } else {
      node.putNull("next_page");
    }
    return node;
  }

  private static final java.util.regex.Pattern SENT_PAYLOAD =
      java.util.regex.Pattern.compile(
          "^(events\\[[0-9]+\\])\\.(user_message|user_interrupt|user_tool_confirmation"
              + "|user_custom_tool_result)(?=$|[.\\[])");

  /** {@code {"events":[…]}}: every event checked, then all appended in one append. */
  private Uni<ObjectNode> send(RestCall call) {
    ObjectNode body = call.body();
    List<ObjectNode> requested = Fields.objects(body, "events", "events");
    List<Event> events = new ArrayList<>();
    for (int i = 0; i < requested.size(); i++) {
      events.add(EventShapes.sent(requested.get(i), "events[" + i + "]"));
    }
    // the rules name an event's fields under its payload, as gRPC's Event has them
    return FieldNames.replacing(
            sessions.emitAll(
                call.tenant(),
                call.principal().emitter(),
                call.path("session_id"),
                "events",
                events),
            SENT_PAYLOAD,
            "$1")
        .map(
            appended -> {
              ObjectNode node = Shapes.object();
              ArrayNode data = node.putArray("data");
              appended.events().forEach(event -> data.add(EventShapes.event(event)));
              return node;
            });
  }
}
