package dev.corral.harness;

import jakarta.enterprise.context.ApplicationScoped;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The folded states of sessions whose harness run ended on this replica, so that the next run of a
 * session reads only the events after them instead of its whole log. A state is a fold of a prefix
 * of an append-only log, so any state kept here is a correct start, however old. A run takes a
 * state out (it owns it from then on) and puts it back when it ends. Bounded: the least recently
 * used go first once the states' conversations hold more than {@value #MAX_BYTES} bytes of events
 * or {@value #MAX_SESSIONS} sessions (a count of events let a few sessions of large events hold
 * gigabytes); a state heavier than a quarter of that is not kept.
 */
@ApplicationScoped
class FoldedStates {

  static final int MAX_SESSIONS = 512;
  static final long MAX_BYTES = 64L << 20;

  /** What a state costs beyond its events' bytes, about. */
  private static final long STATE_BYTES = 2_048;

  private final LinkedHashMap<String, SessionState> states = new LinkedHashMap<>(16, 0.75f, true);
  private long bytes;

  /** The kept state of {@code sessionId}, which the caller now owns; null if none. */
  synchronized SessionState take(String sessionId) {
    SessionState state = states.remove(sessionId);
    if (state != null) {
      bytes -= weight(state);
    }
    return state;
  }

  /** Keeps the state of a run that ended. */
  synchronized void keep(SessionState state) {
    long weight = weight(state);
    if (weight > MAX_BYTES / 4) {
      // one session may not push every other out: its next run reads its log instead
      SessionState previous = states.remove(state.sessionId());
      if (previous != null) {
        bytes -= weight(previous);
      }
      return;
    }
    SessionState previous = states.put(state.sessionId(), state);
    if (previous != null) {
      bytes -= weight(previous);
    }
    bytes += weight;
    Iterator<Map.Entry<String, SessionState>> oldest = states.entrySet().iterator();
    while ((bytes > MAX_BYTES || states.size() > MAX_SESSIONS) && oldest.hasNext()) {
      bytes -= weight(oldest.next().getValue());
      oldest.remove();
    }
  }

  synchronized int size() {
    return states.size();
  }

  private static long weight(SessionState state) {
    long weight = STATE_BYTES;
    for (var event : state.conversation()) {
      weight += event.getSerializedSize();
    }
    return weight;
  }
}
