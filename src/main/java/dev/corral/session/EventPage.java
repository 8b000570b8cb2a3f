package dev.corral.session;

import dev.corral.proto.v1.Event;
import java.util.List;

/**
 * Events of a slice in ascending seq order.
 *
 * @param hasMore more events exist beyond the page in the slice's direction
 * @param lastSeq the session's last seq in the same snapshot as the events
 */
public record EventPage(List<Event> events, boolean hasMore, long lastSeq) {}
