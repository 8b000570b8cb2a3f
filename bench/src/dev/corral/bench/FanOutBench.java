package dev.corral.bench;

import dev.corral.proto.v1.CreateSessionRequest;
import dev.corral.proto.v1.EmitEventRequest;
import dev.corral.proto.v1.Event;
import dev.corral.proto.v1.SessionServiceGrpc;
import dev.corral.proto.v1.StreamEventsRequest;
import dev.corral.proto.v1.StreamEventsResponse;
import dev.corral.proto.v1.UserInterrupt;
import dev.corral.testing.ServerProcess;
import io.grpc.Channel;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.stub.StreamObserver;
import io.zonky.test.db.postgres.embedded.EmbeddedPostgres;
import java.sql.Connection;
import java.sql.ResultSet;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import javax.sql.DataSource;

/**
 * Live streams at scale: N subscribers of one session (1, 100, 1,000), then 10,000 subscribers
 * across 100 sessions, on one server, while events are appended at a steady rate. For each phase:
 * commit → subscriber latency (the event's processed_at to its arrival in this process), log
 * queries per append (pg_stat_statements), and the load client's own delay (how late a 1 ms timer
 * of this process fires) and CPU per message, so that a busy client is seen rather than counted as
 * corral's.
 */
public final class FanOutBench {

  private static final int PER_CHANNEL = 50;

  private FanOutBench() {}

  public static void main(String[] args) throws Exception {
    int seconds = Integer.parseInt(args[0]);
    // The load client's callbacks run on its Netty threads ("pooled": handed to gRPC's default
    // executor, a thread hand-off per message received, which tripled the client's CPU per message
    // and, on two cores, took it from the server under test)
    boolean direct = !(args.length > 1 && args[1].equals("pooled"));
    System.out.printf(
        "corral fan-out benchmark: %d s per phase, %d cores, load client's callbacks %s, %s%n",
        seconds,
        Runtime.getRuntime().availableProcessors(),
        direct ? "on its network threads" : "on gRPC's default executor",
        Instant.now());
    try (EmbeddedPostgres postgres = BenchServers.postgresWithStatistics()) {
      DataSource database = postgres.getPostgresDatabase();
      try (Connection connection = database.getConnection()) {
        connection.createStatement().execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements");
      }
      Map<String, String> environment = BenchServers.logOnly(postgres);
      try (ServerProcess server = ServerProcess.start(environment, List.of("-Xmx1g"))) {
        List<ManagedChannel> transports = new ArrayList<>();
        List<Channel> channels = new ArrayList<>();
        for (int i = 0; i < 10_000 / PER_CHANNEL; i++) {
          ManagedChannelBuilder<?> builder =
              ManagedChannelBuilder.forAddress("localhost", server.port()).usePlaintext();
          ManagedChannel transport = (direct ? builder.directExecutor() : builder).build();
          transports.add(transport);
          channels.add(BenchServers.asAdmin(transport));
        }
        String agent = BenchServers.logAgent(channels.get(0));
        CpuMeter meter = new CpuMeter(server.pid());
        System.out.println();
        phase(database, meter, channels, agent, 1, 1, 50, seconds);
        phase(database, meter, channels, agent, 1, 100, 50, seconds);
        phase(database, meter, channels, agent, 1, 1000, 50, seconds);
        phase(database, meter, channels, agent, 100, 100, 100, seconds);
        transports.forEach(ManagedChannel::shutdownNow);
      }
    }
  }

