package dev.corral.rest;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.corral.api.HttpAuthFilter;
import dev.corral.common.InvalidArgumentException;
import dev.corral.identity.Authenticator;
import dev.corral.proto.v1.Event;
import dev.corral.proto.v1.EventDelta;
import dev.corral.proto.v1.Session;
import dev.corral.proto.v1.SessionStatus;
import dev.corral.session.Sessions;
import dev.corral.session.Tailed;
import io.vertx.core.Context;
import io.vertx.core.Vertx;
import io.vertx.core.http.HttpServerResponse;
import io.vertx.ext.web.RoutingContext;
import jakarta.enterprise.context.ApplicationScoped;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.Flow;

/**
 * {@code GET /v1/sessions/{id}/events/stream}: the session's events as Server-Sent Events ({@code
 * event: <type>}, {@code id: <seq>}, {@code data: <event>}), read from the log like every corral
 * stream, one event at a time as the client takes them.
 *
 * <p>As in the API, a stream opened plainly carries what is appended after it opened. Beyond the
 * API, a client that sends {@code Last-Event-ID} (the {@code id} of the last event it got) or
 * {@code ?after_seq=} resumes right after it, with nothing lost or repeated. The headers go out at
 * once (a client may send after it opened the stream), a comment every 15 s keeps proxies from
 * closing it, and it ends after {@code session.status_terminated} or when the session is deleted.
 * Like a gRPC stream, it checks its credential again every half re-check interval: a key revoked, a
 * tenant disabled or a token expired meanwhile ends it with an {@code error} event.
 */
@ApplicationScoped
class EventStream {

  private static final org.jboss.logging.Logger LOGGER =
      org.jboss.logging.Logger.getLogger(EventStream.class);

  private static final long HEARTBEAT_MS = 15_000;
  private static final Set<String> DELTA_TYPES = Set.of("agent.message", "agent.thinking");

  private final Sessions sessions;
  private final Authenticator authenticator;

  EventStream(Sessions sessions, Authenticator authenticator) {
    this.sessions = sessions;
    this.authenticator = authenticator;
  }

  void serve(RestCall call) {
    RoutingContext context = call.context();
    String sessionId = call.path("session_id");
    Set<String> deltas;
    Cursor resume;
    try {
      deltas = deltaTypes(call.queryAll("event_deltas"));
      resume = cursor(context);
    } catch (RuntimeException invalid) {
      RestErrors.answer(context, invalid);
      return;
    }
    Context loop = Vertx.currentContext();
    sessions
        .get(call.tenant(), sessionId)
        .subscribe()
        .with(
            session -> loop.runOnContext(ignored -> start(call, session, resume, deltas)),
            failure -> loop.runOnContext(ignored -> RestErrors.answer(context, failure)));
  }

  /** On the request's context: checks the cursor against the session, then streams. */
  private void start(RestCall call, Session session, Cursor resume, Set<String> deltas) {
    RoutingContext context = call.context();
    if (resume != null && resume.seq() > session.getLastSeq()) {
      // A cursor past the end would skip every event up to it without a word.
      RestErrors.answer(
          context,
          new InvalidArgumentException(
              resume.field(),
              "is past the session's last event (seq "
                  + session.getLastSeq()
                  + "): it is not an id of this session's stream"));
      return;
    }
    long afterSeq = resume != null ? resume.seq() : session.getLastSeq();
    if (session.getStatus() == SessionStatus.SESSION_STATUS_TERMINATED
        && afterSeq >= session.getLastSeq()) {
      // Ended, and its terminal event is behind the cursor: nothing will come. 204 tells an
      // EventSource not to reconnect.
      if (!context.response().closed() && !context.response().ended()) {
        context
            .response()
            .setStatusCode(204)
            .putHeader("request-id", (String) context.get(RestCall.REQUEST_ID))
            .end();
      }
      return;
    }
    open(call, session.getId(), afterSeq, deltas);
  }

