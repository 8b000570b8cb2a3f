package dev.corral.session;

import dev.corral.common.ResourceExhaustedException;
import dev.corral.common.Tenant;
import jakarta.enterprise.context.ApplicationScoped;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * The live event streams each tenant has open on this replica (gRPC and SSE alike), so that one
 * tenant cannot hold a replica's memory with streams it opens and never closes.
 */
@ApplicationScoped
class StreamSlots {

  private final SessionConfig config;
  private final Map<String, Integer> open = new ConcurrentHashMap<>();

  StreamSlots(SessionConfig config) {
    this.config = config;
  }

  /** A limit below 1 would refuse every stream: the server does not start with it. */
  void checkSetting(@jakarta.enterprise.event.Observes io.quarkus.runtime.StartupEvent event) {
    if (config.maxStreamsPerTenant() < 1) {
      throw new IllegalStateException("corral.session.max-streams-per-tenant must be at least 1");
    }
  }

  /**
   * Takes one of {@code tenant}'s stream slots; running the returned action gives it back (once,
   * however often it runs).
   *
   * @throws ResourceExhaustedException if the tenant has as many streams open here as it may
   */
  Runnable take(Tenant tenant) {
    int limit = config.maxStreamsPerTenant();
    boolean[] taken = new boolean[1];
    open.compute(
        tenant.id(),
        (id, count) -> {
          int now = count == null ? 0 : count;
          taken[0] = now < limit;
          return taken[0] ? now + 1 : count;
        });
    if (!taken[0]) {
      throw new ResourceExhaustedException(
          "tenant "
              + tenant.id()
              + " has "
              + limit
              + " event streams open on this replica, the most it may"
              + " (corral.session.max-streams-per-tenant); close one first");
    }
    AtomicBoolean given = new AtomicBoolean();
    return () -> {
      if (given.compareAndSet(false, true)) {
        open.computeIfPresent(tenant.id(), (id, count) -> count <= 1 ? null : count - 1);
      }
    };
  }

  /** Streams {@code tenant} has open on this replica. */
  int open(Tenant tenant) {
    return open.getOrDefault(tenant.id(), 0);
  }
}
