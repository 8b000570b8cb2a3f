package dev.corral.harness;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import dev.corral.proto.v1.AgentServiceGrpc;
import dev.corral.proto.v1.AgentToolset;
import dev.corral.proto.v1.CreateAgentRequest;
import dev.corral.proto.v1.CreateSessionRequest;
import dev.corral.proto.v1.Event;
import dev.corral.proto.v1.Session;
import dev.corral.proto.v1.SessionServiceGrpc;
import dev.corral.proto.v1.SessionStatus;
import dev.corral.proto.v1.StopReasonType;
import dev.corral.proto.v1.Tool;
import dev.corral.testing.FakeAnthropic;
import dev.corral.testing.FakeAnthropic.Reply;
import dev.corral.testing.Fixtures;
import dev.corral.testing.ServerProcess;
import dev.corral.testing.SessionLogs;
import io.zonky.test.db.postgres.embedded.EmbeddedPostgres;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.LongStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Two corral processes on one PostgreSQL. The one working a session is killed with -9 in the middle
 * of a turn; the other must finish the session within the take-over bound (lease TTL 3 s, one scan
 * of 0.5 s, and the call made again at once, not after a retry's backoff), and the log must stay
 * dense, duplicate-free, with one result per tool call.
 */
class TakeOverIT {

  private static final Duration TAKE_OVER_BOUND = Duration.ofMillis(4_500);

  @TempDir Path home;

  @Test
  void survivorFinishesTheSessionOfAKilledReplica() throws Exception {
    try (EmbeddedPostgres postgres =
            EmbeddedPostgres.builder()
                .setServerConfig("synchronous_commit", "on")
                .setServerConfig("fsync", "on")
                .start();
        FakeAnthropic model = FakeAnthropic.start()) {
      Map<String, String> environment = environment(postgres, model);
      try (ServerProcess first = ServerProcess.start(with(environment, "a"));
          ServerProcess second = ServerProcess.start(with(environment, "b"))) {
        // Given a session whose turn calls a tool, then hangs in the second model call
        String marker = "takeover-" + System.nanoTime();
        model.enqueue(Reply.toolUse("toolu_1", "bash", "{\"command\":\"ls\"}"), Reply.hang());
        model.fallback(request -> Reply.text("Finished after the take-over."));
        SessionServiceGrpc.SessionServiceBlockingStub sessions =
            SessionServiceGrpc.newBlockingStub(first.channel());
        Session session = createSession(first, marker);
        await()
            .atMost(Duration.ofSeconds(30))
            .until(() -> model.requestsMentioning(marker).size() == 2);

        // When the replica that works it is killed
        String holder = SessionLogs.get(sessions, session.getId()).getLease().getHolder();
        ServerProcess victim = holder.endsWith("-" + first.pid()) ? first : second;
        ServerProcess survivor = victim == first ? second : first;
        Instant killed = Instant.now();
        victim.kill();

        // Then the survivor re-issues the unfinished call within the bound, and finishes the turn
        SessionServiceGrpc.SessionServiceBlockingStub survivorSessions =
            SessionServiceGrpc.newBlockingStub(survivor.channel());
        await()
            .atMost(Duration.ofSeconds(30))
            .until(() -> model.requestsMentioning(marker).size() >= 3);
        Duration takeOver =
            Duration.between(killed, model.requestsMentioning(marker).get(2).arrivedAt());
        await()
            .atMost(Duration.ofSeconds(30))
            .until(
                () -> {
                  Session now = SessionLogs.get(survivorSessions, session.getId());
                  return now.getStatus() == SessionStatus.SESSION_STATUS_IDLE
                      && now.getStopReason().getType() == StopReasonType.STOP_REASON_TYPE_END_TURN;
                });
        System.out.println("kill -9 to the survivor's model request: " + takeOver);
        assertThat(takeOver).isLessThanOrEqualTo(TAKE_OVER_BOUND);
        assertThat(SessionLogs.get(survivorSessions, session.getId()).getLease().getEpoch())
            .isGreaterThan(1);

        List<Event> events = SessionLogs.log(survivorSessions, session.getId());
        assertThat(events)
            .extracting(Event::getSeq)
            .containsExactlyElementsOf(LongStream.rangeClosed(1, events.size()).boxed().toList());
        assertThat(events).extracting(Event::getId).doesNotHaveDuplicates();
        Map<String, Integer> results = new HashMap<>();
        events.stream()
            .filter(Event::hasAgentToolResult)
            .forEach(e -> results.merge(e.getAgentToolResult().getToolUseId(), 1, Integer::sum));
        events.stream()
            .filter(Event::hasAgentToolUse)
            .forEach(use -> assertThat(results.get(use.getId())).as(use.getId()).isEqualTo(1));
        assertThat(events.stream().filter(Event::hasAgentMessage)).hasSize(1);
        assertThat(events.stream().filter(Event::hasSpanModelRequestStart))
            .hasSameSizeAs(events.stream().filter(Event::hasSpanModelRequestEnd).toList());
      }
    }
  }

  private static Session createSession(ServerProcess server, String marker) {
    String agentId =
        AgentServiceGrpc.newBlockingStub(server.channel())
            .createAgent(
                CreateAgentRequest.newBuilder()
                    .setName("take-over")
                    .setModel("claude-test")
                    .addTools(Tool.newBuilder().setToolset(AgentToolset.getDefaultInstance()))
                    .build())
            .getAgent()
            .getId();
    return SessionServiceGrpc.newBlockingStub(server.channel())
        .createSession(
            CreateSessionRequest.newBuilder()
                .setAgentId(agentId)
                .addInitialEvents(Fixtures.userMessage(marker))
                .build())
        .getSession();
  }

  private Map<String, String> environment(EmbeddedPostgres postgres, FakeAnthropic model) {
    String url = "localhost:" + postgres.getPort() + "/postgres";
    return Map.of(
        "QUARKUS_DATASOURCE_REACTIVE_URL",
        "postgresql://" + url,
        "QUARKUS_DATASOURCE_JDBC_URL",
        "jdbc:postgresql://" + url,
        "QUARKUS_DATASOURCE_USERNAME",
        "postgres",
        "ANTHROPIC_BASE_URL",
        model.baseUrl(),
        "ANTHROPIC_API_KEY",
        FakeAnthropic.API_KEY);
  }

  private Map<String, String> with(Map<String, String> environment, String name) {
    Map<String, String> own = new HashMap<>(environment);
    own.put("CORRAL_HOME", home.resolve(name).toString());
    return own;
  }
}