  private static Set<String> deltaTypes(List<String> requested) {
    Set<String> types = new LinkedHashSet<>();
    for (int i = 0; i < requested.size(); i++) {
      if (!DELTA_TYPES.contains(requested.get(i))) {
        throw new InvalidArgumentException(
            "event_deltas[" + i + "]", "must be agent.message or agent.thinking");
      }
      types.add(requested.get(i));
    }
    return types;
  }

  /** Where a resumed stream starts, and the header or parameter that said so. */
  private record Cursor(String field, long seq) {}

  /** Where a resumed stream starts: {@code Last-Event-ID} or {@code after_seq}; null: live. */
  private static Cursor cursor(RoutingContext context) {
    String header = context.request().getHeader("last-event-id");
    String query = context.request().getParam("after_seq");
    String value = header != null && !header.isBlank() ? header.strip() : query;
    String field = header != null && !header.isBlank() ? "Last-Event-ID" : "after_seq";
    if (value == null || value.isEmpty()) {
      return null;
    }
    if (!value.matches("[0-9]{1,18}")) {
      throw new InvalidArgumentException(field, "must be the seq (id) of an event");
    }
    return new Cursor(field, Long.parseLong(value));
  }

  /** On the request's context. */
  private void open(RestCall call, String sessionId, long afterSeq, Set<String> deltas) {
    HttpServerResponse response = call.context().response();
    if (response.closed() || response.ended()) {
      return;
    }
    Runnable slot;
    try {
      slot = sessions.takeStreamSlot(call.tenant());
    } catch (RuntimeException refused) {
      RestErrors.answer(call.context(), refused); // 429, before any header of a stream
      return;
    }
    response
        .setChunked(true)
        .putHeader("content-type", "text/event-stream; charset=utf-8")
        .putHeader("cache-control", "no-cache")
        .putHeader("x-accel-buffering", "no")
        .putHeader("request-id", (String) call.context().get(RestCall.REQUEST_ID));
    Writer writer = new Writer(response, Vertx.currentContext(), deltas);
    response.closeHandler(ignored -> writer.cancel());
    if (authenticator.enabled()) {
      writer.watch(authenticator, (String) call.context().get(HttpAuthFilter.AUTHORIZATION));
    }
    sessions
        .follow(call.tenant(), sessionId, afterSeq, List.of(), !deltas.isEmpty(), slot)
        .subscribe()
        .withSubscriber(writer);
    // A comment: the headers go out now, once the stream follows the session, before any event.
    // Then the cursor as the stream's last event id (a frame of an id alone dispatches no
    // event): an EventSource that reconnects before the first event resumes from where it
    // started, not from the session's last event by then, which would skip what came between.
    if (!response.ended()) {
      response.write(
          ": session "
              + sessionId
              + ", events after seq "
              + afterSeq
              + "\n\nid: "
              + afterSeq
              + "\n\n");
    }
  }

  /**
   * Writes the followed log to the response, asking for the next event once the last is out. The
   * stream's signals come on any thread; everything the writer does happens on the request's
   * context, where the response's writability and closing are known.
   */
  private static final class Writer implements Flow.Subscriber<Tailed> {

    private final HttpServerResponse response;
    private final Context loop;
    private final Set<String> deltas;

    // Touched on the loop only.
    private final Set<String> started = new LinkedHashSet<>();
    private Flow.Subscription subscription;
    private boolean done;
    private long heartbeat = -1;
    private long recheck = -1;

    Writer(HttpServerResponse response, Context loop, Set<String> deltas) {
      this.response = response;
      this.loop = loop;
      this.deltas = deltas;
    }

    @Override
    public void onSubscribe(Flow.Subscription subscription) {
      loop.runOnContext(
          ignored -> {
            this.subscription = subscription;
            if (done) {
              subscription.cancel();
              return;
            }
            heartbeat = loop.owner().setPeriodic(HEARTBEAT_MS, id -> ping());
            subscription.request(1);
          });
    }

