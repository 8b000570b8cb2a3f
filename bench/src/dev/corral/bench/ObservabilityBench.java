package dev.corral.bench;

import com.sun.net.httpserver.HttpServer;
import dev.corral.proto.v1.AgentServiceGrpc;
import dev.corral.proto.v1.CreateAgentRequest;
import dev.corral.proto.v1.CreateSessionRequest;
import dev.corral.proto.v1.EmitEventRequest;
import dev.corral.proto.v1.EmitEventResponse;
import dev.corral.proto.v1.SessionServiceGrpc;
import dev.corral.testing.FakeAnthropic;
import dev.corral.testing.FakeAnthropic.Reply;
import dev.corral.testing.Fixtures;
import dev.corral.testing.ServerProcess;
import io.zonky.test.db.postgres.embedded.EmbeddedPostgres;
import java.net.InetSocketAddress;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

/**
 * What metrics and traces cost: three servers on one PostgreSQL, one with both off ({@code
 * CORRAL_METRICS_ENABLED=false}), one with metrics (the default), one with metrics and traces
 * exported over OTLP/HTTP to a sink on loopback. In interleaved rounds: sequential EmitEvent calls
 * (corral's CPU per append, from /proc), then turns against the fake model (TTFT overhead, from the
 * message's processed_at to the request reaching the model).
 */
public final class ObservabilityBench {

  private static final int ROUNDS = 5;
  private static final List<String> MODES = List.of("off", "metrics", "metrics+traces");

  private ObservabilityBench() {}

  public static void main(String[] args) throws Exception {
    int calls = Integer.parseInt(args[0]);
    int turns = Math.max(20, calls / 10);
    System.out.printf(
        "corral observability benchmark: %d rounds of %d EmitEvent calls and %d turns per mode,"
            + " %d cores, %s%n",
        ROUNDS, calls, turns, Runtime.getRuntime().availableProcessors(), Instant.now());
    AtomicLong exported = new AtomicLong();
    HttpServer sink = otlpSink(exported);
    try (EmbeddedPostgres postgres = BenchServers.postgres();
        FakeAnthropic model = FakeAnthropic.start()) {
      model.fallback(request -> Reply.text("ok"));
      Map<String, String> base = BenchServers.environment(postgres, model);
      base.put("CORRAL_AUTH_PUBLIC_METRICS", "true");
      List<ServerProcess> servers = new ArrayList<>();
      try {
        for (String mode : MODES) {
          Map<String, String> environment = BenchServers.with(base, mode.replace('+', '-'));
          environment.put("CORRAL_REPLICA_ID", mode);
          if (mode.equals("off")) {
            environment.put("CORRAL_METRICS_ENABLED", "false");
          }
          if (mode.contains("traces")) {
            environment.put("QUARKUS_OTEL_SDK_DISABLED", "false");
            environment.put("QUARKUS_OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf");
            environment.put(
                "QUARKUS_OTEL_EXPORTER_OTLP_ENDPOINT",
                "http://127.0.0.1:" + sink.getAddress().getPort());
          }
          servers.add(ServerProcess.start(environment));
        }
        List<Latencies> appends = new ArrayList<>();
        List<Latencies> ttfts = new ArrayList<>();
        long[] serverTicks = new long[MODES.size()];
        long[] postgresTicks = new long[MODES.size()];
        List<EmitEventRequest> sessions = new ArrayList<>();
        List<String> agents = new ArrayList<>();
        for (ServerProcess server : servers) {
          appends.add(new Latencies());
          ttfts.add(new Latencies());
          agents.add(agent(server));
          sessions.add(session(server, agents.get(agents.size() - 1)));
        }
        for (int round = -1; round < ROUNDS; round++) {
          for (int m = 0; m < MODES.size(); m++) {
            ServerProcess server = servers.get(m);
            CpuMeter meter = new CpuMeter(server.pid());
            CpuMeter.Ticks before = meter.now();
            Latencies measured = emits(server, sessions.get(m), calls);
            CpuMeter.Ticks used = meter.now().minus(before);
            Latencies turned = turns(server, model, agents.get(m), MODES.get(m), turns);
            if (round >= 0) { // round -1 warms up
              appends.get(m).merge(measured);
              serverTicks[m] += used.server();
              postgresTicks[m] += used.postgres();
              ttfts.get(m).merge(turned);
            }
          }
        }
        long appended = (long) ROUNDS * calls;
        System.out.println();
        for (int m = 0; m < MODES.size(); m++) {
          System.out.printf(
              "%-15s EmitEvent %s   CPU per append: corral %.0f us, postgres %.0f us   TTFT"
                  + " overhead %s   %d corral_ series on /q/metrics%n",
              MODES.get(m),
              appends.get(m).summary(),
              serverTicks[m] * 1e4 / appended,
              postgresTicks[m] * 1e4 / appended,
              ttfts.get(m).summary(),
              series(servers.get(m)));
        }
        System.out.printf("OTLP export requests received by the sink: %d%n", exported.get());
        for (int m = 1; m < MODES.size(); m++) {
          double cpu = (double) serverTicks[m] / serverTicks[0];
          System.out.printf(
              "%-15s corral CPU per append %.2fx off (target <= 1.05x: %s), EmitEvent p50 %.2fx,"
                  + " TTFT overhead p50 %+.3f ms%n",
              MODES.get(m),
              cpu,
              cpu <= 1.05 ? "met" : "NOT met",
              appends.get(m).percentileMillis(50) / appends.get(0).percentileMillis(50),
              ttfts.get(m).percentileMillis(50) - ttfts.get(0).percentileMillis(50));
        }
      } finally {
        for (ServerProcess server : servers) {
          server.close();
        }
      }
    } finally {
      sink.stop(0);
    }
  }

