package dev.corral.session;

import dev.corral.common.ResourceExhaustedException;
import dev.corral.common.Tenant;
import jakarta.enterprise.context.ApplicationScoped;

/**
 * The live event streams each tenant has open on this replica (gRPC and SSE alike), so that one
 * tenant cannot hold a replica's memory with streams it opens and never closes.
 */
@ApplicationScoped
class StreamSlots {

  private final SessionConfig config;
  private final TenantSlots open = new TenantSlots();

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

  /** Streams {@code tenant} has open on this replica. */
  int open(Tenant tenant) {
    return open.held(tenant);
  }
}
