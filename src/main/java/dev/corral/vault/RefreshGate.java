package dev.corral.vault;

import dev.corral.common.UnavailableException;
import io.smallrye.mutiny.Uni;
import java.util.ArrayDeque;
import java.util.HashMap;
import java.util.Map;
import java.util.function.Supplier;

/**
 * The OAuth token refreshes under way on this replica. A refresh holds a connection of the database
 * pool (the credential's row lock) while it calls the tenant's token endpoint, for up to its
 * timeout; unbounded, a tenant whose endpoint stalls could take every connection of the replica,
 * and every other tenant's work with them. So callers of one credential share one refresh, a tenant
 * runs at most {@link #perTenant} refreshes at once, and at most {@link #maxWaiting} more wait
 * their turn; a refresh beyond that is refused as unavailable.
 *
 * @param <T> what a refresh gives
 */
final class RefreshGate<T> {

  private final int perTenant;
  private final int maxWaiting;
  private final Map<String, Uni<T>> byCredential = new HashMap<>();
  private final Map<String, Integer> running = new HashMap<>();
  private final Map<String, ArrayDeque<Runnable>> waiting = new HashMap<>();

  RefreshGate(int perTenant, int maxWaiting) {
    this.perTenant = perTenant;
    this.maxWaiting = maxWaiting;
  }

  /**
   * The refresh of {@code credentialId} after {@code usedToken} was refused (null: it is about to
   * expire): the one under way, or {@code refresh}, run when the tenant has room.
   */
  synchronized Uni<T> refresh(
      String tenantId, String credentialId, String usedToken, Supplier<Uni<T>> refresh) {
    // callers that were refused the same token share a refresh
    String key = tenantId + " " + credentialId + " " + usedToken;
    Uni<T> shared = byCredential.get(key);
    if (shared != null) {
      return shared;
    }
    shared =
        Uni.createFrom()
            .<T>emitter(
                emitter -> {
                  try {
                    admit(
                        tenantId,
                        () ->
                            Uni.createFrom()
                                .deferred(refresh::get)
                                .subscribe()
                                .with(
                                    item -> {
                                      Runnable next = done(tenantId, key);
                                      emitter.complete(item);
                                      runNext(next);
                                    },
                                    failure -> {
                                      Runnable next = done(tenantId, key);
                                      emitter.fail(failure);
                                      runNext(next);
                                    }));
                  } catch (UnavailableException refused) {
                    synchronized (this) {
                      byCredential.remove(key);
                    }
                    emitter.fail(refused);
                  }
                })
            .memoize()
            .indefinitely();
    byCredential.put(key, shared);
    return shared;
  }

  /** Runs {@code start} now if the tenant has room, else when it has; refuses a full queue. */
  private void admit(String tenantId, Runnable start) {
    synchronized (this) {
      int now = running.getOrDefault(tenantId, 0);
      if (now >= perTenant) {
        ArrayDeque<Runnable> queue = waiting.computeIfAbsent(tenantId, t -> new ArrayDeque<>());
        if (queue.size() >= maxWaiting) {
          throw new UnavailableException(
              "too many OAuth token refreshes of this tenant are under way; try again shortly",
              null);
        }
        queue.add(start);
        return;
      }
      running.put(tenantId, now + 1);
    }
    start.run();
  }

  /**
   * A refresh ended: the credential's next caller starts anew; returns the tenant's next waiter,
   * which the caller runs once it has answered its own.
   */
  private Runnable done(String tenantId, String key) {
    Runnable next;
    synchronized (this) {
      byCredential.remove(key);
      ArrayDeque<Runnable> queue = waiting.get(tenantId);
      next = queue == null ? null : queue.poll();
      if (queue != null && queue.isEmpty()) {
        waiting.remove(tenantId);
      }
      if (next == null) {
        int left = running.getOrDefault(tenantId, 1) - 1;
        if (left == 0) {
          running.remove(tenantId);
        } else {
          running.put(tenantId, left);
        }
      }
    }
    return next;
  }

  private static void runNext(Runnable next) {
    if (next != null) {
      next.run();
    }
  }

  /** Refreshes running and waiting, for tests. */
  synchronized int inFlight() {
    return byCredential.size();
  }
}
