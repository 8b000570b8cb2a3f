package dev.corral.session;

import dev.corral.proto.v1.Event;
import dev.corral.proto.v1.EventDelta;

/**
 * One item of a followed session: a stored event, (if asked for) a live delta, or the last item of
 * a stream whose session was deleted.
 */
public record Tailed(Event event, EventDelta delta, Kind kind) {

  /** What the item is. */
  public enum Kind {
    EVENT,
    DELTA,
    /** The session was deleted: nothing follows. */
    DELETED
  }

  static final Tailed DELETED = new Tailed(null, null, Kind.DELETED);

  static Tailed of(Event event) {
    return new Tailed(event, null, Kind.EVENT);
  }

  static Tailed of(EventDelta delta) {
    return new Tailed(null, delta, Kind.DELTA);
  }
}
