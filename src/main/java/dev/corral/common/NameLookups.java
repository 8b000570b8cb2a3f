package dev.corral.common;

import io.smallrye.mutiny.Uni;
import jakarta.annotation.PreDestroy;
import jakarta.enterprise.context.ApplicationScoped;
import java.net.InetAddress;
import java.net.UnknownHostException;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Name lookups for names a tenant or a sandbox chose (the egress proxy's destinations, the hosts of
 * MCP servers and token endpoints). A lookup blocks its thread until the resolver gives up, which a
 * name server that never answers can make last tens of seconds, and it cannot be cancelled: so
 * lookups run on threads of their own, never the shared worker pool, and each asker (a sandbox, a
 * tenant) has at most {@link #PER_ASKER} in flight. What is over either bound is refused at once.
 */
@ApplicationScoped
public class NameLookups {

  static final int THREADS = 16;
  static final int PER_ASKER = 4;

  private final ThreadPoolExecutor executor =
      new ThreadPoolExecutor(
          THREADS,
          THREADS,
          30,
          TimeUnit.SECONDS,
          new ArrayBlockingQueue<>(256),
          DaemonThreads.named("corral-lookup"));
  private final Map<String, AtomicInteger> inFlight = new ConcurrentHashMap<>();
  private final Resolver resolver;

  /** What looks a name up (blocking). */
  interface Resolver {
    InetAddress[] addresses(String name) throws UnknownHostException;
  }

  NameLookups() {
    this(InetAddress::getAllByName);
  }

  NameLookups(Resolver resolver) {
    this.resolver = resolver;
    executor.allowCoreThreadTimeOut(true);
  }

  /** Why a lookup failed: the name does not resolve, or too many lookups wait. */
  public static final class LookupFailedException extends RuntimeException {
    LookupFailedException(String message) {
      super(message, null, false, false);
    }
  }

  /**
   * Every address of {@code name}, looked up for {@code asker}; fails with {@link
   * LookupFailedException} if it does not resolve within {@code timeout} or too many lookups are in
   * flight.
   */
  public Uni<List<InetAddress>> lookup(String asker, String name, Duration timeout) {
    return Uni.createFrom()
        .<List<InetAddress>>emitter(
            emitter -> {
              AtomicInteger mine = inFlight.computeIfAbsent(asker, key -> new AtomicInteger());
              if (mine.incrementAndGet() > PER_ASKER) {
                release(asker, mine);
                emitter.fail(
                    new LookupFailedException(
                        name + " could not be looked up: " + PER_ASKER + " lookups already wait"));
                return;
              }
              try {
                executor.execute(
                    () -> {
                      try {
                        emitter.complete(List.of(resolver.addresses(name)));
                      } catch (UnknownHostException | SecurityException unknown) {
                        emitter.fail(new LookupFailedException(name + " could not be resolved"));
                      } finally {
                        release(asker, mine);
                      }
                    });
              } catch (RejectedExecutionException full) {
                release(asker, mine);
                emitter.fail(
                    new LookupFailedException(
                        name + " could not be looked up: too many lookups wait on this replica"));
              }
            })
        .ifNoItem()
        .after(timeout)
        .failWith(() -> new LookupFailedException(name + " could not be resolved in time"));
  }

  private void release(String asker, AtomicInteger mine) {
    if (mine.decrementAndGet() <= 0) {
      inFlight.remove(asker, mine);
    }
  }

  @PreDestroy
  void stop() {
    executor.shutdownNow();
  }
}
