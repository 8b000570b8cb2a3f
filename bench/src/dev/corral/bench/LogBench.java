package dev.corral.bench;

import dev.corral.proto.v1.ContentBlock;
import dev.corral.proto.v1.CreateSessionRequest;
import dev.corral.proto.v1.EmitEventRequest;
import dev.corral.proto.v1.EmitEventResponse;
import dev.corral.proto.v1.Event;
import dev.corral.proto.v1.GetEventsRequest;
import dev.corral.proto.v1.GetEventsResponse;
import dev.corral.proto.v1.SessionServiceGrpc;
import dev.corral.proto.v1.StreamEventsRequest;
import dev.corral.proto.v1.StreamEventsResponse;
import dev.corral.proto.v1.TextBlock;
import dev.corral.proto.v1.UserMessage;
import dev.corral.testing.ServerProcess;
import grpc.health.v1.HealthGrpc;
import grpc.health.v1.HealthOuterClass.HealthCheckRequest;
import grpc.health.v1.HealthOuterClass.HealthCheckResponse;
import io.grpc.Channel;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.stub.StreamObserver;
import io.zonky.test.db.postgres.embedded.EmbeddedPostgres;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Consumer;
import javax.sql.DataSource;

/**
 * Measures, in one run against one PostgreSQL: raw single-row INSERT commits (1 and 16 JDBC
 * clients, the baseline), EmitEvent over gRPC (1 session; 16 sessions in parallel), and live-tail
 * latency (the event's processed_at, taken in the append transaction, to its arrival at a
 * StreamEvents subscriber). Each phase also reports the CPU each process spent per operation.
 */
public final class LogBench {

  private static final byte[] PAYLOAD = new byte[120];
  private static final int CLIENTS = 16;
  private static final int ROUNDS = 3;
  private static final int WARM_UP_SECONDS = 15;
  private static final int PAGE_WARM_UP_SECONDS = 5;

  /** Events per page read, GetEvents' default page size. */
  private static final int PAGE = 100;

  /** Pages are read from the first this many events of the session (at most), in turn. */
  private static final int PAGED_EVENTS = 20_000;

  /** The session whose log is paged, and how many of its first events the pages go through. */
  private record Paged(String sessionId, int events) {
    long afterSeq(long page) {
      return page * PAGE % (events - PAGE);
    }
  }

  private LogBench() {}

