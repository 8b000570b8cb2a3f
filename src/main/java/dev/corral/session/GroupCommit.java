package dev.corral.session;

import dev.corral.common.ResourceExhaustedException;
import dev.corral.common.VertxContexts;
import io.smallrye.mutiny.Uni;
import io.smallrye.mutiny.subscription.UniEmitter;
import io.vertx.core.Context;
import io.vertx.core.Vertx;
import io.vertx.pgclient.PgException;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.Iterator;
import java.util.List;
import java.util.Set;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Group commit: appends to different sessions that arrive while earlier ones are in flight share
 * one statement and one commit.
 *
 * <p>At most {@code statements} append statements run at once. An append that finds a free slot
 * runs at once (alone, or with whatever waits), so a lone writer pays no delay; under load the
 * waiting appends go together in the next statement. A batch holds at most one append per session,
 * and a session is in at most one statement at a time, so appends of one session keep their order
 * and two statements never wait for each other's session rows.
 *
 * <p>A statement that runs longer than {@code stallAfter} (it waits on a session's row lock, say)
 * stops counting against the limit, so that one stuck session cannot hold the appends of every
 * other: the waiting appends then get a statement of their own at once.
 *
 * <p>Each append in a batch keeps all its guarantees: its checks (tenant, closed session, expected
 * seq, lease epoch, idempotency keys) are its own, and a refused append does not stop the others.
 * When the statement fails as a whole (a unique index caught a racing append, for instance), it was
 * rolled back, so each append of the batch runs again on its own statement and gets its own answer.
 * A failure that leaves the outcome unknown (a lost connection) is reported to every append of the
 * batch, as it would be to an append run alone. A statement that the statement timeout cancelled
 * fails its append when it had one; a batch's appends go back to the head of the queue, each to run
 * in a statement of its own under the same limit, so that only the stuck one fails and a slow
 * database gets no burst of retries.
 */
final class GroupCommit {

  /** Payload bytes a statement takes at most (its first append whatever its size). */
  static final long MAX_BATCH_BYTES = 4L << 20;

  /**
   * Payload bytes the waiting appends may hold, all of them (at least one append whatever its
   * size); one tenant's client appends may hold half. An append may carry 50 events of 256 KiB: the
   * count of waiting appends alone let one tenant queue gigabytes.
   */
  static final long MAX_WAITING_BYTES = 128L << 20;

  /** PostgreSQL's SQLSTATE for a statement cancelled, by the statement timeout among others. */
  private static final String QUERY_CANCELED = "57014";

  private final EventLog log;
  private final int statements;
  private final int maxBatch;
  private final int maxWaiting;
  private final long maxWaitingBytes;
  private final long stallAfterNanos;
  private final io.vertx.core.Vertx vertx;

  private final ArrayDeque<Pending> waiting = new ArrayDeque<>();
  private final Set<String> busySessions = new HashSet<>();

  /**
   * Waiting appends of each tenant whose clients made them: one tenant may fill at most half the
   * queue, so that a flood of its appends does not refuse every other tenant's. (The harness's own
   * appends carry no tenant and are not counted.)
   */
  private final java.util.Map<String, Integer> waitingOf = new java.util.HashMap<>();

  /** Payload bytes of the waiting appends, all and of each tenant (as {@link #waitingOf}). */
  private long waitingBytes;

  private final java.util.Map<String, Long> waitingBytesOf = new java.util.HashMap<>();

  /** The running statements' batches, with when each started (System.nanoTime). */
  private final java.util.Map<List<Pending>, Long> running = new java.util.IdentityHashMap<>();

  private long started;
  private boolean recheckArmed;

  GroupCommit(
      EventLog log,
      io.vertx.core.Vertx vertx,
      int statements,
      int maxBatch,
      int maxWaiting,
      java.time.Duration stallAfter) {
    this(log, vertx, statements, maxBatch, maxWaiting, stallAfter, MAX_WAITING_BYTES);
  }

  GroupCommit(
      EventLog log,
      io.vertx.core.Vertx vertx,
      int statements,
      int maxBatch,
      int maxWaiting,
      java.time.Duration stallAfter,
      long maxWaitingBytes) {
    if (statements < 1 || maxBatch < 1 || maxWaiting < 1 || stallAfter.toMillis() < 1) {
      throw new IllegalArgumentException(
          "corral.log.group-commit.statements, max-appends and max-waiting must be at least 1,"
              + " stall-after at least 1ms");
    }
    this.vertx = vertx;
    this.stallAfterNanos = stallAfter.toNanos();
    this.log = log;
    this.statements = statements;
    this.maxBatch = maxBatch;
    this.maxWaiting = maxWaiting;
    this.maxWaitingBytes = maxWaitingBytes;
  }

  Uni<Appended> submit(AppendRequest request) {
    return Uni.createFrom()
        .emitter(
            emitter -> {
              synchronized (this) {
                String refused = refusal(request);
                if (refused != null) {
                  emitter.fail(new ResourceExhaustedException(refused));
                  return;
                }
                waiting.add(new Pending(request, emitter, Vertx.currentContext(), false));
                counted(request, 1);
              }
              dispatch();
            });
  }

  /**
   * Holding the lock: why {@code request} may not wait, or null if it may. The queue is bounded by
   * its count of appends and by their payload bytes (at least one append whatever its size), one
   * tenant's client appends by half of each; the harness's appends carry no tenant.
   */
  private String refusal(AppendRequest request) {
    if (waiting.size() >= maxWaiting) {
      return "too many appends are waiting for the database (" + maxWaiting + ")";
    }
    long bytes = bytes(request);
    if (!waiting.isEmpty() && waitingBytes + bytes > maxWaitingBytes) {
      return "too many appends are waiting for the database (at most "
          + maxWaitingBytes
          + " bytes of them)";
    }
    if (request.tenant() == null) {
      return null;
    }
    String tenant = request.tenant().id();
    if (waitingOf.getOrDefault(tenant, 0) >= perTenant()) {
      return "tenant "
          + tenant
          + " has "
          + perTenant()
          + " appends waiting for the database, the most one tenant may (half"
          + " of corral.log.group-commit.max-waiting)";
    }
    long tenantBytes = waitingBytesOf.getOrDefault(tenant, 0L);
    if (tenantBytes > 0 && tenantBytes + bytes > maxWaitingBytes / 2) {
      return "tenant "
          + tenant
          + " has appends of "
          + tenantBytes
          + " bytes waiting for the database, the most one tenant may (half of "
          + maxWaitingBytes
          + ")";
    }
    return null;
  }

  private int perTenant() {
    return Math.max(1, maxWaiting / 2);
  }

  /** Counts {@code change} more (or fewer) waiting appends like {@code request}. */
  private void counted(AppendRequest request, int change) {
    long bytes = change * bytes(request);
    waitingBytes += bytes;
    if (request.tenant() != null) {
      waitingOf.merge(request.tenant().id(), change, (was, by) -> was + by == 0 ? null : was + by);
      waitingBytesOf.merge(
          request.tenant().id(), bytes, (was, by) -> was + by == 0 ? null : was + by);
    }
  }

  /** The payload bytes of {@code request}'s events. */
  private static long bytes(AppendRequest request) {
    return request.events().stream().mapToLong(e -> e.payload().getSerializedSize()).sum();
  }

  /** Appends waiting now (for tests and gauges). */
  synchronized int waiting() {
    return waiting.size();
  }

  /** Append statements started so far. */
  synchronized long statementsStarted() {
    return started;
  }

  /**
   * Takes the next batch off the queue if a statement slot is free: waiting appends in arrival
   * order, skipping any whose session is already in a statement or in this batch.
   */
  private List<Pending> nextBatch() {
    if (waiting.isEmpty() || unstalled() >= statements) {
      return null;
    }
    List<Pending> batch = new ArrayList<>();
    Set<String> skipped = new HashSet<>();
    long bytes = 0;
    Iterator<Pending> queued = waiting.iterator();
    while (queued.hasNext() && batch.size() < maxBatch && bytes < MAX_BATCH_BYTES) {
      Pending next = queued.next();
      String sessionId = next.request.sessionId();
      if ((next.alone && !batch.isEmpty())
          || skipped.contains(sessionId)
          || !busySessions.add(sessionId)) {
        skipped.add(sessionId); // later appends of this session wait too: order is kept
        continue;
      }
      queued.remove();
      counted(next.request, -1);
      batch.add(next);
      bytes += bytes(next.request);
      if (next.alone) {
        break;
      }
    }
    if (batch.isEmpty()) {
      return null;
    }
    running.put(batch, System.nanoTime());
    started++;
    return batch;
  }

  /** Holding the lock: running statements younger than {@code stallAfter}. */
  private int unstalled() {
    long now = System.nanoTime();
    int young = 0;
    for (long start : running.values()) {
      if (now - start < stallAfterNanos) {
        young++;
      }
    }
    return young;
  }

  /**
   * Starts every batch that may start now. While appends still wait, looks again once a running
   * statement would count as stalled, so that appends behind stuck statements get their own without
   * another append or a release to start them.
   */
  private void dispatch() {
    List<List<Pending>> batches = new ArrayList<>();
    synchronized (this) {
      for (List<Pending> batch = nextBatch(); batch != null; batch = nextBatch()) {
        batches.add(batch);
      }
      if (!waiting.isEmpty() && !recheckArmed) {
        recheckArmed = true;
        vertx.setTimer(
            Math.max(1, stallAfterNanos / 1_000_000),
            id -> {
              synchronized (this) {
                recheckArmed = false;
              }
              dispatch();
            });
      }
    }
    batches.forEach(this::run);
  }

  private void run(List<Pending> batch) {
    log.appendAll(batch.stream().map(Pending::request).toList())
        .subscribe()
        .with(
            outcomes -> {
              AtomicInteger open = new AtomicInteger(batch.size());
              for (int i = 0; i < batch.size(); i++) {
                settle(outcomes.get(i), batch.get(i), open, batch);
              }
            },
            failure -> {
              if (!(failure instanceof PgException)) {
                batch.forEach(pending -> pending.fail(failure));
                release(batch);
                return;
              }
              if (QUERY_CANCELED.equals(((PgException) failure).getSqlState())) {
                // The statement timeout ran out: a row lock, or a slow database. One append fails;
                // those of a batch wait again, each for a statement of its own and a free slot,
                // so that only the one that is stuck fails, and a slow database gets no more
                // statements than before.
                if (batch.size() == 1) {
                  batch.get(0).fail(failure);
                } else {
                  isolate(batch);
                }
                release(batch);
                return;
              }
              // The statement was rolled back: each append runs again, alone.
              AtomicInteger open = new AtomicInteger(batch.size());
              for (Pending pending : batch) {
                settle(log.appendAlone(pending.request), pending, open, batch);
              }
            });
  }

  /** Answers one append of the batch; the last answer frees the batch. */
  private void settle(
      Uni<Appended> outcome, Pending pending, AtomicInteger open, List<Pending> batch) {
    Runnable answered =
        () -> {
          if (open.decrementAndGet() == 0) {
            release(batch);
          }
        };
    outcome
        .subscribe()
        .with(
            appended -> {
              pending.succeed(appended);
              answered.run();
            },
            failure -> {
              pending.fail(failure);
              answered.run();
            });
  }

  /** Puts the batch's appends back at the head of the queue, each to run alone, in order. */
  private synchronized void isolate(List<Pending> batch) {
    for (int i = batch.size() - 1; i >= 0; i--) {
      waiting.addFirst(batch.get(i).isolated());
      counted(batch.get(i).request, 1);
    }
  }

  /** The batch's sessions and statement slot are free again: start what waits. */
  private void release(List<Pending> batch) {
    synchronized (this) {
      running.remove(batch);
      batch.forEach(pending -> busySessions.remove(pending.request.sessionId()));
    }
    dispatch();
  }

  /** An append waiting for its statement, and where its caller runs. */
  private record Pending(
      AppendRequest request, UniEmitter<? super Appended> emitter, Context context, boolean alone) {

    /** The same append, to run in a statement of its own. */
    Pending isolated() {
      return new Pending(request, emitter, context, true);
    }

    void succeed(Appended appended) {
      onCallerContext(() -> emitter.complete(appended));
    }

    void fail(Throwable failure) {
      onCallerContext(() -> emitter.fail(failure));
    }

    private void onCallerContext(Runnable action) {
      VertxContexts.runOn(context, action);
    }
  }
}
