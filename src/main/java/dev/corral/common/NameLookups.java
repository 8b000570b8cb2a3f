package dev.corral.common;

import io.smallrye.mutiny.Uni;
import io.smallrye.mutiny.subscription.UniEmitter;
import jakarta.annotation.PreDestroy;
import jakarta.enterprise.context.ApplicationScoped;
import java.net.InetAddress;
import java.net.UnknownHostException;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;

/**
 * Name lookups for names a tenant or its sandboxes chose (the egress proxy's destinations, the
 * hosts of MCP servers and token endpoints). A lookup blocks its thread until the resolver gives
 * up, which a name server that never answers can make last tens of seconds, and it cannot be
 * cancelled: so lookups run on threads of their own, never the shared worker pool, and each asker
 * (a tenant) has at most {@link #RUNNING_PER_ASKER} of them running; its others wait their turn (at
 * most {@link #WAITING_PER_ASKER}, then they are refused), so that one tenant's slow names hold
 * only its own lookups up.
 */
@ApplicationScoped
public class NameLookups {

  static final int THREADS = 32;
  static final int RUNNING_PER_ASKER = 8;
  static final int WAITING_PER_ASKER = 256;

  private final ThreadPoolExecutor executor =
      new ThreadPoolExecutor(
          THREADS,
          THREADS,
          30,
          TimeUnit.SECONDS,
          new LinkedBlockingQueue<>(),
          DaemonThreads.named("corral-lookup"));
  private final Map<String, Asker> askers = new HashMap<>();
  private final Resolver resolver;

  /** What looks a name up (blocking). */
  public interface Resolver {
    InetAddress[] addresses(String name) throws UnknownHostException;
  }

  NameLookups() {
    this(InetAddress::getAllByName);
  }

  /** Lookups made by {@code resolver} instead of the system's resolver. */
  public NameLookups(Resolver resolver) {
    this.resolver = resolver;
    executor.allowCoreThreadTimeOut(true);
  }

  /** Why a lookup failed: the name does not resolve, in time, or too many lookups wait. */
  public static final class LookupFailedException extends RuntimeException {
    LookupFailedException(String message) {
      super(message, null, false, false);
    }
  }

  /** One asker's lookups: how many run, and those waiting for their turn. */
  private static final class Asker {
    int running;
    final ArrayDeque<Runnable> waiting = new ArrayDeque<>();
  }

  /**
   * Every address of {@code name}, looked up for {@code asker}; fails with {@link
   * LookupFailedException} if it does not resolve within {@code timeout} (waiting for its turn
   * included) or too many of the asker's lookups wait.
   */
  public Uni<List<InetAddress>> lookup(String asker, String name, Duration timeout) {
    return Uni.createFrom()
        .<List<InetAddress>>emitter(
            emitter -> {
              java.util.concurrent.atomic.AtomicBoolean over =
                  new java.util.concurrent.atomic.AtomicBoolean();
              emitter.onTermination(() -> over.set(true));
              enqueue(asker, () -> resolve(asker, name, emitter, over));
            })
        .ifNoItem()
        .after(timeout)
        .failWith(() -> new LookupFailedException(name + " could not be resolved in time"));
  }

  private void enqueue(String asker, Runnable lookup) {
    synchronized (askers) {
      Asker own = askers.computeIfAbsent(asker, key -> new Asker());
      if (own.running < RUNNING_PER_ASKER) {
        own.running++;
        executor.execute(lookup);
        return;
      }
      if (own.waiting.size() < WAITING_PER_ASKER) {
        own.waiting.add(lookup);
        return;
      }
    }
    throw new LookupFailedException(
        "too many name lookups wait for " + asker + " (" + WAITING_PER_ASKER + ")");
  }

  private void resolve(
      String asker,
      String name,
      UniEmitter<? super List<InetAddress>> emitter,
      java.util.concurrent.atomic.AtomicBoolean over) {
    try {
      if (!over.get()) { // it may have timed out while it waited
        emitter.complete(List.of(resolver.addresses(name)));
      }
    } catch (UnknownHostException | SecurityException unknown) {
      emitter.fail(new LookupFailedException(name + " could not be resolved"));
    } finally {
      next(asker);
    }
  }

  /** A lookup of {@code asker} ended: the next one waiting runs. */
  private void next(String asker) {
    synchronized (askers) {
      Asker own = askers.get(asker);
      Runnable waiting = own.waiting.poll();
      if (waiting != null) {
        executor.execute(waiting);
        return;
      }
      if (--own.running == 0) {
        askers.remove(asker);
      }
    }
  }

  @PreDestroy
  void stop() {
    executor.shutdownNow();
  }
}
