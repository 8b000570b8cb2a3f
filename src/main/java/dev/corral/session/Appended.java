package dev.corral.session;

import dev.corral.proto.v1.Event;
import java.util.List;

/**
 * The outcome of an append.
 *
 * @param events the stored events, in seq order
 * @param deduplicated true when the idempotency keys matched events appended earlier: {@code
 *     events} are those originals and nothing was appended
 */
public record Appended(List<Event> events, boolean deduplicated) {

  public long lastSeq() {
    return events.get(events.size() - 1).getSeq();
  }
}
