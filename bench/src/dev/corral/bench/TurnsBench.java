package dev.corral.bench;

import com.fasterxml.jackson.databind.JsonNode;
import dev.corral.proto.v1.AgentServiceGrpc;
import dev.corral.proto.v1.AgentToolset;
import dev.corral.proto.v1.CreateAgentRequest;
import dev.corral.proto.v1.CreateSessionRequest;
import dev.corral.proto.v1.EmitEventResponse;
import dev.corral.proto.v1.GetSessionRequest;
import dev.corral.proto.v1.SessionServiceGrpc;
import dev.corral.proto.v1.SessionStatus;
import dev.corral.proto.v1.Tool;
import dev.corral.testing.FakeAnthropic;
import dev.corral.testing.FakeAnthropic.Reply;
import dev.corral.testing.Fixtures;
import dev.corral.testing.ServerProcess;
import io.zonky.test.db.postgres.embedded.EmbeddedPostgres;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.TimeUnit;

/**
 * Many active sessions on one replica: rounds of {@code sessions} concurrent turns against the fake
 * model, each a user.message, three session_log tool calls (a built-in tool that needs no sandbox,
 * so the harness is measured, not bubblewrap) and an end_turn. Reports turns/s, CPU per turn
 * (corral and PostgreSQL) and the TTFT overhead of the turns' first model requests. Then 10,000
 * sessions with one finished turn each are left idle, and the server's resident memory and live
 * heap (after a full GC) are compared with the same server before them.
 */
public final class TurnsBench {

  private static final int ROUNDS = 3;
  private static final int IDLE = 10_000;

  /** When the first model request of each turn arrived, by the turn's marker. */
  private static final Map<String, Instant> FIRST_REQUEST =
      new java.util.concurrent.ConcurrentHashMap<>();

  private TurnsBench() {}

  public static void main(String[] args) throws Exception {
    int sessions = Integer.parseInt(args[0]);
    System.out.printf(
        "corral turns benchmark: %d rounds of %d concurrent turns (3 tool calls each), then %d"
            + " idle sessions, %d cores, %s%n",
        ROUNDS, sessions, IDLE, Runtime.getRuntime().availableProcessors(), Instant.now());
    try (EmbeddedPostgres postgres = BenchServers.postgres();
        FakeAnthropic model = FakeAnthropic.start()) {
      model.fallback(TurnsBench::reply);
      Map<String, String> environment = new HashMap<>(BenchServers.environment(postgres, model));
      environment.put("CORRAL_HARNESS_MAX_CONCURRENT_SESSIONS", Integer.toString(sessions));
      try (ServerProcess server = ServerProcess.start(environment)) {
        SessionServiceGrpc.SessionServiceBlockingStub stub =
            SessionServiceGrpc.newBlockingStub(server.channel());
        String agent = agent(server);
        CpuMeter meter = new CpuMeter(server.pid());
        round(stub, model, agent, sessions, "turn-"); // warm-up
        Latencies ttft = new Latencies();
        double seconds = 0;
        CpuMeter.Ticks used = new CpuMeter.Ticks(0, 0, 0);
        for (int round = 0; round < ROUNDS; round++) {
          CpuMeter.Ticks before = meter.now();
          long start = System.nanoTime();
          ttft.merge(round(stub, model, agent, sessions, "turn-"));
          seconds += (System.nanoTime() - start) / 1e9;
          used = used.plus(meter.now().minus(before));
        }
        long turns = (long) ROUNDS * sessions;
        System.out.println();
        System.out.printf(
            "%d concurrent turns x %d rounds: %.1f turns/s; CPU per turn: corral %.2f ms,"
                + " postgres %.2f ms (client %.2f ms)%n",
            sessions,
            ROUNDS,
            turns / seconds,
            used.server() * 10.0 / turns,
            used.postgres() * 10.0 / turns,
            used.client() * 10.0 / turns);
        System.out.printf(
            "TTFT overhead of the turns' first requests (user.message processed_at -> model): %s%n",
            ttft.summary());
        idle(server, stub, model, agent, sessions);
      }
    }
  }

  /** message → session_log ×3 → text, by the number of tool results the request carries. */
  private static Reply reply(JsonNode request) {
    Instant arrived = Instant.now();
    JsonNode messages = request.path("messages");
    String marker = messages.path(0).path("content").path(0).path("text").asText("");
    if (messages.size() == 1) {
      FIRST_REQUEST.putIfAbsent(marker, arrived);
    }
    if (marker.startsWith("idle-")) {
      return Reply.text("done");
    }
    int results = 0;
    for (JsonNode message : request.path("messages")) {
      for (JsonNode block : message.path("content")) {
        if ("tool_result".equals(block.path("type").asText())) {
          results++;
        }
      }
    }
    if (results < 3) {
      return Reply.toolUse(
          "toolu_" + UUID.randomUUID().toString().replace("-", ""), "session_log", "{\"limit\":5}");
    }
    return Reply.text("done");
  }

