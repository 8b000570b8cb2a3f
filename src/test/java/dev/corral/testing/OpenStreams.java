package dev.corral.testing;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import dev.corral.proto.v1.AgentServiceGrpc;
import dev.corral.proto.v1.Session;
import dev.corral.proto.v1.SessionServiceGrpc;
import dev.corral.proto.v1.StreamEventsRequest;
import io.grpc.Channel;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

/** The event streams a test opens, each cancelled at its end if still open ({@link #cancelAll}). */
public final class OpenStreams {

  private static final Duration WAIT = Duration.ofSeconds(10);

  private final List<StreamRecorder> streams = new ArrayList<>();

  /** A new session of {@code member} with one event in its log. */
  public static Session sessionWithAnEvent(Channel member) {
    SessionServiceGrpc.SessionServiceBlockingStub sessions =
        SessionServiceGrpc.newBlockingStub(member);
    Session session = Fixtures.createSession(AgentServiceGrpc.newBlockingStub(member), sessions);
    sessions.emitEvent(Fixtures.emit(session.getId(), "hello"));
    return session;
  }

  /** A stream of {@code sessionId}'s events from its start. */
  public StreamRecorder follow(Channel member, String sessionId) {
    StreamRecorder stream =
        StreamRecorder.follow(
            member, StreamEventsRequest.newBuilder().setSessionId(sessionId).build());
    streams.add(stream);
    return stream;
  }

  /** A stream that delivered the session's first event (and is still open). */
  public StreamRecorder established(Channel member, String sessionId) {
    StreamRecorder stream = follow(member, sessionId);
    await().atMost(WAIT).until(() -> !stream.events().isEmpty() || stream.closedWith() != null);
    assertThat(stream.closedWith()).isNull();
    return stream;
  }

  public void cancelAll() {
    streams.forEach(
        stream -> {
          if (stream.closedWith() == null) {
            stream.cancel();
          }
        });
  }
}
