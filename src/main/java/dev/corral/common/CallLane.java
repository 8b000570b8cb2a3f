package dev.corral.common;

import io.smallrye.mutiny.Uni;
import io.smallrye.mutiny.subscription.UniEmitter;
import java.util.ArrayDeque;

/**
 * Calls of one thing (a sandbox, a tenant's creations of one kind), one after another: a call
 * starts once the one before it has ended, and waiting holds no thread. Cancelling a waiting call
 * drops it. Cancelling the running one interrupts it (its {@link Call#interrupt} runs, which must
 * make it end soon) and the next call starts only once it has ended, so that it never meets what
 * the interrupted one left running. At most {@code capacity} calls wait, and calls of at most
 * {@code maxWaitingBytes} together (a call that finds none waiting is taken whatever its size).
 */
public final class CallLane {

  /** One call: how it starts, and how it is told to stop early. */
  public interface Call<T> {
    Uni<T> start();

    void interrupt();
  }

  private final int capacity;
  private final long maxWaitingBytes;
  private final String full;
  private final ArrayDeque<Entry<?>> waiting = new ArrayDeque<>();
  private long waitingBytes;
  private boolean busy;

  /**
   * @param full the RESOURCE_EXHAUSTED message of a call that finds {@code capacity} waiting
   */
  public CallLane(int capacity, String full) {
    this(capacity, Long.MAX_VALUE, full);
  }

  private CallLane(int capacity, long maxWaitingBytes, String full) {
    this.capacity = capacity;
    this.maxWaitingBytes = maxWaitingBytes;
    this.full = full;
  }

  /** A lane of a sandbox's calls, whose waiting calls hold at most {@code maxWaitingBytes}. */
  public static CallLane ofSandbox(int capacity, long maxWaitingBytes) {
    return new CallLane(
        capacity,
        maxWaitingBytes,
        "the sandbox has "
            + capacity
            + " calls, or calls of "
            + maxWaitingBytes / 1024
            + " KiB of input together, waiting for their turn, its limit; wait for them to end");
  }

  /** Calls waiting for their turn. */
  public synchronized int waiting() {
    return waiting.size();
  }

  public <T> Uni<T> submit(Call<T> call) {
    return submit(call, 0);
  }

  /** As {@link #submit(Call)}, for a call whose input holds {@code bytes} while it waits. */
  public <T> Uni<T> submit(Call<T> call, long bytes) {
    return Uni.createFrom()
        .emitter(
            emitter -> {
              Entry<T> entry = new Entry<>(call, emitter, bytes);
              emitter.onTermination(() -> terminated(entry));
              if (!offer(entry)) {
                emitter.fail(new ResourceExhaustedException(full));
                return;
              }
              next();
            });
  }

  private synchronized boolean offer(Entry<?> entry) {
    if (waiting.size() >= capacity
        || (!waiting.isEmpty() && waitingBytes + entry.bytes > maxWaitingBytes)) {
      return false;
    }
    waiting.add(entry);
    waitingBytes += entry.bytes;
    return true;
  }

  private void next() {
    Entry<?> entry;
    synchronized (this) {
      if (busy || waiting.isEmpty()) {
        return;
      }
      busy = true;
      entry = waiting.poll();
      waitingBytes -= entry.bytes;
      entry.running = true;
    }
    entry.start(this::ended);
  }

  private void ended() {
    synchronized (this) {
      busy = false;
    }
    next();
  }

  /** The caller stopped waiting for {@code entry}'s answer (or it came). */
  private void terminated(Entry<?> entry) {
    if (entry.finished) {
      return;
    }
    synchronized (this) {
      if (waiting.remove(entry)) {
        waitingBytes -= entry.bytes;
        return;
      }
    }
    if (entry.running) {
      entry.call.interrupt();
    }
  }

  private static final class Entry<T> {
    private final Call<T> call;
    private final UniEmitter<? super T> emitter;
    private final long bytes;
    private volatile boolean running;
    private volatile boolean finished;

    Entry(Call<T> call, UniEmitter<? super T> emitter, long bytes) {
      this.call = call;
      this.emitter = emitter;
      this.bytes = bytes;
    }

    void start(Runnable ended) {
      Uni<T> started;
      try {
        started = call.start();
      } catch (RuntimeException failure) {
        started = Uni.createFrom().failure(failure);
      }
      started
          .subscribe()
          .with(
              item -> {
                finished = true;
                emitter.complete(item);
                ended.run();
              },
              failure -> {
                finished = true;
                emitter.fail(failure);
                ended.run();
              });
    }
  }
}
