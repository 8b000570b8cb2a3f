package dev.corral.session;

import dev.corral.proto.v1.Event;
import dev.corral.proto.v1.EventDelta;

/** One item of a followed session: a stored event, or (if asked for) a live delta. */
public record Tailed(Event event, EventDelta delta) {

  static Tailed of(Event event) {
    return new Tailed(event, null);
  }

  static Tailed of(EventDelta delta) {
    return new Tailed(null, delta);
  }
}
