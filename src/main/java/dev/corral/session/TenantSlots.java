package dev.corral.session;

import dev.corral.common.ResourceExhaustedException;
import dev.corral.common.Tenant;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.Supplier;

/** Slots each tenant holds of something this replica bounds per tenant (streams, deletions). */
final class TenantSlots {

  private final Map<String, Integer> held = new ConcurrentHashMap<>();

  /**
   * Takes one of {@code tenant}'s {@code limit} slots; running the returned action gives it back
   * (once, however often it runs).
   *
   * @throws ResourceExhaustedException with {@code refusal}'s message if the tenant holds them all
   */
  Runnable take(Tenant tenant, int limit, Supplier<String> refusal) {
    boolean[] taken = new boolean[1];
    held.compute(
        tenant.id(),
        (id, count) -> {
          int now = count == null ? 0 : count;
          taken[0] = now < limit;
          return taken[0] ? now + 1 : count;
        });
    if (!taken[0]) {
      throw new ResourceExhaustedException(refusal.get());
    }
    AtomicBoolean given = new AtomicBoolean();
    return () -> {
      if (given.compareAndSet(false, true)) {
        held.computeIfPresent(tenant.id(), (id, count) -> count <= 1 ? null : count - 1);
      }
    };
  }

  /** Slots {@code tenant} holds. */
  int held(Tenant tenant) {
    return held.getOrDefault(tenant.id(), 0);
  }
}
