package dev.corral.rest;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.corral.api.HttpAuthFilter;
import dev.corral.common.InvalidArgumentException;
import dev.corral.identity.Authenticator;
import dev.corral.proto.v1.Event;
import dev.corral.proto.v1.EventDelta;
import dev.corral.session.Sessions;
import dev.corral.session.Tailed;
import io.vertx.core.Vertx;
import io.vertx.core.http.HttpServerResponse;
import io.vertx.ext.web.RoutingContext;
import jakarta.enterprise.context.ApplicationScoped;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.Flow;
import java.util.concurrent.atomic.AtomicBoolean;

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
    sessions
        .get(call.tenant(), sessionId)
        .subscribe()
        .with(
            session -> {
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
              open(call, sessionId, resume != null ? resume.seq() : session.getLastSeq(), deltas);
            },
            failure -> RestErrors.answer(context, failure));
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

  private void open(RestCall call, String sessionId, long afterSeq, Set<String> deltas) {
    HttpServerResponse response = call.context().response();
    if (response.closed() || response.ended()) {
      return;
    }
    response
        .setChunked(true)
        .putHeader("content-type", "text/event-stream; charset=utf-8")
        .putHeader("cache-control", "no-cache")
        .putHeader("x-accel-buffering", "no")
        .putHeader("request-id", (String) call.context().get(RestCall.REQUEST_ID));
    Writer writer = new Writer(response, call.context().vertx(), deltas);
    response.closeHandler(ignored -> writer.cancel());
    if (authenticator.enabled()) {
      writer.watch(authenticator, (String) call.context().get(HttpAuthFilter.AUTHORIZATION));
    }
    sessions
        .follow(call.tenant(), sessionId, afterSeq, List.of(), !deltas.isEmpty())
        .subscribe()
        .withSubscriber(writer);
    // A comment: the headers go out now, once the stream follows the session, before any event.
    if (!response.ended()) {
      response.write(": session " + sessionId + ", events after seq " + afterSeq + "\n\n");
    }
  }

  /** Writes the followed log to the response, asking for the next event once the last is out. */
  private static final class Writer implements Flow.Subscriber<Tailed> {

    private final HttpServerResponse response;
    private final Vertx vertx;
    private final Set<String> deltas;
    private final Set<String> started = new LinkedHashSet<>();
    private final AtomicBoolean done = new AtomicBoolean();
    private volatile Flow.Subscription subscription;
    private volatile long heartbeat = -1;
    private volatile long recheck = -1;

    Writer(HttpServerResponse response, Vertx vertx, Set<String> deltas) {
      this.response = response;
      this.vertx = vertx;
      this.deltas = deltas;
    }

    @Override
    public void onSubscribe(Flow.Subscription subscription) {
      this.subscription = subscription;
      if (done.get()) {
        subscription.cancel();
        return;
      }
      heartbeat = vertx.setPeriodic(HEARTBEAT_MS, id -> write(": ping\n\n"));
      subscription.request(1);
    }

    @Override
    public void onNext(Tailed item) {
      if (done.get()) {
        return;
      }
      if (item.event() != null) {
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
      } else if (item.delta() != null) {
        delta(item.delta());
      }
      if (response.writeQueueFull()) {
        response.drainHandler(ignored -> subscription.request(1));
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

    /** Has {@code authenticator} watch the stream's credential: a refusal ends the stream. */
    void watch(Authenticator authenticator, String authorization) {
      recheck = authenticator.watch(vertx, authorization, this::onError);
      if (done.get()) {
        stopTimers();
      }
    }

    @Override
    public void onError(Throwable failure) {
      end("event: error\ndata: " + RestErrors.body(failure) + "\n\n");
    }

    /** The follow ends only when the session is deleted. */
    @Override
    public void onComplete() {
      ObjectNode deleted =
          Shapes.object()
              .put("type", "session.deleted")
              .put("id", dev.corral.common.IdKind.EVENT.next())
              .put("processed_at", java.time.Instant.now().toString());
      end("event: session.deleted\ndata: " + deleted + "\n\n");
    }

    void cancel() {
      if (done.compareAndSet(false, true)) {
        stopTimers();
        Flow.Subscription current = subscription;
        if (current != null) {
          current.cancel();
        }
      }
    }

    private void end(String last) {
      if (!done.compareAndSet(false, true)) {
        return;
      }
      stopTimers();
      Flow.Subscription current = subscription;
      if (current != null) {
        current.cancel();
      }
      if (!response.closed() && !response.ended()) {
        if (last != null) {
          response.end(last);
        } else {
          response.end();
        }
      }
    }

    private void write(String frame) {
      if (!response.closed() && !response.ended()) {
        response.write(frame);
      }
    }

    private void stopTimers() {
      if (heartbeat >= 0) {
        vertx.cancelTimer(heartbeat);
      }
      if (recheck >= 0) {
        vertx.cancelTimer(recheck);
      }
    }
  }
}
