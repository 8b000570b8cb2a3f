package dev.corral.harness;

import dev.corral.common.ResourceExhaustedException;
import dev.corral.proto.v1.EventEmitter;
import dev.corral.session.AppendRequest;
import dev.corral.session.Appended;
import dev.corral.session.EventLog;
import dev.corral.session.NewEvent;
import io.opentelemetry.api.common.AttributeKey;
import io.opentelemetry.api.trace.Span;
import io.opentelemetry.api.trace.SpanKind;
import io.opentelemetry.api.trace.StatusCode;
import io.smallrye.mutiny.Uni;
import java.util.ArrayDeque;
import java.util.List;
import java.util.concurrent.Executor;
import java.util.function.BooleanSupplier;
import java.util.function.Consumer;

/**
 * A harness run's appends, made one at a time in the order they were asked for, each carrying the
 * run's lease epoch. The run learns each outcome on its own context and then asks for the next
 * append, so that it folds every appended event before it decides again.
 */
final class AppendQueue {

  private static final AttributeKey<Long> EVENTS = AttributeKey.longKey("corral.events");
  private static final AttributeKey<Long> LAST_SEQ = AttributeKey.longKey("corral.seq");

  /** Tries of an append the log's full queue refused, 50 ms apart and doubling to 1 s (~10 s). */
  static final int FULL_QUEUE_RETRIES = 14;

  private static final java.time.Duration FULL_QUEUE_FIRST_WAIT = java.time.Duration.ofMillis(50);
  private static final java.time.Duration FULL_QUEUE_MAX_WAIT = java.time.Duration.ofSeconds(1);

  /**
   * Events to append, with what to do once they are in the log (or refused).
   *
   * @param expectedLastSeq the append is refused if the log moved past it (null: no check)
   * @param wanted asked when the batch's turn comes: a batch no longer wanted is dropped unsent
   */
  record Batch(
      List<NewEvent> events,
      Long expectedLastSeq,
      Consumer<Appended> then,
      Runnable refused,
      BooleanSupplier wanted) {}

  /** Where the outcome of each append goes, on the run's context. */
  interface Outcome {
    void appended(Batch batch, Appended appended);

    void refused(Batch batch, Throwable failure);
  }

  private final String sessionId;
  private final long epoch;
  private final EventEmitter emitter;
  private final java.util.function.Function<AppendRequest, Uni<Appended>> log;
  private final TurnTrace trace;
  private final Executor context;
  private final Outcome outcome;
  private final ArrayDeque<Batch> waiting = new ArrayDeque<>();
  private boolean appending;
  private boolean stopped;

  /**
   * @param emitter recorded on every event appended (the harness and its replica)
   */
  AppendQueue(
      String sessionId,
      long epoch,
      EventEmitter emitter,
      EventLog log,
      TurnTrace trace,
      Executor context,
      Outcome outcome) {
    this(sessionId, epoch, emitter, log::append, trace, context, outcome);
  }

  /**
   * @param log appends a request (the log's {@link EventLog#append}, or a test's stand-in)
   */
  AppendQueue(
      String sessionId,
      long epoch,
      EventEmitter emitter,
      java.util.function.Function<AppendRequest, Uni<Appended>> log,
      TurnTrace trace,
      Executor context,
      Outcome outcome) {
    this.trace = trace;
    this.sessionId = sessionId;
    this.epoch = epoch;
    this.emitter = emitter;
    this.log = log;
    this.context = context;
    this.outcome = outcome;
  }

  void add(List<NewEvent> events, Long expectedLastSeq) {
    add(events, expectedLastSeq, appended -> {}, () -> {});
  }

  void add(List<NewEvent> events, Long expectedLastSeq, Consumer<Appended> then) {
    add(events, expectedLastSeq, then, () -> {});
  }

  void add(List<NewEvent> events, Long expectedLastSeq, Consumer<Appended> then, Runnable refused) {
    waiting.add(new Batch(events, expectedLastSeq, then, refused, () -> true));
    next();
  }

  /**
   * Appends {@code events} when their turn comes, if {@code wanted} still says so then: a model's
   * answer queued behind its span start is dropped if that span start was refused, so that no
   * answer lands in the log without the start of its call (or after input its request never saw).
   */
  void addIfStillWanted(List<NewEvent> events, Consumer<Appended> then, BooleanSupplier wanted) {
    waiting.add(new Batch(events, null, then, () -> {}, wanted));
    next();
  }

  /** Whether an append is under way (its outcome not yet handled). */
  boolean busy() {
    return appending;
  }

  /** Makes no more appends. */
  void stop() {
    stopped = true;
  }

  /** Starts the next waiting append, unless one is under way. */
  void next() {
    while (!waiting.isEmpty() && !waiting.peek().wanted().getAsBoolean()) {
      waiting.poll();
    }
    if (stopped || appending || waiting.isEmpty()) {
      return;
    }
    appending = true;
    Batch batch = waiting.poll();
    List<NewEvent> events = batch.events().stream().map(event -> event.emittedBy(emitter)).toList();
    Span span = trace.child("corral.append", SpanKind.INTERNAL);
    span.setAttribute(EVENTS, (long) events.size());
    log.apply(new AppendRequest(sessionId, events, batch.expectedLastSeq(), epoch))
        // A full append queue refused it before any statement: nothing was appended, and the
        // result in hand (a finished tool call's, say) is worth a wait rather than being lost
        .onFailure(ResourceExhaustedException.class)
        .retry()
        .withBackOff(FULL_QUEUE_FIRST_WAIT, FULL_QUEUE_MAX_WAIT)
        .atMost(FULL_QUEUE_RETRIES)
        .subscribe()
        .with(
            appended -> {
              if (!appended.events().isEmpty()) {
                span.setAttribute(
                    LAST_SEQ, appended.events().get(appended.events().size() - 1).getSeq());
              }
              span.end();
              context.execute(() -> done(() -> outcome.appended(batch, appended)));
            },
            failure -> {
              span.setStatus(StatusCode.ERROR, failure.getClass().getSimpleName());
              span.end();
              context.execute(() -> done(() -> outcome.refused(batch, failure)));
            });
  }

  private void done(Runnable report) {
    appending = false;
    report.run();
  }
}
