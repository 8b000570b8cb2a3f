package dev.corral.harness;

import io.opentelemetry.api.common.AttributeKey;
import io.opentelemetry.api.trace.Span;
import io.opentelemetry.api.trace.SpanKind;
import io.opentelemetry.api.trace.StatusCode;
import io.opentelemetry.api.trace.Tracer;
import io.opentelemetry.context.Context;

/**
 * A harness run's turns as OpenTelemetry traces: each turn is one trace, whose root span {@code
 * corral.turn} opens with the turn's first step and closes once its idle (or terminated) status is
 * in the log, or when the run ends. The model call, each tool call (with the provisioning it
 * caused) and each append are its children. Parents are passed explicitly, not through a current
 * context, since a run's work interleaves on one Vert.x context.
 *
 * <p>When tracing is off the tracer is OpenTelemetry's no-op one: spans cost an allocation and
 * carry an invalid trace id, which is then recorded nowhere.
 */
final class TurnTrace {

  static final AttributeKey<String> SESSION_ID = AttributeKey.stringKey("corral.session.id");
  static final AttributeKey<Long> EPOCH = AttributeKey.longKey("corral.epoch");
  static final AttributeKey<String> STOP_REASON = AttributeKey.stringKey("corral.stop_reason");

  private final Tracer tracer;
  private final String sessionId;
  private final long epoch;
  private Span turn;

  TurnTrace(Tracer tracer, String sessionId, long epoch) {
    this.tracer = tracer;
    this.sessionId = sessionId;
    this.epoch = epoch;
  }

  /** The open turn, opened now if there is none. */
  Context turn() {
    if (turn == null) {
      turn =
          tracer
              .spanBuilder("corral.turn")
              .setNoParent()
              .setSpanKind(SpanKind.INTERNAL)
              .setAttribute(SESSION_ID, sessionId)
              .setAttribute(EPOCH, epoch)
              .startSpan();
    }
    return Context.root().with(turn);
  }

  /** A span of the open turn (opening one if needed); the caller ends it. */
  Span child(String name, SpanKind kind) {
    return tracer
        .spanBuilder(name)
        .setParent(turn())
        .setSpanKind(kind)
        .setAttribute(SESSION_ID, sessionId)
        .startSpan();
  }

  /** The turn's idle or terminated status is in the log: the turn's trace is complete. */
  void turnEnded(String stopReason) {
    if (turn != null) {
      turn.setAttribute(STOP_REASON, stopReason);
      turn.end();
      turn = null;
    }
  }

  /** The run ends with a turn open (lease lost, failure, shutdown): the turn's span ends here. */
  void runEnded(String why) {
    if (turn != null) {
      turn.setStatus(StatusCode.ERROR, "the harness run ended: " + why);
      turn.end();
      turn = null;
    }
  }

  /** The trace id to record on an event, or empty when this trace is not exported. */
  static String traceId(Span span) {
    return span.getSpanContext().isSampled() ? span.getSpanContext().getTraceId() : "";
  }
}
