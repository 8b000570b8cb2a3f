package dev.corral.testing;

import static org.awaitility.Awaitility.await;

import dev.corral.proto.v1.Event;
import dev.corral.proto.v1.GetEventsRequest;
import dev.corral.proto.v1.GetSessionRequest;
import dev.corral.proto.v1.Session;
import dev.corral.proto.v1.SessionServiceGrpc;
import dev.corral.proto.v1.SessionStatus;
import dev.corral.proto.v1.StopReasonType;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

/** Reads sessions and logs for assertions. */
public final class SessionLogs {

  private SessionLogs() {}

  public static List<Event> log(
      SessionServiceGrpc.SessionServiceBlockingStub sessions, String sessionId) {
    List<Event> events = new ArrayList<>();
    long after = 0;
    while (true) {
      var page =
          sessions.getEvents(
              GetEventsRequest.newBuilder()
                  .setSessionId(sessionId)
                  .setAfterSeq(after)
                  .setPageSize(1000)
                  .build());
      events.addAll(page.getEventsList());
      if (!page.getHasMore()) {
        return events;
      }
      after = events.get(events.size() - 1).getSeq();
    }
  }

  public static List<String> types(List<Event> events) {
    return events.stream().map(Event::getType).toList();
  }

  public static Session get(
      SessionServiceGrpc.SessionServiceBlockingStub sessions, String sessionId) {
    return sessions
        .getSession(GetSessionRequest.newBuilder().setSessionId(sessionId).build())
        .getSession();
  }

  /** Waits until the session idles for {@code reason} and returns it. */
  public static Session awaitIdle(
      SessionServiceGrpc.SessionServiceBlockingStub sessions,
      String sessionId,
      StopReasonType reason) {
    await()
        .atMost(Duration.ofSeconds(20))
        .until(
            () -> {
              Session session = get(sessions, sessionId);
              return session.getStatus() == SessionStatus.SESSION_STATUS_IDLE
                  && session.getStopReason().getType() == reason;
            });
    return get(sessions, sessionId);
  }
}
