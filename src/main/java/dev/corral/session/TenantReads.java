package dev.corral.session;

import dev.corral.common.ResourceExhaustedException;
import dev.corral.common.Tenant;
import dev.corral.common.VertxContexts;
import io.smallrye.mutiny.Uni;
import io.smallrye.mutiny.subscription.UniEmitter;
import io.vertx.core.Context;
import io.vertx.core.Vertx;
import java.util.ArrayDeque;
import java.util.HashMap;
import java.util.Map;
import java.util.function.Supplier;

/**
 * Log reads of one tenant that run at once on a replica. A page read holds a connection of the
 * replica's pool while it runs, and a read filtered by a type the log rarely holds walks the whole
 * log: without a bound, one tenant's many reads at once held the pool that every tenant's appends
 * and reads need. A read past the bound waits for its turn, in order, holding no thread and no
 * connection, and a caller that goes away stops waiting; a read that finds {@code waiting} reads of
 * its tenant already waiting is refused (RESOURCE_EXHAUSTED), but for a live stream's, which waits
 * (a tenant's streams are bounded on their own). A read runs on its caller's Vert.x context,
 * whichever read's end lets it start.
 */
final class TenantReads {

  private final int running;
  private final int waiting;
  private final Map<String, Lane> lanes = new HashMap<>(); // guarded by this

  /** One tenant's reads: how many run, and the ones waiting for their turn. */
  private static final class Lane {
    int running;
    final ArrayDeque<Read<?>> waiting = new ArrayDeque<>();
  }

  TenantReads(int running, int waiting) {
    if (running < 1 || waiting < 0) {
      throw new IllegalArgumentException(
          "corral.session.reads-per-tenant must be at least 1, and"
              + " corral.session.reads-waiting-per-tenant at least 0");
    }
    this.running = running;
    this.waiting = waiting;
  }

  /** {@code read}, run once fewer than the bound of {@code tenant}'s reads run. */
  <T> Uni<T> run(Tenant tenant, Supplier<Uni<T>> read) {
    return run(tenant, read, true);
  }

  /**
   * As {@link #run(Tenant, Supplier)}, for a read that may always wait its turn: a live stream's
   * own page, whose waiting is bounded by the tenant's streams, and which must not fail for another
   * read's turn.
   */
  <T> Uni<T> runInTurn(Tenant tenant, Supplier<Uni<T>> read) {
    return run(tenant, read, false);
  }

  private <T> Uni<T> run(Tenant tenant, Supplier<Uni<T>> read, boolean bounded) {
    return Uni.createFrom()
        .emitter(
            emitter -> {
              Read<T> entry = new Read<>(read, emitter, Vertx.currentContext());
              emitter.onTermination(() -> left(tenant, entry));
              boolean now;
              synchronized (this) {
                Lane lane = lanes.computeIfAbsent(tenant.id(), id -> new Lane());
                now = lane.running < running;
                if (now) {
                  lane.running++;
                } else if (!bounded || lane.waiting.size() < waiting) {
                  lane.waiting.add(entry);
                } else {
                  emitter.fail(
                      new ResourceExhaustedException(
                          "this tenant has "
                              + running
                              + " log reads running on this server and "
                              + waiting
                              + " waiting, its limit; read again when one has ended"));
                  return;
                }
              }
              if (now) {
                start(tenant, entry);
              }
            });
  }

  /** Reads of {@code tenant} running now. */
  synchronized int running(Tenant tenant) {
    Lane lane = lanes.get(tenant.id());
    return lane == null ? 0 : lane.running;
  }

  private <T> void start(Tenant tenant, Read<T> entry) {
    VertxContexts.runOn(
        entry.context,
        () -> {
          Uni<T> started;
          try {
            started = entry.read.get();
          } catch (RuntimeException failure) {
            started = Uni.createFrom().failure(failure);
          }
          // the slot is held until the statement ends, even for a caller that went away: its
          // connection is held until then too
          started
              .onTermination()
              .invoke(() -> ended(tenant))
              .subscribe()
              .with(entry.emitter::complete, entry.emitter::fail);
        });
  }

  private void ended(Tenant tenant) {
    Read<?> next;
    synchronized (this) {
      Lane lane = lanes.get(tenant.id());
      next = lane.waiting.poll();
      if (next == null) {
        lane.running--;
        if (lane.running == 0) {
          lanes.remove(tenant.id());
        }
        return;
      }
    }
    start(tenant, next);
  }

  /** The caller of {@code entry} has its answer, or went away: a waiting read waits no more. */
  private synchronized void left(Tenant tenant, Read<?> entry) {
    Lane lane = lanes.get(tenant.id());
    if (lane != null) {
      lane.waiting.remove(entry); // a lane with reads waiting has reads running: it stays
    }
  }

  /** One read, and its caller's answer and context. */
  private static final class Read<T> {
    final Supplier<Uni<T>> read;
    final UniEmitter<? super T> emitter;
    final Context context;

    Read(Supplier<Uni<T>> read, UniEmitter<? super T> emitter, Context context) {
      this.read = read;
      this.emitter = emitter;
      this.context = context;
    }
  }
}
