package dev.corral.identity;

import io.smallrye.mutiny.Uni;
import jakarta.enterprise.context.ApplicationScoped;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;

/**
 * Whether this replica's start has set up its admin key ({@link AdminKeyBootstrap}). Until then a
 * key's lookup waits for it: on a fresh database the configured bootstrap key is not in the table
 * yet, and a call that came first would be refused as unknown, a refusal then cached for the
 * recheck interval.
 */
@ApplicationScoped
class AdminKeySettled {

  /** The longest a lookup waits: a start that cannot reach its database must not hold calls. */
  static final Duration LONGEST_WAIT = Duration.ofSeconds(10);

  private final CompletableFuture<Void> settled = new CompletableFuture<>();

  /** The start's key set-up has ended, done or failed. */
  void settle() {
    settled.complete(null);
  }

  /** Completes once the key set-up has ended, or after {@link #LONGEST_WAIT}. */
  Uni<Void> settledOrWaited() {
    if (settled.isDone()) {
      return Uni.createFrom().voidItem();
    }
    return Uni.createFrom()
        .completionStage(settled)
        .ifNoItem()
        .after(LONGEST_WAIT)
        .recoverWithItem((Void) null);
  }
}