  private static Latencies emits(ServerProcess server, EmitEventRequest request, int calls) {
    SessionServiceGrpc.SessionServiceBlockingStub stub =
        SessionServiceGrpc.newBlockingStub(server.channel());
    Latencies latencies = new Latencies();
    for (int i = 0; i < calls; i++) {
      long begin = System.nanoTime();
      stub.withDeadlineAfter(10, TimeUnit.SECONDS).emitEvent(request);
      latencies.record(System.nanoTime() - begin);
    }
    return latencies;
  }

  /** Turns on new sessions of this server; a turn another replica took is not counted. */
  private static Latencies turns(
      ServerProcess server, FakeAnthropic model, String agent, String replica, int turns)
      throws Exception {
    SessionServiceGrpc.SessionServiceBlockingStub sessions =
        SessionServiceGrpc.newBlockingStub(server.channel());
    Latencies latencies = new Latencies();
    for (int i = 0; i < turns; i++) {
      String session =
          sessions
              .createSession(CreateSessionRequest.newBuilder().setAgentId(agent).build())
              .getSession()
              .getId();
      String marker = "obs-" + replica + "-" + i + "-" + System.nanoTime();
      EmitEventResponse sent = sessions.emitEvent(Fixtures.emit(session, marker));
      Instant appended =
          Instant.ofEpochSecond(
              sent.getEvent().getProcessedAt().getSeconds(),
              sent.getEvent().getProcessedAt().getNanos());
      FakeAnthropic.Received request = BenchServers.awaitRequest(model, marker);
      BenchServers.awaitIdle(sessions, session);
      var start =
          sessions
              .getEvents(
                  dev.corral.proto.v1.GetEventsRequest.newBuilder()
                      .setSessionId(session)
                      .addTypes("span.model_request_start")
                      .build())
              .getEvents(0);
      if (start.getEmittedBy().getReplica().equals(replica)) {
        latencies.record(Duration.between(appended, request.arrivedAt()).toNanos());
      }
    }
    return latencies;
  }

  private static String agent(ServerProcess server) {
    return AgentServiceGrpc.newBlockingStub(server.channel())
        .createAgent(
            CreateAgentRequest.newBuilder().setName("bench").setModel("claude-test").build())
        .getAgent()
        .getId();
  }

  /** A session whose appends wake no harness: its agent's turns are not run (none is asked). */
  private static EmitEventRequest session(ServerProcess server, String agent) {
    String session =
        SessionServiceGrpc.newBlockingStub(server.channel())
            .createSession(CreateSessionRequest.newBuilder().setAgentId(agent).build())
            .getSession()
            .getId();
    return EmitEventRequest.newBuilder()
        .setSessionId(session)
        .setEvent(
            dev.corral.proto.v1.Event.newBuilder()
                .setUserInterrupt(dev.corral.proto.v1.UserInterrupt.getDefaultInstance()))
        .build();
  }

  private static long series(ServerProcess server) throws Exception {
    HttpResponse<String> metrics =
        HttpClient.newHttpClient()
            .send(
                HttpRequest.newBuilder(
                        URI.create("http://localhost:" + server.port() + "/q/metrics"))
                    .build(),
                HttpResponse.BodyHandlers.ofString());
    return metrics.body().lines().filter(line -> line.startsWith("corral_")).count();
  }

  /** An OTLP/HTTP receiver that takes every export and keeps nothing. */
  private static HttpServer otlpSink(AtomicLong exported) throws java.io.IOException {
    HttpServer server = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
    server.createContext(
        "/",
        exchange -> {
          exchange.getRequestBody().readAllBytes();
          exported.incrementAndGet();
          exchange.getResponseHeaders().add("content-type", "application/x-protobuf");
          exchange.sendResponseHeaders(200, -1);
          exchange.close();
        });
    server.start();
    return server;
  }
}
