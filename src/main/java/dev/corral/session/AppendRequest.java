package dev.corral.session;

import dev.corral.common.Tenant;
import java.util.List;

/**
 * One atomic append of one or more events to a session's log.
 *
 * @param expectedLastSeq null, or the seq the session's log must end at for the append to happen
 * @param leaseEpoch null for client events; for harness events the epoch of the lease the writer
 *     holds, checked against the session's current epoch and expiry in the append statement
 * @param claim null, or a lease to take in the same statement if none is live
 * @param tenant the tenant of the client that emits the events: the session must be one of its
 *     (checked in the append statement); null for corral's own harness, which the lease epoch binds
 *     to the session
 */
public record AppendRequest(
    String sessionId,
    List<NewEvent> events,
    Long expectedLastSeq,
    Long leaseEpoch,
    LeaseClaim claim,
    Tenant tenant) {

  public AppendRequest {
    events = List.copyOf(events);
    if (events.isEmpty()) {
      throw new IllegalArgumentException("an append needs at least one event");
    }
  }

  public AppendRequest(
      String sessionId, List<NewEvent> events, Long expectedLastSeq, Long leaseEpoch) {
    this(sessionId, events, expectedLastSeq, leaseEpoch, null, null);
  }

  public static AppendRequest of(String sessionId, NewEvent event) {
    return new AppendRequest(sessionId, List.of(event), null, null);
  }

  AppendRequest claiming(LeaseClaim leaseClaim) {
    return new AppendRequest(sessionId, events, expectedLastSeq, leaseEpoch, leaseClaim, tenant);
  }

  AppendRequest within(Tenant owner) {
    return new AppendRequest(sessionId, events, expectedLastSeq, leaseEpoch, claim, owner);
  }
}
