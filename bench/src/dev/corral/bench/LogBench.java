package dev.corral.bench;

import dev.corral.proto.v1.AgentServiceGrpc;
import dev.corral.proto.v1.ContentBlock;
import dev.corral.proto.v1.CreateAgentRequest;
import dev.corral.proto.v1.CreateSessionRequest;
import dev.corral.proto.v1.EmitEventRequest;
import dev.corral.proto.v1.Event;
import dev.corral.proto.v1.SessionServiceGrpc;
import dev.corral.proto.v1.StreamEventsRequest;
import dev.corral.proto.v1.StreamEventsResponse;
import dev.corral.proto.v1.TextBlock;
import dev.corral.proto.v1.UserMessage;
import dev.corral.testing.ServerProcess;
import io.grpc.ManagedChannel;
import io.grpc.stub.StreamObserver;
import io.zonky.test.db.postgres.embedded.EmbeddedPostgres;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import javax.sql.DataSource;

/**
 * Measures, in one run against one PostgreSQL: raw single-row INSERT commits (1 and 16 clients),
 * EmitEvent over gRPC (1 session; 16 sessions in parallel), and live-tail latency (append committed,
 * i.e. the event's processed_at, to the event received by a StreamEvents subscriber).
 */
public final class LogBench {

  private static final byte[] PAYLOAD = new byte[120];
  private static final int CLIENTS = 16;

  private LogBench() {}

  public static void main(String[] args) throws Exception {
    int seconds = Integer.parseInt(args[0]);
    System.out.printf("corral log benchmark: %d s per phase (+%d s warm-up), %d cores, %s%n",
        seconds, Math.max(2, seconds / 3), Runtime.getRuntime().availableProcessors(), Instant.now());
    try (EmbeddedPostgres postgres = EmbeddedPostgres.builder().setServerConfig("max_connections", "200").start()) {
      DataSource database = postgres.getPostgresDatabase();
      Result raw1 = rawInserts(database, 1, seconds);
      Result raw16 = rawInserts(database, CLIENTS, seconds);

      Path home = Files.createTempDirectory("corral-bench-");
      String url = "localhost:" + postgres.getPort() + "/postgres";
      try (ServerProcess server = ServerProcess.start(Map.of(
          "CORRAL_HOME", home.toString(),
          "QUARKUS_DATASOURCE_REACTIVE_URL", "postgresql://" + url,
          "QUARKUS_DATASOURCE_JDBC_URL", "jdbc:postgresql://" + url,
          "QUARKUS_DATASOURCE_USERNAME", "postgres",
          "QUARKUS_LOG_LEVEL", "WARN"))) {
        ManagedChannel channel = server.channel();
        String agentId = AgentServiceGrpc.newBlockingStub(channel)
            .createAgent(CreateAgentRequest.newBuilder().setName("bench").setModel("claude-bench").build())
            .getAgent().getId();
        Result emit1 = emits(channel, agentId, 1, seconds);
        Result emit16 = emits(channel, agentId, CLIENTS, seconds);
        Latencies tail = tailLatency(channel, agentId, seconds);
        report(raw1, raw16, emit1, emit16, tail);
      }
    }
  }

  private record Result(String name, int clients, Latencies latencies, double perSecond) {
    String line() {
      return String.format("%-34s %9.0f /s   %s", name + " (" + clients + ")", perSecond, latencies.summary());
    }
  }

  private static Result rawInserts(DataSource database, int clients, int seconds) throws Exception {
    try (Connection setup = database.getConnection()) {
      setup.createStatement().execute(
          "CREATE TABLE IF NOT EXISTS bench_raw (id bigserial PRIMARY KEY, session_id text NOT NULL, "
              + "created_at timestamptz NOT NULL DEFAULT clock_timestamp(), body bytea NOT NULL)");
    }
    return measure("raw INSERT commit", clients, seconds, client -> {
      Connection connection = database.getConnection();
      PreparedStatement insert = connection.prepareStatement("INSERT INTO bench_raw (session_id, body) VALUES (?, ?)");
      insert.setString(1, "client-" + client);
      insert.setBytes(2, PAYLOAD);
      return () -> insert.executeUpdate();
    });
  }

  private static Result emits(ManagedChannel channel, String agentId, int sessions, int seconds) throws Exception {
    return measure("EmitEvent over gRPC, sessions", sessions, seconds, client -> {
      SessionServiceGrpc.SessionServiceBlockingStub stub = SessionServiceGrpc.newBlockingStub(channel);
      String sessionId = stub.createSession(CreateSessionRequest.newBuilder().setAgentId(agentId).build())
          .getSession().getId();
      EmitEventRequest request = EmitEventRequest.newBuilder().setSessionId(sessionId).setEvent(message()).build();
      return () -> stub.emitEvent(request);
    });
  }

