package dev.corral.session;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import dev.corral.proto.v1.DeleteSessionRequest;
import dev.corral.proto.v1.Session;
import dev.corral.proto.v1.SessionServiceGrpc;
import dev.corral.testing.OpenStreams;
import dev.corral.testing.StreamRecorder;
import dev.corral.testing.TestCredentials;
import io.grpc.Channel;
import io.grpc.Status;
import io.quarkus.grpc.GrpcClient;
import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.QuarkusTestProfile;
import io.quarkus.test.junit.TestProfile;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/** A tenant holds at most corral.session.max-streams-per-tenant live streams on a replica. */
@QuarkusTest
@TestProfile(StreamSlotsTest.Profile.class)
class StreamSlotsTest {

  private static final Duration WAIT = Duration.ofSeconds(10);
  private static final String UNKNOWN_SESSION = "sesn_00000000000000000000000000";

  @GrpcClient("corral")
  Channel channel;

  @jakarta.inject.Inject StreamSlots slots;

  private final OpenStreams streams = new OpenStreams();

  @AfterEach
  void stop() {
    streams.cancelAll();
  }

  @Test
  void aTenantHoldsAtMostItsStreamsAndGetsEachBackWhenAStreamEnds() throws Exception {
    // Given a tenant following a session with as many streams as it may (3)
    String keyOfA =
        TestCredentials.memberKeyOfNewTenantNamed(channel, "streams-a-" + System.nanoTime());
    Channel tenantA = io.grpc.ClientInterceptors.intercept(channel, TestCredentials.bearer(keyOfA));
    Session session = OpenStreams.sessionWithAnEvent(tenantA);
    // (streams that failed, at an unknown session, hold none)
    for (int i = 0; i < 3; i++) {
      StreamRecorder unknown = streams.follow(tenantA, UNKNOWN_SESSION);
      await().atMost(WAIT).until(() -> unknown.closedWith() != null);
      assertThat(unknown.closedWith().getCode()).isEqualTo(Status.Code.NOT_FOUND);
    }
    List<StreamRecorder> open = new ArrayList<>();
    for (int i = 0; i < 3; i++) {
      open.add(streams.established(tenantA, session.getId()));
    }

    // When it opens one more
    StreamRecorder refused = streams.follow(tenantA, session.getId());

    // Then that one is refused, saying which setting, and the others go on
    await().atMost(WAIT).until(() -> refused.closedWith() != null);
    assertThat(refused.closedWith().getCode()).isEqualTo(Status.Code.RESOURCE_EXHAUSTED);
    assertThat(refused.closedWith().getDescription())
        .contains("corral.session.max-streams-per-tenant");
    assertThat(open).allMatch(stream -> stream.closedWith() == null);
    // and an SSE stream is refused before it starts: a 429, which an EventSource does not retry
    // as it would an error event in a 200
    java.net.http.HttpResponse<String> sse =
        java.net.http.HttpClient.newHttpClient()
            .send(
                java.net.http.HttpRequest.newBuilder(
                        java.net.URI.create(
                            "http://localhost:18081/v1/sessions/"
                                + session.getId()
                                + "/events/stream"))
                    .header("x-api-key", keyOfA)
                    .header("accept", "text/event-stream")
                    .timeout(WAIT)
                    .build(),
                java.net.http.HttpResponse.BodyHandlers.ofString());
    assertThat(sse.statusCode()).isEqualTo(429);
    assertThat(sse.body()).contains("corral.session.max-streams-per-tenant");

    // And another tenant's streams are its own
    Channel tenantB = TestCredentials.memberOfNewTenant(channel, "streams-b");
    streams.established(tenantB, OpenStreams.sessionWithAnEvent(tenantB).getId());

    // And a stream the client closes gives its slot back
    open.get(0).cancel();
    await().atMost(WAIT).untilAsserted(() -> streams.established(tenantA, session.getId()));

    // And so does every stream of a deleted session
    SessionServiceGrpc.newBlockingStub(tenantA)
        .deleteSession(DeleteSessionRequest.newBuilder().setSessionId(session.getId()).build());
    Session next = OpenStreams.sessionWithAnEvent(tenantA);
    await()
        .atMost(WAIT)
        .untilAsserted(
            () -> {
              for (int i = 0; i < 3; i++) {
                streams.established(tenantA, next.getId());
              }
            });
  }

  @Test
  void tenantsTogetherHoldAtMostTheReplicasStreams() throws Exception {
    // Given no stream open (those of earlier tests give their slots back as they end)
    await().atMost(WAIT).until(() -> slots.open() == 0);
    // and one tenant with three streams, another with two: the replica's five
    Channel tenantA = TestCredentials.memberOfNewTenant(channel, "streams-a");
    Session sessionOfA = OpenStreams.sessionWithAnEvent(tenantA);
    List<StreamRecorder> ofA = new ArrayList<>();
    for (int i = 0; i < 3; i++) {
      ofA.add(streams.established(tenantA, sessionOfA.getId()));
    }
    Channel tenantB = TestCredentials.memberOfNewTenant(channel, "streams-b");
    Session sessionOfB = OpenStreams.sessionWithAnEvent(tenantB);
    for (int i = 0; i < 2; i++) {
      streams.established(tenantB, sessionOfB.getId());
    }

    // When the second opens a third, which its own limit allows
    StreamRecorder refused = streams.follow(tenantB, sessionOfB.getId());

    // Then it is refused, saying which setting, and the others go on
    await().atMost(WAIT).until(() -> refused.closedWith() != null);
    assertThat(refused.closedWith().getCode()).isEqualTo(Status.Code.RESOURCE_EXHAUSTED);
    assertThat(refused.closedWith().getDescription()).contains("corral.session.max-streams)");
    assertThat(ofA).allMatch(stream -> stream.closedWith() == null);
    assertThat(slots.open()).isEqualTo(5);

    // And once the first closes one, the second gets its third
    ofA.get(0).cancel();
    await().atMost(WAIT).untilAsserted(() -> streams.established(tenantB, sessionOfB.getId()));
    assertThat(slots.open()).isEqualTo(5);
  }

  /** Three streams per tenant, five in all. */
  public static class Profile implements QuarkusTestProfile {
    @Override
    public Map<String, String> getConfigOverrides() {
      return Map.of(
          "corral.session.max-streams-per-tenant", "3", "corral.session.max-streams", "5");
    }
  }
}
