package dev.corral.harness;

import dev.corral.proto.v1.EventEmitter;
import dev.corral.session.AppendRequest;
import dev.corral.session.Appended;
import dev.corral.session.EventLog;
import dev.corral.session.NewEvent;
import java.util.ArrayDeque;
import java.util.List;
import java.util.concurrent.Executor;
import java.util.function.Consumer;

/**
 * A harness run's appends, made one at a time in the order they were asked for, each carrying the
 * run's lease epoch. The run learns each outcome on its own context and then asks for the next
 * append, so that it folds every appended event before it decides again.
 */
final class AppendQueue {

  /**
   * Events to append, with what to do once they are in the log (or refused).
   *
   * @param expectedLastSeq the append is refused if the log moved past it (null: no check)
   */
  record Batch(
      List<NewEvent> events, Long expectedLastSeq, Consumer<Appended> then, Runnable refused) {}

  /** Where the outcome of each append goes, on the run's context. */
  interface Outcome {
    void appended(Batch batch, Appended appended);

    void refused(Batch batch, Throwable failure);
  }

  private final String sessionId;
  private final long epoch;
  private final EventEmitter emitter;
  private final EventLog log;
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
      Executor context,
      Outcome outcome) {
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
    waiting.add(new Batch(events, expectedLastSeq, then, refused));
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
    if (stopped || appending || waiting.isEmpty()) {
      return;
    }
    appending = true;
    Batch batch = waiting.poll();
    List<NewEvent> events = batch.events().stream().map(event -> event.emittedBy(emitter)).toList();
    log.append(new AppendRequest(sessionId, events, batch.expectedLastSeq(), epoch))
        .subscribe()
        .with(
            appended -> context.execute(() -> done(() -> outcome.appended(batch, appended))),
            failure -> context.execute(() -> done(() -> outcome.refused(batch, failure))));
  }

  private void done(Runnable report) {
    appending = false;
    report.run();
  }
}
