package dev.corral.session;

import java.util.Set;

/**
 * A positional slice of one session's log.
 *
 * @param seq the cursor: exclusive lower bound for AFTER, exclusive upper bound for BEFORE, unused
 *     for TAIL
 * @param types wire names to keep; empty keeps every type
 * @param bytes the events' bytes a page holds at most (but at least one event), as {@link
 *     EventLog#PAGE_BYTES} counts them
 */
public record EventSlice(
    String sessionId, Position position, long seq, int limit, Set<String> types, int bytes) {

  public EventSlice(String sessionId, Position position, long seq, int limit, Set<String> types) {
    this(sessionId, position, seq, limit, types, EventLog.PAGE_BYTES);
  }

  public enum Position {
    /** Events with seq greater than the cursor, oldest first. */
    AFTER,
    /** The {@code limit} events just below the cursor. */
    BEFORE,
    /** The last {@code limit} events. */
    TAIL
  }

  public EventSlice {
    types = Set.copyOf(types);
  }
}
