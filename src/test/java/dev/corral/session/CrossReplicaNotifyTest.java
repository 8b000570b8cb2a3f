package dev.corral.session;

import static dev.corral.testing.Fixtures.createSession;
import static dev.corral.testing.Fixtures.userMessage;
import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import dev.corral.proto.v1.AgentServiceGrpc;
import dev.corral.proto.v1.Session;
import dev.corral.proto.v1.SessionServiceGrpc;
import dev.corral.proto.v1.StreamEventsRequest;
import dev.corral.testing.StreamRecorder;
import io.grpc.Channel;
import io.quarkus.grpc.GrpcClient;
import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.QuarkusTestProfile;
import io.quarkus.test.junit.TestProfile;
import java.time.Duration;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * With polling effectively off, only a NOTIFY from the other replica can wake the subscriber: this
 * proves the NOTIFY path on its own.
 */
@QuarkusTest
@TestProfile(CrossReplicaNotifyTest.PollingOff.class)
class CrossReplicaNotifyTest {

  public static class PollingOff implements QuarkusTestProfile {
    @Override
    public Map<String, String> getConfigOverrides() {
      return Map.of("corral.session.poll-interval", "1h");
    }
  }

  @GrpcClient("corral")
  Channel channel;

  @GrpcClient("corral")
  SessionServiceGrpc.SessionServiceBlockingStub sessions;

  @GrpcClient("corral")
  AgentServiceGrpc.AgentServiceBlockingStub agents;

  @Test
  void notificationFromAnotherReplicaWakesTheSubscriber() {
    // Given a subscriber waiting on an empty log
    Session session = createSession(agents, sessions);
    StreamRecorder stream =
        StreamRecorder.follow(
            channel, StreamEventsRequest.newBuilder().setSessionId(session.getId()).build());
    await().pollDelay(Duration.ofMillis(200)).until(() -> true);

    // When another replica appends and announces it
    AppendRequest request =
        AppendRequest.of(session.getId(), NewEvent.of(userMessage("from elsewhere")));
    OtherReplica.appendAndNotify(request);

    // Then
    await().atMost(Duration.ofSeconds(10)).until(() -> stream.seqs().size() == 1);
    assertThat(stream.events().get(0).getId()).isEqualTo(request.events().get(0).id());
    stream.cancel();
  }
}