    @Override
    public void onNext(Tailed item) {
      loop.runOnContext(ignored -> next(item));
    }

    private void next(Tailed item) {
      if (done) {
        return;
      }
      try {
        send(item);
      } catch (RuntimeException failed) {
        // a stream that stopped here would hold its slot and ping for ever: it ends, and the
        // client's reconnect says what is wrong
        LOGGER.errorf(
            failed,
            "an event stream could not send its next %s (seq %s)",
            item.kind(),
            item.event() == null ? "-" : item.event().getSeq());
        end(null);
      }
    }

    private void send(Tailed item) {
      switch (item.kind()) {
        case EVENT -> {
          Event event = item.event();
          ObjectNode shaped = EventShapes.event(event);
          write(
              "event: "
                  + shaped.get("type").asText()
                  + "\nid: "
                  + event.getSeq()
                  + "\ndata: "
                  + shaped
                  + "\n\n");
          if (event.hasSessionStatusTerminated()) {
            end(null);
            return;
          }
        }
        case DELTA -> delta(item.delta());
        case DELETED -> {
          ObjectNode deleted =
              Shapes.object()
                  .put("type", "session.deleted")
                  .put("id", dev.corral.common.IdKind.EVENT.next())
                  .put("processed_at", java.time.Instant.now().toString());
          end("event: session.deleted\ndata: " + deleted + "\n\n");
          return;
        }
      }
      if (response.writeQueueFull()) {
        response.drainHandler(
            drained -> {
              response.drainHandler(null);
              if (!done) {
                subscription.request(1);
              }
            });
      } else {
        subscription.request(1);
      }
    }

    private void delta(EventDelta delta) {
      if (!deltas.contains(delta.getType())) {
        return;
      }
      if (started.add(delta.getEventId())) {
        if (started.size() > 64) {
          started.remove(started.iterator().next());
        }
        ObjectNode start = Shapes.object().put("type", "event_start");
        start.putObject("event").put("type", delta.getType()).put("id", delta.getEventId());
        write("event: event_start\ndata: " + start + "\n\n");
      }
      ObjectNode shaped =
          Shapes.object().put("type", "event_delta").put("event_id", delta.getEventId());
      shaped
          .putObject("delta")
          .put("type", "content_delta")
          .putObject("content")
          .put("type", "text")
          .put("text", delta.getText());
      write("event: event_delta\ndata: " + shaped + "\n\n");
    }

    /**
     * On the loop: has {@code authenticator} watch the stream's credential; a refusal ends the
     * stream.
     */
    void watch(Authenticator authenticator, String authorization) {
      recheck = authenticator.watch(loop.owner(), authorization, this::onError);
      if (done) {
        stopTimers();
      }
    }

    @Override
    public void onError(Throwable failure) {
      loop.runOnContext(ignored -> end("event: error\ndata: " + RestErrors.body(failure) + "\n\n"));
    }

    /** After the session's terminal event, or its deletion (the last item said which). */
    @Override
    public void onComplete() {
      loop.runOnContext(ignored -> end(null));
    }

    /** On the loop: the client left. */
    void cancel() {
      if (!done) {
        done = true;
        stopTimers();
        if (subscription != null) {
          subscription.cancel();
        }
      }
    }

    private void end(String last) {
      if (done) {
        return;
      }
      cancel();
      if (!response.closed() && !response.ended()) {
        if (last != null) {
          response.end(last);
        } else {
          response.end();
        }
      }
    }

    private void ping() {
      if (response.closed()) {
        cancel(); // the close went unnoticed: stop following
      } else {
        write(": ping\n\n");
      }
    }

    private void write(String frame) {
      if (!response.closed() && !response.ended()) {
        response.write(frame);
      }
    }

    private void stopTimers() {
      if (heartbeat >= 0) {
        loop.owner().cancelTimer(heartbeat);
      }
      if (recheck >= 0) {
        loop.owner().cancelTimer(recheck);
      }
    }
  }
}