  public static void main(String[] args) throws Exception {
    int seconds = Integer.parseInt(args[0]);
    System.out.printf(
        "corral log benchmark: %d rounds of %d s per phase, phases interleaved, %d cores, %s%n",
        ROUNDS, seconds, Runtime.getRuntime().availableProcessors(), Instant.now());
    // corral's embedded PostgreSQL's settings (durable commits; zonky's defaults have fsync off),
    // and pg_stat_statements: where an append's cost goes is printed after the run
    try (EmbeddedPostgres postgres = BenchServers.postgresWithStatistics()) {
      DataSource database = postgres.getPostgresDatabase();
      System.out.println(settings(database));
      // The log alone: a user.message would otherwise wake a harness that calls a model (none
      // answers here), whose own appends and reads would be counted as the append's.
      Map<String, String> environment = BenchServers.logOnly(postgres);
      environment.put(
          "CORRAL_HARNESS_ENABLED", System.getenv().getOrDefault("BENCH_HARNESS_ENABLED", "false"));
      environment.put(
          "JAVA_TOOL_OPTIONS", System.getenv().getOrDefault("SERVER_JAVA_TOOL_OPTIONS", ""));
      try (ServerProcess server = ServerProcess.start(environment)) {
        if (System.getenv("BENCH_WITHOUT_EVENTS_FOREIGN_KEY") != null) {
          // An experiment: what the foreign key from events to sessions costs an append.
          try (Connection connection = database.getConnection()) {
            connection
                .createStatement()
                .execute("ALTER TABLE events DROP CONSTRAINT IF EXISTS events_session_id_fkey");
          }
          System.out.println("experiment: events without its foreign key to sessions");
        }
        ManagedChannel transport =
            ManagedChannelBuilder.forAddress("localhost", server.port())
                .usePlaintext()
                .directExecutor()
                .build();
        Channel channel = BenchServers.asAdmin(transport);
        CpuMeter meter = new CpuMeter(server.pid());
        String agentId = BenchServers.logAgent(channel);
        List<EmitEventRequest> oneSession = sessions(channel, agentId, 1);
        List<EmitEventRequest> sixteenSessions = sessions(channel, agentId, CLIENTS);
        List<PreparedStatement> oneClient = rawClients(database, 1);
        List<PreparedStatement> sixteenClients = rawClients(database, CLIENTS);
        // A fresh JVM spends its first seconds compiling: warm every path up first. One session
        // and sixteen take different paths through corral (an append alone, appends batched).
        runEmits(channel, sixteenSessions, WARM_UP_SECONDS);
        runEmits(channel, oneSession, WARM_UP_SECONDS);
        runRaw(sixteenClients, WARM_UP_SECONDS);
        runRaw(oneClient, WARM_UP_SECONDS);
        runHealthChecks(channel, WARM_UP_SECONDS);
        // pages of the one session's log, which the warm-up filled with tens of thousands of events
        String pagedSession = oneSession.get(0).getSessionId();
        int pagedEvents =
            (int)
                Math.min(
                    PAGED_EVENTS,
                    SessionServiceGrpc.newBlockingStub(channel)
                        .getSession(
                            dev.corral.proto.v1.GetSessionRequest.newBuilder()
                                .setSessionId(pagedSession)
                                .build())
                        .getSession()
                        .getLastSeq());
        System.out.printf(
            "pages of %d events read from the first %d of one session%n", PAGE, pagedEvents);
        Paged paged = new Paged(pagedSession, pagedEvents);
        PreparedStatement rawPage = rawPageReader(database);
        runPages(channel, paged, PAGE_WARM_UP_SECONDS);
        runRawPages(rawPage, paged, PAGE_WARM_UP_SECONDS);
        resetStatistics(database);
        Phase raw1 = new Phase("raw INSERT commit", 1);
        Phase raw16 = new Phase("raw INSERT commit", CLIENTS);
        Phase emit1 = new Phase("EmitEvent over gRPC, sessions", 1);
        Phase emit16 = new Phase("EmitEvent over gRPC, sessions", CLIENTS);
        Phase floor = new Phase("gRPC health check, no database", 1);
        Phase pages = new Phase("GetEvents, pages of " + PAGE, 1);
        Phase rawPages = new Phase("raw SELECT of " + PAGE + " events", 1);
        for (int round = 0; round < ROUNDS; round++) {
          measure(floor, meter, seconds, () -> runHealthChecks(channel, seconds));
          measure(raw1, meter, seconds, () -> runRaw(oneClient, seconds));
          measure(emit1, meter, seconds, () -> runEmits(channel, oneSession, seconds));
          measure(raw16, meter, seconds, () -> runRaw(sixteenClients, seconds));
          measure(emit16, meter, seconds, () -> runEmits(channel, sixteenSessions, seconds));
          measure(rawPages, meter, seconds, () -> runRawPages(rawPage, paged, seconds));
          measure(pages, meter, seconds, () -> runPages(channel, paged, seconds));
        }
        Latencies tail = tailLatency(channel, agentId, seconds);
        report(raw1, raw16, emit1, emit16, floor, tail);
        System.out.println();
        System.out.println(rawPages.line());
        System.out.println(pages.line());
        printStatistics(database);
        transport.shutdownNow();
      }
    }
  }

  interface Run {
    Latencies run() throws Exception;
  }

  private static void measure(Phase phase, CpuMeter meter, int seconds, Run run) throws Exception {
    CpuMeter.Ticks before = meter.now();
    long start = System.nanoTime();
    Latencies latencies = run.run();
    phase.add(latencies, (System.nanoTime() - start) / 1e9, meter.now().minus(before));
  }

