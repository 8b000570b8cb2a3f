package dev.corral.session;

import dev.corral.proto.v1.Event;
import dev.corral.proto.v1.Lease;
import java.util.List;

/**
 * The outcome of an append.
 *
 * @param events the stored events, in seq order
 * @param deduplicated true when the idempotency keys matched events appended earlier: {@code
 *     events} are those originals and nothing was appended
 * @param lease the session's lease after the append, when the append claimed one; null otherwise
 */
public record Appended(List<Event> events, boolean deduplicated, Lease lease) {

  public long lastSeq() {
    return events.get(events.size() - 1).getSeq();
  }

  /** The lease this append took for {@code holder}, if it did. */
  public java.util.Optional<Lease> claimedBy(String holder) {
    return lease != null && lease.getHolder().equals(holder) && lease.hasExpiresAt()
        ? java.util.Optional.of(lease)
        : java.util.Optional.empty();
  }
}
