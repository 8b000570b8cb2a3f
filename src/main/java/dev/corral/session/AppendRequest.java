package dev.corral.session;

import java.util.List;

/**
 * One atomic append of one or more events to a session's log.
 *
 * @param expectedLastSeq null, or the seq the session's log must end at for the append to happen
 * @param leaseEpoch null for client events; for harness events the epoch of the lease the writer
 *     holds, checked against the session's current epoch and expiry in the append statement
 * @param claim null, or a lease to take in the same statement if none is live
 */
public record AppendRequest(
    String sessionId,
    List<NewEvent> events,
    Long expectedLastSeq,
    Long leaseEpoch,
    LeaseClaim claim) {

  public AppendRequest {
    events = List.copyOf(events);
    if (events.isEmpty()) {
      throw new IllegalArgumentException("an append needs at least one event");
    }
  }

  public AppendRequest(
      String sessionId, List<NewEvent> events, Long expectedLastSeq, Long leaseEpoch) {
    this(sessionId, events, expectedLastSeq, leaseEpoch, null);
  }

  public static AppendRequest of(String sessionId, NewEvent event) {
    return new AppendRequest(sessionId, List.of(event), null, null);
  }

  AppendRequest claiming(LeaseClaim leaseClaim) {
    return new AppendRequest(sessionId, events, expectedLastSeq, leaseEpoch, leaseClaim);
  }
}