  private static void resetStatistics(DataSource database) throws Exception {
    try (Connection connection = database.getConnection()) {
      connection.createStatement().execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements");
      connection.createStatement().execute("SELECT pg_stat_statements_reset(), pg_stat_reset()");
    }
  }

  /**
   * The statements that took PostgreSQL's time during the measured phases, and what the appends did
   * to the tables (HOT updates, dead tuples, autovacuum runs).
   */
  private static void printStatistics(DataSource database) throws Exception {
    try (Connection connection = database.getConnection()) {
      System.out.println();
      System.out.println("pg_stat_statements (measured phases and the tail, top 8 by total time):");
      var statements =
          connection
              .createStatement()
              .executeQuery(
                  "SELECT calls, plans, round(total_exec_time::numeric, 1) AS total_ms,"
                      + " round((total_plan_time / greatest(plans, 1) * 1000)::numeric, 1) AS us_per_plan,"
                      + " round((total_exec_time / greatest(calls, 1) * 1000)::numeric, 1) AS us_per_call,"
                      + " rows, shared_blks_hit / greatest(calls, 1) AS hits_per_call,"
                      + " shared_blks_dirtied, wal_records / greatest(calls, 1) AS wal_per_call,"
                      + " wal_bytes / greatest(calls, 1) AS wal_bytes_per_call,"
                      + " left(regexp_replace(query, '\\s+', ' ', 'g'), 90) AS query"
                      + " FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 8");
      while (statements.next()) {
        System.out.printf(
            "  %8d calls %8d plans (%6.1f us) %9.1f ms %7.1f us/call  hits/call %4d  WAL/call %3d"
                + " rec %6d B  %s%n",
            statements.getLong("calls"),
            statements.getLong("plans"),
            statements.getDouble("us_per_plan"),
            statements.getDouble("total_ms"),
            statements.getDouble("us_per_call"),
            statements.getLong("hits_per_call"),
            statements.getLong("wal_per_call"),
            statements.getLong("wal_bytes_per_call"),
            statements.getString("query"));
      }
      System.out.println("pg_stat_user_tables:");
      var tables =
          connection
              .createStatement()
              .executeQuery(
                  "SELECT relname, n_tup_ins, n_tup_upd, n_tup_hot_upd, n_dead_tup, autovacuum_count,"
                      + " pg_size_pretty(pg_total_relation_size(relid)) AS size"
                      + " FROM pg_stat_user_tables WHERE relname IN ('events', 'sessions', 'raw')"
                      + " ORDER BY relname");
      while (tables.next()) {
        System.out.printf(
            "  %-9s inserts %8d  updates %8d  HOT %8d  dead %7d  autovacuums %3d  size %s%n",
            tables.getString("relname"),
            tables.getLong("n_tup_ins"),
            tables.getLong("n_tup_upd"),
            tables.getLong("n_tup_hot_upd"),
            tables.getLong("n_dead_tup"),
            tables.getLong("autovacuum_count"),
            tables.getString("size"));
      }
    }
  }

  /** The settings that decide what a commit costs, printed with the results. */
  private static String settings(DataSource database) throws Exception {
    StringBuilder line = new StringBuilder("PostgreSQL:");
    try (Connection connection = database.getConnection()) {
      for (String setting :
          List.of("server_version", "synchronous_commit", "fsync", "wal_sync_method")) {
        var rows = connection.createStatement().executeQuery("SHOW " + setting);
        rows.next();
        line.append(' ').append(setting).append('=').append(rows.getString(1));
      }
    }
    return line.toString();
  }

  /** One kind of measurement, accumulated over the rounds. */
  private static final class Phase {
    private final String name;
    private final int clients;
    private final Latencies latencies = new Latencies();
    private double seconds;
    private CpuMeter.Ticks cpu = new CpuMeter.Ticks(0, 0, 0);

