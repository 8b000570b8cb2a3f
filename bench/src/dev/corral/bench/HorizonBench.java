package dev.corral.bench;

import dev.corral.proto.v1.AgentServiceGrpc;
import dev.corral.proto.v1.CreateAgentRequest;
import dev.corral.proto.v1.CreateSessionRequest;
import dev.corral.proto.v1.EmitEventResponse;
import dev.corral.proto.v1.GetSessionRequest;
import dev.corral.proto.v1.Session;
import dev.corral.proto.v1.SessionServiceGrpc;
import dev.corral.proto.v1.SessionStatus;
import dev.corral.testing.FakeAnthropic;
import dev.corral.testing.FakeAnthropic.Reply;
import dev.corral.testing.Fixtures;
import dev.corral.testing.ServerProcess;
import io.zonky.test.db.postgres.embedded.EmbeddedPostgres;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * The harness against the length of a session's log (10, 1,000 and 10,240 events, all of them in
 * the model's context): the TTFT overhead of a new turn on the replica that ran the last one, and
 * the time a replica that never saw the session takes from a new message to the model request
 * (loading the whole log). The 10-event session is the baseline of the same run.
 */
public final class HorizonBench {

  private static final int EVENTS_PER_TURN = 6;

  private HorizonBench() {}

  public static void main(String[] args) throws Exception {
    int samples = Integer.parseInt(args[0]);
    System.out.printf(
        "corral horizon benchmark: %d TTFT samples per length, %d cores, %s%n",
        samples, Runtime.getRuntime().availableProcessors(), Instant.now());
    List<String> lines = new ArrayList<>();
    try (EmbeddedPostgres postgres = BenchServers.postgres();
        FakeAnthropic model = FakeAnthropic.start()) {
      model.fallback(request -> Reply.text("ok"));
      Map<String, String> environment = BenchServers.environment(postgres, model);
      Latencies baselineTtft = null;
      double baselineResume = 0;
      for (int length : new int[] {10, 1_000, 10_240}) {
        String sessionId;
        Latencies ttft;
        try (ServerProcess server =
            ServerProcess.start(BenchServers.with(environment, "w" + length))) {
          SessionServiceGrpc.SessionServiceBlockingStub sessions =
              SessionServiceGrpc.newBlockingStub(server.channel());
          // The JIT warms on a session of its own first, so that every length starts as warm.
          filled(server, sessions, model, 1_200);
          sessionId = filled(server, sessions, model, length);
          ttft = new Latencies();
          for (int i = 0; i < samples + 10; i++) {
            long took = turn(sessions, model, sessionId, "warm-" + length + "-" + i);
            if (i >= 10) {
              ttft.record(took);
            }
          }
        }
        // A replica that never saw the session: its first turn loads the whole log.
        Latencies resume = new Latencies();
        for (int round = 0; round < 3; round++) {
          try (ServerProcess fresh =
              ServerProcess.start(BenchServers.with(environment, "r" + length + "-" + round))) {
            SessionServiceGrpc.SessionServiceBlockingStub sessions =
                SessionServiceGrpc.newBlockingStub(fresh.channel());
            resume.record(turn(sessions, model, sessionId, "resume-" + length + "-" + round));
          }
        }
        lines.add(
            String.format(
                "%6d events  TTFT overhead %s   resume on a fresh replica %s",
                length, ttft.summary(), resume.summary()));
        if (baselineTtft == null) {
          baselineTtft = ttft;
          baselineResume = resume.percentileMillis(50);
        } else {
          lines.add(
              String.format(
                  "              vs 10 events: TTFT p50 x%.2f, resume p50 x%.2f",
                  ttft.percentileMillis(50) / baselineTtft.percentileMillis(50),
                  resume.percentileMillis(50) / baselineResume));
        }
        if (length == 10_240) {
          lines.add(
              String.format(
                  "10,240 events: resume p50 = %.0f ms (target <= 1000) %s; TTFT overhead p50 = %.2f"
                      + " ms (target <= 5) %s",
                  resume.percentileMillis(50),
                  resume.percentileMillis(50) <= 1000 ? "met" : "NOT met",
                  ttft.percentileMillis(50),
                  ttft.percentileMillis(50) <= 5 ? "met" : "NOT met"));
        }
      }
    }
    System.out.println();
    lines.forEach(System.out::println);
  }

  /** A session whose log holds {@code length} events (rounded up to whole turns). */
  private static String filled(
      ServerProcess server,
      SessionServiceGrpc.SessionServiceBlockingStub sessions,
      FakeAnthropic model,
      int length)
      throws Exception {
    String agent =
        AgentServiceGrpc.newBlockingStub(server.channel())
            .createAgent(
                CreateAgentRequest.newBuilder().setName("horizon").setModel("claude-bench").build())
            .getAgent()
            .getId();
    String sessionId =
        sessions
            .createSession(CreateSessionRequest.newBuilder().setAgentId(agent).build())
            .getSession()
            .getId();
    int turns = (length + EVENTS_PER_TURN - 1) / EVENTS_PER_TURN;
    for (int i = 1; i <= turns; i++) {
      sessions.emitEvent(Fixtures.emit(sessionId, "fill " + i));
      awaitIdleAt(sessions, sessionId, (long) i * EVENTS_PER_TURN);
      model.reset(); // it would keep every request body
    }
    return sessionId;
  }

  /** Sends a message and returns the nanoseconds from its append to the model request. */
  private static long turn(
      SessionServiceGrpc.SessionServiceBlockingStub sessions,
      FakeAnthropic model,
      String sessionId,
      String marker)
      throws Exception {
    long before = session(sessions, sessionId).getLastSeq();
    EmitEventResponse sent = sessions.emitEvent(Fixtures.emit(sessionId, marker));
    Instant appended =
        Instant.ofEpochSecond(
            sent.getEvent().getProcessedAt().getSeconds(),
            sent.getEvent().getProcessedAt().getNanos());
    FakeAnthropic.Received request = BenchServers.awaitRequest(model, marker);
    awaitIdleAt(sessions, sessionId, before + EVENTS_PER_TURN);
    model.reset();
    model.fallback(r -> Reply.text("ok"));
    return Duration.between(appended, request.arrivedAt()).toNanos();
  }

  /** Until the session idles at {@code seq} and its run has given the lease back. */
  private static void awaitIdleAt(
      SessionServiceGrpc.SessionServiceBlockingStub sessions, String sessionId, long seq) {
    org.awaitility.Awaitility.await("session " + sessionId + " idle at seq " + seq)
        .atMost(Duration.ofSeconds(60))
        .pollInterval(Duration.ofMillis(1))
        .until(
            () -> {
              Session session = session(sessions, sessionId);
              // A message sent before the lease is back waits for it.
              return session.getStatus() == SessionStatus.SESSION_STATUS_IDLE
                  && session.getLastSeq() >= seq
                  && !(session.hasLease() && session.getLease().hasExpiresAt());
            });
  }

  private static Session session(
      SessionServiceGrpc.SessionServiceBlockingStub sessions, String sessionId) {
    return sessions
        .getSession(GetSessionRequest.newBuilder().setSessionId(sessionId).build())
        .getSession();
  }
}