  /** Starts {@code count} turns at once on new sessions and waits for all; their TTFT overheads. */
  private static Latencies round(
      SessionServiceGrpc.SessionServiceBlockingStub stub,
      FakeAnthropic model,
      String agent,
      int count,
      String prefix)
      throws Exception {
    List<String> ids = new ArrayList<>();
    for (int i = 0; i < count; i++) {
      ids.add(
          stub.createSession(CreateSessionRequest.newBuilder().setAgentId(agent).build())
              .getSession()
              .getId());
    }
    List<String> markers = new ArrayList<>();
    List<Instant> appended = new ArrayList<>();
    for (String id : ids) {
      String marker = prefix + UUID.randomUUID();
      EmitEventResponse sent = stub.emitEvent(Fixtures.emit(id, marker));
      markers.add(marker);
      appended.add(
          Instant.ofEpochSecond(
              sent.getEvent().getProcessedAt().getSeconds(),
              sent.getEvent().getProcessedAt().getNanos()));
    }
    int finished = prefix.startsWith("idle-") ? 4 : 10;
    for (String id : ids) {
      awaitEndTurn(stub, id, finished);
    }
    Latencies ttft = new Latencies();
    for (int i = 0; i < count; i++) {
      Instant first = FIRST_REQUEST.remove(markers.get(i));
      ttft.record(Duration.between(appended.get(i), first).toNanos());
    }
    return ttft;
  }

  private static void awaitEndTurn(
      SessionServiceGrpc.SessionServiceBlockingStub stub, String id, int lastSeq)
      throws InterruptedException {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
    while (System.nanoTime() < deadline) {
      var session =
          stub.getSession(GetSessionRequest.newBuilder().setSessionId(id).build()).getSession();
      if (session.getStatus() == SessionStatus.SESSION_STATUS_IDLE
          && session.getLastSeq() > lastSeq) {
        return;
      }
      TimeUnit.MILLISECONDS.sleep(5);
    }
    throw new IllegalStateException("session " + id + " did not finish its turn");
  }

  /** 10,000 sessions with one finished turn, then idle: what they cost the server's memory. */
  private static void idle(
      ServerProcess server,
      SessionServiceGrpc.SessionServiceBlockingStub stub,
      FakeAnthropic model,
      String agent,
      int concurrency)
      throws Exception {
    long[] before = memory(server.pid());
    for (int done = 0; done < IDLE; done += concurrency) {
      round(stub, model, agent, Math.min(concurrency, IDLE - done), "idle-");
    }
    TimeUnit.SECONDS.sleep(5); // runs end, leases go back
    long[] after = memory(server.pid());
    System.out.printf(
        "%d idle sessions (one text-only turn each), harness on: RSS %d MB -> %d MB (%+d MB),"
            + " live heap after a full GC %d MB -> %d MB (%+d MB)   target <= 50 MB RSS   %s%n",
        IDLE,
        before[0] >> 20,
        after[0] >> 20,
        (after[0] - before[0]) >> 20,
        before[1] >> 20,
        after[1] >> 20,
        (after[1] - before[1]) >> 20,
        after[0] - before[0] <= 50L << 20 ? "met" : "NOT met");
  }

  /** Resident set size and the live heap after a full GC, in bytes. */
  private static long[] memory(long pid) throws Exception {
    String jcmd = Path.of(System.getProperty("java.home"), "bin", "jcmd").toString();
    new ProcessBuilder(jcmd, Long.toString(pid), "GC.run")
        .redirectErrorStream(true)
        .start()
        .waitFor();
    Process heap =
        new ProcessBuilder(jcmd, Long.toString(pid), "GC.heap_info")
            .redirectErrorStream(true)
            .start();
    String info = new String(heap.getInputStream().readAllBytes());
    heap.waitFor();
    long used = 0;
    java.util.regex.Matcher matcher = java.util.regex.Pattern.compile("used (\\d+)K").matcher(info);
    if (matcher.find()) {
      used = Long.parseLong(matcher.group(1)) << 10;
    }
    long rss = 0;
    for (String line : Files.readAllLines(Path.of("/proc", Long.toString(pid), "status"))) {
      if (line.startsWith("VmRSS:")) {
        rss = Long.parseLong(line.replaceAll("[^0-9]", "")) << 10;
      }
    }
    return new long[] {rss, used};
  }

  private static String agent(ServerProcess server) {
    return AgentServiceGrpc.newBlockingStub(server.channel())
        .createAgent(
            CreateAgentRequest.newBuilder()
                .setName("bench")
                .setModel("claude-test")
                .addTools(Tool.newBuilder().setToolset(AgentToolset.getDefaultInstance()))
                .build())
        .getAgent()
        .getId();
  }
}