    Phase(String name, int clients) {
      this.name = name;
      this.clients = clients;
    }

    void add(Latencies more, double elapsed, CpuMeter.Ticks used) {
      latencies.merge(more);
      seconds += elapsed;
      cpu = cpu.plus(used);
    }

    double perSecond() {
      return latencies.count() / seconds;
    }

    double postgresPerOperation() {
      return (double) cpu.postgres() / latencies.count();
    }

    String line() {
      return String.format(
          "%-34s %9.0f /s   %s%n%-34s %s",
          name + " (" + clients + ")",
          perSecond(),
          latencies.summary(),
          "",
          cpu.perOperation(latencies.count()));
    }
  }

  /** Blocking JDBC clients, each inserting one row per autocommit transaction. */
  private static List<PreparedStatement> rawClients(DataSource database, int clients)
      throws Exception {
    try (Connection setup = database.getConnection()) {
      setup
          .createStatement()
          .execute(
              "CREATE SCHEMA IF NOT EXISTS bench; CREATE TABLE IF NOT EXISTS bench.raw (id bigserial"
                  + " PRIMARY KEY, session_id text NOT NULL, created_at timestamptz NOT NULL DEFAULT"
                  + " clock_timestamp(), body bytea NOT NULL)");
    }
    List<PreparedStatement> inserts = new ArrayList<>();
    for (int client = 0; client < clients; client++) {
      PreparedStatement insert =
          database
              .getConnection()
              .prepareStatement("INSERT INTO bench.raw (session_id, body) VALUES (?, ?)");
      insert.setString(1, "client-" + client);
      insert.setBytes(2, PAYLOAD);
      inserts.add(insert);
    }
    return inserts;
  }

  private static Latencies runRaw(List<PreparedStatement> inserts, int seconds) throws Exception {
    ExecutorService threads = Executors.newFixedThreadPool(inserts.size());
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(seconds);
    List<Future<Latencies>> results = new ArrayList<>();
    for (PreparedStatement insert : inserts) {
      results.add(
          threads.submit(
              () -> {
                Latencies latencies = new Latencies();
                while (System.nanoTime() < deadline) {
                  long begin = System.nanoTime();
                  insert.executeUpdate();
                  latencies.record(System.nanoTime() - begin);
                }
                return latencies;
              }));
    }
    Latencies all = new Latencies();
    for (Future<Latencies> result : results) {
      all.merge(result.get());
    }
    threads.shutdown();
    return all;
  }

  /**
   * One chain of GetEvents calls, each the page of {@link #PAGE} events after a seq that moves
   * through the first events of {@code paged}.
   */
  private static Latencies runPages(Channel channel, Paged paged, int seconds) throws Exception {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(seconds);
    SessionServiceGrpc.SessionServiceStub stub = SessionServiceGrpc.newStub(channel);
    java.util.concurrent.atomic.AtomicLong page = new java.util.concurrent.atomic.AtomicLong();
    CompletableFuture<Latencies> chain = new CompletableFuture<>();
    callUntil(
        (StreamObserver<GetEventsResponse> answer) ->
            stub.getEvents(
                GetEventsRequest.newBuilder()
                    .setSessionId(paged.sessionId())
                    .setAfterSeq(paged.afterSeq(page.getAndIncrement()))
                    .setPageSize(PAGE)
                    .build(),
                answer),
        deadline,
        new Latencies(),
        chain);
    return chain.get(seconds + 60L, TimeUnit.SECONDS);
  }

  /** The baseline of a page read: the same rows, selected over JDBC with a prepared statement. */
  private static PreparedStatement rawPageReader(DataSource database) throws Exception {
    return database
        .getConnection()
        .prepareStatement(
            "SELECT seq, id, type, processed_at, body FROM events WHERE session_id = ? AND seq > ?"
                + " ORDER BY seq LIMIT "
                + PAGE);
  }