  /** Appends one event every 5 ms and records processed_at → received by a subscriber. */
  private static Latencies tailLatency(ManagedChannel channel, String agentId, int seconds) throws Exception {
    SessionServiceGrpc.SessionServiceBlockingStub stub = SessionServiceGrpc.newBlockingStub(channel);
    String sessionId = stub.createSession(CreateSessionRequest.newBuilder().setAgentId(agentId).build())
        .getSession().getId();
    Latencies latencies = new Latencies();
    AtomicInteger received = new AtomicInteger();
    int warmUp = 200;
    int total = warmUp + seconds * 200;
    CountDownLatch done = new CountDownLatch(1);
    SessionServiceGrpc.newStub(channel).streamEvents(
        StreamEventsRequest.newBuilder().setSessionId(sessionId).build(),
        new StreamObserver<>() {
          @Override
          public void onNext(StreamEventsResponse item) {
            Instant now = Instant.now();
            Instant appended = Instant.ofEpochSecond(
                item.getEvent().getProcessedAt().getSeconds(), item.getEvent().getProcessedAt().getNanos());
            if (received.incrementAndGet() > warmUp) {
              synchronized (latencies) {
                latencies.record(java.time.Duration.between(appended, now).toNanos());
              }
            }
            if (received.get() == total) {
              done.countDown();
            }
          }

          @Override
          public void onError(Throwable failure) {
            failure.printStackTrace();
            done.countDown();
          }

          @Override
          public void onCompleted() {}
        });
    EmitEventRequest request = EmitEventRequest.newBuilder().setSessionId(sessionId).setEvent(message()).build();
    for (int i = 0; i < total; i++) {
      stub.emitEvent(request);
      TimeUnit.MILLISECONDS.sleep(5);
    }
    done.await(60, TimeUnit.SECONDS);
    return latencies;
  }

  interface Client {
    Callable<Object> open(int client) throws Exception;
  }

  /** Runs {@code clients} loops of the operation: a warm-up, then {@code seconds} of measurement. */
  private static Result measure(String name, int clients, int seconds, Client factory) throws Exception {
    ExecutorService pool = Executors.newFixedThreadPool(clients);
    List<Callable<Object>> operations = new ArrayList<>();
    for (int c = 0; c < clients; c++) {
      operations.add(factory.open(c));
    }
    runFor(pool, operations, Math.max(2, seconds / 3), false);
    long start = System.nanoTime();
    Latencies all = runFor(pool, operations, seconds, true);
    double elapsed = (System.nanoTime() - start) / 1e9;
    pool.shutdown();
    return new Result(name, clients, all, all.count() / elapsed);
  }

  private static Latencies runFor(ExecutorService pool, List<Callable<Object>> operations, int seconds, boolean keep)
      throws Exception {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(seconds);
    List<Future<Latencies>> futures = new ArrayList<>();
    for (Callable<Object> operation : operations) {
      futures.add(pool.submit(() -> {
        Latencies latencies = new Latencies();
        while (System.nanoTime() < deadline) {
          long begin = System.nanoTime();
          operation.call();
          latencies.record(System.nanoTime() - begin);
        }
        return latencies;
      }));
    }
    Latencies all = new Latencies();
    for (Future<Latencies> future : futures) {
      Latencies one = future.get();
      if (keep) {
        all.merge(one);
      }
    }
    return all;
  }

  private static Event message() {
    return Event.newBuilder()
        .setUserMessage(UserMessage.newBuilder().addContent(
            ContentBlock.newBuilder().setText(TextBlock.newBuilder().setText("x".repeat(100)))))
        .build();
  }

  private static void report(Result raw1, Result raw16, Result emit1, Result emit16, Latencies tail) {
    System.out.println();
    System.out.println(raw1.line());
    System.out.println(raw16.line());
    System.out.println(emit1.line());
    System.out.println(emit16.line());
    System.out.printf("%-34s %s%n", "live tail (commit -> subscriber)", tail.summary());
    System.out.println();
    double latencyRatio = emit1.latencies().percentileMillis(50) / raw1.latencies().percentileMillis(50);
    double throughputRatio = emit16.perSecond() / raw16.perSecond();
    System.out.printf("EmitEvent p50 / raw commit p50 (1 client)    = %.2f   target <= 2.0   %s%n",
        latencyRatio, latencyRatio <= 2.0 ? "met" : "NOT met");
    System.out.printf("EmitEvent 16 sessions / raw 16 clients (ops) = %.2f   target >= 0.5   %s%n",
        throughputRatio, throughputRatio >= 0.5 ? "met" : "NOT met");
    System.out.printf("live tail p50 = %.2f ms (target <= 10), p99 = %.2f ms (target <= 50)   %s%n",
        tail.percentileMillis(50), tail.percentileMillis(99),
        tail.percentileMillis(50) <= 10 && tail.percentileMillis(99) <= 50 ? "met" : "NOT met");
  }
}
