package dev.corral.session;

import dev.corral.common.ResourceExhaustedException;
import dev.corral.common.Tenant;
import jakarta.enterprise.context.ApplicationScoped;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * The live event streams each tenant has open on this replica (gRPC and SSE alike), so that one
 * tenant cannot hold a replica's memory with streams it opens and never closes, and the streams of
 * all tenants together, so that many tenants cannot either.
 */
@ApplicationScoped
class StreamSlots {

  private final SessionConfig config;
  private final TenantSlots open = new TenantSlots();
  private final AtomicInteger total = new AtomicInteger();

  StreamSlots(SessionConfig config) {
    this.config = config;
  }

  /** A limit below 1 would refuse every stream: the server does not start with it. */
  void checkSetting(@jakarta.enterprise.event.Observes io.quarkus.runtime.StartupEvent event) {
    if (config.maxStreamsPerTenant() < 1) {
      throw new IllegalStateException("corral.session.max-streams-per-tenant must be at least 1");
    }
    if (config.maxStreams() < 1) {
      throw new IllegalStateException("corral.session.max-streams must be at least 1");
    }
  }

  /**
   * Takes one of {@code tenant}'s stream slots; running the returned action gives it back (once,
   * however often it runs).
   *
   * @throws ResourceExhaustedException if the tenant, or this replica, has as many streams open as
   *     it may
   */
  Runnable take(Tenant tenant) {
    int most = config.maxStreams();
    if (total.getAndUpdate(now -> now < most ? now + 1 : now) >= most) {
      throw new ResourceExhaustedException(
          "this replica serves "
              + most
              + " event streams, the most it may (corral.session.max-streams);"
              + " try again later or on another replica");
    }
    Runnable tenants;
    try {
      tenants = tenantSlot(tenant);
    } catch (RuntimeException refused) {
      total.decrementAndGet();
      throw refused;
    }
    AtomicBoolean given = new AtomicBoolean();
    return () -> {
      if (given.compareAndSet(false, true)) {
        tenants.run();
        total.decrementAndGet();
      }
    };
  }

  private Runnable tenantSlot(Tenant tenant) {
    int limit = config.maxStreamsPerTenant();
    return open.take(
        tenant,
        limit,
        () ->
            "tenant "
                + tenant.id()
                + " has "
                + limit
                + " event streams open on this replica, the most it may"
                + " (corral.session.max-streams-per-tenant); close one first");
  }

  /** Streams open on this replica. */
  int open() {
    return total.get();
  }

  /** Streams {@code tenant} has open on this replica. */
  int open(Tenant tenant) {
    return open.held(tenant);
  }
}
