package dev.corral.bench;

import dev.corral.proto.v1.GetSessionRequest;
import dev.corral.proto.v1.Session;
import dev.corral.proto.v1.SessionServiceGrpc;
import dev.corral.proto.v1.SessionStatus;
import dev.corral.testing.FakeAnthropic;
import io.zonky.test.db.postgres.embedded.EmbeddedPostgres;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/** What the benchmarks share: the servers' environment, and waiting for a session's turn. */
final class BenchServers {

  private BenchServers() {}

  /** {@code transport} calling as the bootstrap admin of the test configuration. */
  static io.grpc.Channel asAdmin(io.grpc.ManagedChannel transport) {
    return io.grpc.ClientInterceptors.intercept(
        transport,
        dev.corral.testing.TestCredentials.bearer(dev.corral.testing.TestCredentials.ADMIN_KEY));
  }

  /** A new agent without tools, for benchmarks of the log (its model is never called). */
  static String logAgent(io.grpc.Channel channel) {
    return dev.corral.proto.v1.AgentServiceGrpc.newBlockingStub(channel)
        .createAgent(
            dev.corral.proto.v1.CreateAgentRequest.newBuilder()
                .setName("bench")
                .setModel("claude-bench")
                .build())
        .getAgent()
        .getId();
  }

  static FakeAnthropic.Received awaitRequest(FakeAnthropic model, String marker)
      throws InterruptedException {
    long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
    while (System.nanoTime() < deadline) {
      List<FakeAnthropic.Received> seen = model.requestsMentioning(marker);
      if (!seen.isEmpty()) {
        return seen.get(0);
      }
      Thread.sleep(0, 200_000);
    }
    throw new IllegalStateException("the model never saw " + marker);
  }

  static void awaitIdle(SessionServiceGrpc.SessionServiceBlockingStub sessions, String sessionId)
      throws InterruptedException {
    long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
    while (System.nanoTime() < deadline) {
      Session session =
          sessions
              .getSession(GetSessionRequest.newBuilder().setSessionId(sessionId).build())
              .getSession();
      if (session.getStatus() == SessionStatus.SESSION_STATUS_IDLE && session.getLastSeq() > 1) {
        return;
      }
      Thread.sleep(2);
    }
    throw new IllegalStateException("session " + sessionId + " never went idle");
  }

  /** PostgreSQL as corral's embedded one runs it: durable commits, room for many connections. */
  static EmbeddedPostgres postgres() throws java.io.IOException {
    return builder().start();
  }

  /** As {@link #postgres()}, with pg_stat_statements loaded (planning and I/O timing tracked). */
  static EmbeddedPostgres postgresWithStatistics() throws java.io.IOException {
    return builder()
        .setServerConfig("shared_preload_libraries", "pg_stat_statements")
        .setServerConfig("track_io_timing", "on")
        .setServerConfig("pg_stat_statements.track_planning", "on")
        .start();
  }

  private static EmbeddedPostgres.Builder builder() {
    return EmbeddedPostgres.builder()
        .setServerConfig("synchronous_commit", "on")
        .setServerConfig("fsync", "on")
        .setServerConfig("max_connections", "200");
  }

  static Map<String, String> environment(EmbeddedPostgres postgres, FakeAnthropic model)
      throws Exception {
    Map<String, String> environment = database(postgres);
    environment.put("ANTHROPIC_BASE_URL", model.baseUrl());
    environment.put("ANTHROPIC_API_KEY", FakeAnthropic.API_KEY);
    return environment;
  }

  /** A server on {@code postgres} with a home of its own, logging warnings only. */
  static Map<String, String> database(EmbeddedPostgres postgres) throws Exception {
    String url = "localhost:" + postgres.getPort() + "/postgres";
    Map<String, String> environment = new HashMap<>();
    environment.put("QUARKUS_DATASOURCE_REACTIVE_URL", "postgresql://" + url);
    environment.put("QUARKUS_DATASOURCE_JDBC_URL", "jdbc:postgresql://" + url);
    environment.put("QUARKUS_DATASOURCE_USERNAME", "postgres");
    environment.put("QUARKUS_LOG_LEVEL", "WARN");
    // the benchmarks' one tenant follows up to 10,000 streams on one replica
    environment.put("CORRAL_SESSION_MAX_STREAMS_PER_TENANT", "100000");
    environment.put("CORRAL_SESSION_MAX_STREAMS", "100000");
    environment.put("CORRAL_HOME", Files.createTempDirectory("corral-bench-").toString());
    return environment;
  }

  /** As {@link #database}, without a harness: the log and its streams alone. */
  static Map<String, String> logOnly(EmbeddedPostgres postgres) throws Exception {
    Map<String, String> environment = database(postgres);
    environment.put("CORRAL_HARNESS_ENABLED", "false");
    return environment;
  }

  static Map<String, String> with(Map<String, String> environment, String name) {
    Map<String, String> own = new HashMap<>(environment);
    own.put("CORRAL_HOME", Path.of(environment.get("CORRAL_HOME"), name).toString());
    return own;
  }
}
