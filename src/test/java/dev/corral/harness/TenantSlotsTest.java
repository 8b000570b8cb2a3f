package dev.corral.harness;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import dev.corral.proto.v1.AgentServiceGrpc;
import dev.corral.proto.v1.ArchiveSessionRequest;
import dev.corral.proto.v1.CreateAgentRequest;
import dev.corral.proto.v1.CreateSessionRequest;
import dev.corral.proto.v1.Session;
import dev.corral.proto.v1.SessionServiceGrpc;
import dev.corral.testing.FakeAnthropic;
import dev.corral.testing.FakeAnthropic.Reply;
import dev.corral.testing.Fixtures;
import dev.corral.testing.HarnessTestProfile;
import dev.corral.testing.InjectFakeAnthropic;
import dev.corral.testing.SessionLogs;
import dev.corral.testing.TestCredentials;
import io.grpc.Channel;
import io.quarkus.grpc.GrpcClient;
import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.TestProfile;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import org.junit.jupiter.api.Test;

/**
 * One tenant cannot take every harness slot of a replica: with four slots, a tenant whose sessions
 * all wait on the model holds two, and another tenant's session still runs.
 */
@QuarkusTest
@TestProfile(TenantSlotsTest.Profile.class)
class TenantSlotsTest {

  private static final Duration WAIT = Duration.ofSeconds(20);

  @GrpcClient("corral")
  Channel channel;

  @InjectFakeAnthropic FakeAnthropic model;

  @jakarta.inject.Inject Dispatcher dispatcher;

  @Test
  void aTenantWhoseSessionsAllWaitHoldsOnlyItsShareOfTheReplicasSlots() {
    // Given tenant A with five sessions whose model calls never end, on a replica of four slots
    model.reset();
    String busy = "busy-" + UUID.randomUUID();
    String quick = "quick-" + UUID.randomUUID();
    model.fallback(
        request ->
            request.path("messages").toString().contains(busy) ? Reply.hang() : Reply.text("ok"));
    Channel tenantA = TestCredentials.memberOfNewTenant(channel, "greedy");
    Channel tenantB = TestCredentials.memberOfNewTenant(channel, "patient");
    // (with more than one tenant, a tenant's default share is half the replica's slots)
    await().atMost(WAIT).until(() -> dispatcher.share() == 2);
    List<Session> greedy = new ArrayList<>();
    for (int i = 0; i < 5; i++) {
      greedy.add(start(tenantA, busy + " " + i));
    }

    // Then two of them run (half the slots), and the others wait with their work pending
    await().atMost(WAIT).until(() -> model.requestsMentioning(busy).size() == 2);
    await()
        .during(Duration.ofSeconds(2))
        .atMost(Duration.ofSeconds(4))
        .until(() -> model.requestsMentioning(busy).size() == 2);

    // When tenant B starts a session
    Session other = start(tenantB, quick);

    // Then it runs at once to its answer
    SessionServiceGrpc.SessionServiceBlockingStub sessionsOfB =
        SessionServiceGrpc.newBlockingStub(tenantB);
    await()
        .atMost(WAIT)
        .until(
            () ->
                SessionLogs.log(sessionsOfB, other.getId()).stream()
                    .anyMatch(
                        event ->
                            event.hasAgentMessage()
                                && event.getAgentMessage().toString().contains("ok")));

    // And when one of A's running sessions ends, the next of A's takes its slot
    Map<String, Session> byMarker = new HashMap<>();
    for (int i = 0; i < greedy.size(); i++) {
      byMarker.put(busy + " " + i, greedy.get(i));
    }
    String running =
        byMarker.keySet().stream()
            .filter(marker -> !model.requestsMentioning(marker).isEmpty())
            .findFirst()
            .orElseThrow();
    SessionServiceGrpc.SessionServiceBlockingStub sessionsOfA =
        SessionServiceGrpc.newBlockingStub(tenantA);
    sessionsOfA.archiveSession(
        ArchiveSessionRequest.newBuilder().setSessionId(byMarker.get(running).getId()).build());
    await().atMost(WAIT).until(() -> model.requestsMentioning(busy).size() == 3);
    assertThat(model.violations()).isEmpty();
    for (Session session : greedy) {
      sessionsOfA.archiveSession(
          ArchiveSessionRequest.newBuilder().setSessionId(session.getId()).build());
    }
  }

  private static Session start(Channel member, String text) {
    String agent =
        AgentServiceGrpc.newBlockingStub(member)
            .createAgent(
                CreateAgentRequest.newBuilder().setName("talker").setModel("claude-test").build())
            .getAgent()
            .getId();
    return SessionServiceGrpc.newBlockingStub(member)
        .createSession(
            CreateSessionRequest.newBuilder()
                .setAgentId(agent)
                .addInitialEvents(Fixtures.userMessage(text))
                .build())
        .getSession();
  }

  /** The harness profile on a replica of four slots, each tenant's share left to its default. */
  public static class Profile extends HarnessTestProfile {
    @Override
    public Map<String, String> getConfigOverrides() {
      return overriddenWith("corral.harness.max-concurrent-sessions", "4");
    }
  }
}