  private static Latencies runRawPages(PreparedStatement select, Paged paged, int seconds)
      throws Exception {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(seconds);
    Latencies latencies = new Latencies();
    long page = 0;
    select.setString(1, paged.sessionId());
    while (System.nanoTime() < deadline) {
      long begin = System.nanoTime();
      select.setLong(2, paged.afterSeq(page++));
      int rows = 0;
      try (var result = select.executeQuery()) {
        while (result.next()) {
          result.getBytes(5);
          rows++;
        }
      }
      if (rows != PAGE) {
        throw new IllegalStateException("a page of " + rows + " events, not " + PAGE);
      }
      latencies.record(System.nanoTime() - begin);
    }
    return latencies;
  }

  /** One EmitEvent request per new session. */
  private static List<EmitEventRequest> sessions(Channel channel, String agentId, int sessions) {
    List<EmitEventRequest> requests = new ArrayList<>();
    for (int i = 0; i < sessions; i++) {
      String sessionId =
          SessionServiceGrpc.newBlockingStub(channel)
              .createSession(CreateSessionRequest.newBuilder().setAgentId(agentId).build())
              .getSession()
              .getId();
      requests.add(
          EmitEventRequest.newBuilder().setSessionId(sessionId).setEvent(message()).build());
    }
    return requests;
  }

  /**
   * One chain of EmitEvent calls per session: each call is sent when the previous one answered
   * (asynchronous stub, callbacks on the transport thread, so the client costs little CPU).
   */
  private static Latencies runEmits(Channel channel, List<EmitEventRequest> requests, int seconds)
      throws Exception {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(seconds);
    SessionServiceGrpc.SessionServiceStub stub = SessionServiceGrpc.newStub(channel);
    List<CompletableFuture<Latencies>> chains = new ArrayList<>();
    for (EmitEventRequest request : requests) {
      CompletableFuture<Latencies> chain = new CompletableFuture<>();
      callUntil(
          (StreamObserver<EmitEventResponse> answer) -> stub.emitEvent(request, answer),
          deadline,
          new Latencies(),
          chain);
      chains.add(chain);
    }
    Latencies all = new Latencies();
    for (CompletableFuture<Latencies> chain : chains) {
      all.merge(chain.get(seconds + 60L, TimeUnit.SECONDS));
    }
    return all;
  }

  /**
   * The floor under any EmitEvent: one chain of gRPC health checks, which cross the same client,
   * connection and server but touch no database and no session.
   */
  private static Latencies runHealthChecks(Channel channel, int seconds) throws Exception {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(seconds);
    HealthGrpc.HealthStub stub = HealthGrpc.newStub(channel);
    CompletableFuture<Latencies> chain = new CompletableFuture<>();
    callUntil(
        (StreamObserver<HealthCheckResponse> answer) ->
            stub.check(HealthCheckRequest.getDefaultInstance(), answer),
        deadline,
        new Latencies(),
        chain);
    return chain.get(seconds + 60L, TimeUnit.SECONDS);
  }

  /** Makes one call after the other until the deadline, recording each call's latency. */
  private static <T> void callUntil(
      Consumer<StreamObserver<T>> call,
      long deadline,
      Latencies latencies,
      CompletableFuture<Latencies> done) {
    long begin = System.nanoTime();
    call.accept(
        new StreamObserver<T>() {
          @Override
          public void onNext(T response) {
            latencies.record(System.nanoTime() - begin);
          }

          @Override
          public void onError(Throwable failure) {
            done.completeExceptionally(failure);
          }

          @Override
          public void onCompleted() {
            if (System.nanoTime() < deadline) {
              callUntil(call, deadline, latencies, done);
            } else {
              done.complete(latencies);
            }
          }
        });
  }