  /** {@code sessions} sessions with {@code each} subscribers; {@code rate} appends/s in all. */
  private static void phase(
      DataSource database,
      CpuMeter meter,
      List<Channel> channels,
      String agent,
      int sessions,
      int each,
      int rate,
      int seconds)
      throws Exception {
    SessionServiceGrpc.SessionServiceBlockingStub writer =
        SessionServiceGrpc.newBlockingStub(channels.get(0));
    List<String> ids = new ArrayList<>();
    for (int i = 0; i < sessions; i++) {
      ids.add(
          writer
              .createSession(CreateSessionRequest.newBuilder().setAgentId(agent).build())
              .getSession()
              .getId());
    }
    Latencies latencies = new Latencies();
    AtomicLong received = new AtomicLong();
    AtomicLong measuring = new AtomicLong(); // 0: warming up
    List<io.grpc.Context.CancellableContext> streams = new ArrayList<>();
    int subscriber = 0;
    for (String id : ids) {
      for (int i = 0; i < each; i++) {
        Channel channel = channels.get(subscriber++ / PER_CHANNEL);
        io.grpc.Context.CancellableContext context = io.grpc.Context.current().withCancellation();
        streams.add(context);
        context.run(
            () ->
                SessionServiceGrpc.newStub(channel)
                    .streamEvents(
                        StreamEventsRequest.newBuilder().setSessionId(id).build(),
                        new StreamObserver<StreamEventsResponse>() {
                          @Override
                          public void onNext(StreamEventsResponse item) {
                            Instant now = Instant.now();
                            received.incrementAndGet();
                            if (measuring.get() == 1) {
                              var at = item.getEvent().getProcessedAt();
                              long nanos =
                                  Duration.between(
                                          Instant.ofEpochSecond(at.getSeconds(), at.getNanos()),
                                          now)
                                      .toNanos();
                              synchronized (latencies) {
                                latencies.record(nanos);
                              }
                            }
                          }

                          @Override
                          public void onError(Throwable failure) {}

                          @Override
                          public void onCompleted() {}
                        }));
      }
    }
    TimeUnit.SECONDS.sleep(2); // every stream open
    Event event = Event.newBuilder().setUserInterrupt(UserInterrupt.getDefaultInstance()).build();
    long intervalNanos = 1_000_000_000L / rate;
    // warm-up second, then the measured phase
    append(writer, ids, event, intervalNanos, rate);
    long readsBefore = reads(database);
    long receivedBefore = received.get();
    CpuMeter.Ticks cpuBefore = meter.now();
    measuring.set(1);
    Latencies selfDelay = new Latencies();
    Thread probe =
        new Thread(
            () -> {
              while (measuring.get() == 1) {
                long begin = System.nanoTime();
                try {
                  TimeUnit.MILLISECONDS.sleep(1);
                } catch (InterruptedException e) {
                  return;
                }
                selfDelay.record(Math.max(0, System.nanoTime() - begin - 1_000_000));
              }
            });
    probe.start();
    int appended = append(writer, ids, event, intervalNanos, rate * seconds);
    TimeUnit.MILLISECONDS.sleep(500); // the last events arrive
    measuring.set(2);
    CpuMeter.Ticks cpu = meter.now().minus(cpuBefore);
    long delivered = received.get() - receivedBefore;
    probe.join();
    long reads = reads(database) - readsBefore;
    streams.forEach(context -> context.cancel(null));
    System.out.printf(
        "%5d subscribers on %3d session(s), %3d appends/s: commit -> subscriber %s;"
            + " log reads per append %.2f; load client's own delay %s%n",
        sessions * each,
        sessions,
        rate,
        latencies.summary(),
        (double) reads / appended,
        selfDelay.summary());
    // corral's CPU over the phase (appends included) per message delivered to a subscriber
    System.out.printf(
        "      %d messages delivered: corral CPU per delivered message %.1f us, per append %.0f us;"
            + " PostgreSQL CPU per append %.0f us; load client's CPU per delivered message %.1f us%n",
        delivered,
        cpu.server() * 1e4 / Math.max(1, delivered),
        cpu.server() * 1e4 / appended,
        cpu.postgres() * 1e4 / appended,
        cpu.client() * 1e4 / Math.max(1, delivered));
  }

  private static int append(
      SessionServiceGrpc.SessionServiceBlockingStub writer,
      List<String> ids,
      Event event,
      long intervalNanos,
      int count)
      throws InterruptedException {
    long next = System.nanoTime();
    for (int i = 0; i < count; i++) {
      writer.emitEvent(
          EmitEventRequest.newBuilder()
              .setSessionId(ids.get(i % ids.size()))
              .setEvent(event)
              .build());
      next += intervalNanos;
      long wait = next - System.nanoTime();
      if (wait > 0) {
        TimeUnit.NANOSECONDS.sleep(wait);
      }
    }
    return count;
  }

  /** Calls of the log's read statements so far. */
  private static long reads(DataSource database) throws Exception {
    try (Connection connection = database.getConnection();
        ResultSet rows =
            connection
                .createStatement()
                .executeQuery(
                    "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements"
                        + " WHERE query LIKE 'SELECT s.last_seq, e.seq%'")) {
      rows.next();
      return rows.getLong(1);
    }
  }
}