  /** Appends one event every 5 ms and records processed_at → received by a subscriber. */
  private static Latencies tailLatency(Channel channel, String agentId, int seconds)
      throws Exception {
    SessionServiceGrpc.SessionServiceBlockingStub stub =
        SessionServiceGrpc.newBlockingStub(channel);
    String sessionId =
        stub.createSession(CreateSessionRequest.newBuilder().setAgentId(agentId).build())
            .getSession()
            .getId();
    Latencies latencies = new Latencies();
    AtomicInteger received = new AtomicInteger();
    int warmUp = 200;
    int total = warmUp + seconds * 200;
    CountDownLatch done = new CountDownLatch(1);
    SessionServiceGrpc.newStub(channel)
        .streamEvents(
            StreamEventsRequest.newBuilder().setSessionId(sessionId).build(),
            new StreamObserver<>() {
              @Override
              public void onNext(StreamEventsResponse item) {
                Instant now = Instant.now();
                Instant appended =
                    Instant.ofEpochSecond(
                        item.getEvent().getProcessedAt().getSeconds(),
                        item.getEvent().getProcessedAt().getNanos());
                if (received.incrementAndGet() > warmUp) {
                  synchronized (latencies) {
                    latencies.record(Duration.between(appended, now).toNanos());
                  }
                }
                if (received.get() == total) {
                  done.countDown();
                }
              }

              @Override
              public void onError(Throwable failure) {
                done.countDown();
              }

              @Override
              public void onCompleted() {}
            });
    EmitEventRequest request =
        EmitEventRequest.newBuilder().setSessionId(sessionId).setEvent(message()).build();
    for (int i = 0; i < total; i++) {
      stub.emitEvent(request);
      TimeUnit.MILLISECONDS.sleep(5);
    }
    done.await(60, TimeUnit.SECONDS);
    return latencies;
  }

  private static Event message() {
    return Event.newBuilder()
        .setUserMessage(
            UserMessage.newBuilder()
                .addContent(
                    ContentBlock.newBuilder()
                        .setText(TextBlock.newBuilder().setText("x".repeat(100)))))
        .build();
  }

  private static void report(
      Phase raw1, Phase raw16, Phase emit1, Phase emit16, Phase floor, Latencies tail) {
    System.out.println();
    System.out.println(floor.line());
    System.out.println(raw1.line());
    System.out.println(raw16.line());
    System.out.println(emit1.line());
    System.out.println(emit16.line());
    System.out.printf("%-34s %s%n", "live tail (commit -> subscriber)", tail.summary());
    System.out.println();
    double latencyRatio =
        emit1.latencies.percentileMillis(50) / raw1.latencies.percentileMillis(50);
    double throughputRatio = emit16.perSecond() / raw16.perSecond();
    System.out.printf(
        "EmitEvent p50 / raw commit p50 (1 client)    = %.2f   target <= 2.0   %s%n",
        latencyRatio, latencyRatio <= 2.0 ? "met" : "NOT met");
    System.out.printf(
        "EmitEvent 16 sessions / raw 16 clients (ops) = %.2f   target >= 0.5   %s%n",
        throughputRatio, throughputRatio >= 0.5 ? "met" : "NOT met");
    for (Phase[] pair : new Phase[][] {{emit1, raw1}, {emit16, raw16}}) {
      double cpuRatio = pair[0].postgresPerOperation() / pair[1].postgresPerOperation();
      System.out.printf(
          "PostgreSQL CPU per append / raw insert (%d)  = %.2f   target <= 3.0   %s%n",
          pair[0].clients, cpuRatio, cpuRatio <= 3.0 ? "met" : "NOT met");
    }
    double floorRatio =
        (floor.latencies.percentileMillis(50) + raw1.latencies.percentileMillis(50))
            / raw1.latencies.percentileMillis(50);
    System.out.printf(
        "floor: health check p50 + raw commit p50     = %.2f x raw commit p50 (no append can be"
            + " faster)%n",
        floorRatio);
    boolean tailMet = tail.percentileMillis(50) <= 10 && tail.percentileMillis(99) <= 50;
    System.out.printf(
        "live tail p50 = %.2f ms (target <= 10), p99 = %.2f ms (target <= 50)   %s%n",
        tail.percentileMillis(50), tail.percentileMillis(99), tailMet ? "met" : "NOT met");
  }
}
