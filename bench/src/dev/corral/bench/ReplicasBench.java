package dev.corral.bench;

import dev.corral.proto.v1.CreateSessionRequest;
import dev.corral.proto.v1.EmitEventRequest;
import dev.corral.proto.v1.EmitEventResponse;
import dev.corral.proto.v1.SessionServiceGrpc;
import dev.corral.proto.v1.StreamEventsRequest;
import dev.corral.proto.v1.StreamEventsResponse;
import dev.corral.testing.Fixtures;
import dev.corral.testing.ServerProcess;
import io.grpc.Channel;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.stub.StreamObserver;
import io.zonky.test.db.postgres.embedded.EmbeddedPostgres;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Three replicas on one PostgreSQL (harness off: the log and its streams). Append throughput with
 * 48 sessions whose EmitEvent chains all go to one replica, then spread over three (a session per
 * replica in turn, as a load balancer spreads connections), in interleaved rounds; then the delay
 * from commit to a subscriber on the same replica and on another one (LISTEN/NOTIFY, with the 500
 * ms poll of session heads behind it).
 */
public final class ReplicasBench {

  private static final int SESSIONS = 48;
  private static final int ROUNDS = 3;

  private ReplicasBench() {}

  public static void main(String[] args) throws Exception {
    int seconds = Integer.parseInt(args[0]);
    System.out.printf(
        "corral replicas benchmark: %d rounds of %d s, %d sessions, %d cores, %s%n",
        ROUNDS, seconds, SESSIONS, Runtime.getRuntime().availableProcessors(), Instant.now());
    try (EmbeddedPostgres postgres = BenchServers.postgres()) {
      List<ServerProcess> servers = new ArrayList<>();
      List<ManagedChannel> transports = new ArrayList<>();
      List<Channel> channels = new ArrayList<>();
      try {
        for (int i = 0; i < 3; i++) {
          Map<String, String> environment = BenchServers.logOnly(postgres);
          environment.put("CORRAL_REPLICA_ID", "replica-" + i);
          ServerProcess server = ServerProcess.start(environment);
          servers.add(server);
          ManagedChannel transport =
              ManagedChannelBuilder.forAddress("localhost", server.port())
                  .usePlaintext()
                  .directExecutor()
                  .build();
          transports.add(transport);
          channels.add(BenchServers.asAdmin(transport));
        }
        String agent = BenchServers.logAgent(channels.get(0));
        List<EmitEventRequest> requests = new ArrayList<>();
        for (int i = 0; i < SESSIONS; i++) {
          String id =
              SessionServiceGrpc.newBlockingStub(channels.get(0))
                  .createSession(CreateSessionRequest.newBuilder().setAgentId(agent).build())
                  .getSession()
                  .getId();
          requests.add(Fixtures.emit(id, "x".repeat(100)));
        }
        run(channels, requests, 1, 10); // warm-up, every replica
        run(channels, requests, 3, 10);
        double one = 0;
        double three = 0;
        for (int round = 0; round < ROUNDS; round++) {
          one += run(channels, requests, 1, seconds);
          three += run(channels, requests, 3, seconds);
        }
        System.out.println();
        System.out.printf(
            "EmitEvent, %d sessions: one replica %.0f /s, three replicas %.0f /s (%.2fx)%n",
            SESSIONS, one / ROUNDS, three / ROUNDS, three / one);
        String session = requests.get(0).getSessionId();
        Latencies same = delay(channels.get(0), channels.get(0), session, 1000);
        Latencies other = delay(channels.get(0), channels.get(1), session, 1000);
        System.out.printf("commit -> subscriber on the same replica:    %s%n", same.summary());
        System.out.printf("commit -> subscriber on another replica:     %s%n", other.summary());
      } finally {
        transports.forEach(ManagedChannel::shutdownNow);
        for (ServerProcess server : servers) {
          server.close();
        }
      }
    }
  }

  /** Appends/s with the sessions' chains spread over the first {@code replicas} replicas. */
  private static double run(
      List<Channel> channels, List<EmitEventRequest> requests, int replicas, int seconds)
      throws Exception {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(seconds);
    AtomicInteger done = new AtomicInteger();
    List<CompletableFuture<Void>> chains = new ArrayList<>();
    long start = System.nanoTime();
    for (int i = 0; i < requests.size(); i++) {
      CompletableFuture<Void> chain = new CompletableFuture<>();
      chains.add(chain);
      emit(
          SessionServiceGrpc.newStub(channels.get(i % replicas)),
          requests.get(i),
          deadline,
          done,
          chain);
    }
    for (CompletableFuture<Void> chain : chains) {
      chain.get(seconds + 60L, TimeUnit.SECONDS);
    }
    return done.get() / ((System.nanoTime() - start) / 1e9);
  }

  private static void emit(
      SessionServiceGrpc.SessionServiceStub stub,
      EmitEventRequest request,
      long deadline,
      AtomicInteger done,
      CompletableFuture<Void> chain) {
    stub.emitEvent(
        request,
        new StreamObserver<EmitEventResponse>() {
          @Override
          public void onNext(EmitEventResponse response) {
            done.incrementAndGet();
          }

          @Override
          public void onError(Throwable failure) {
            chain.completeExceptionally(failure);
          }

          @Override
          public void onCompleted() {
            if (System.nanoTime() < deadline) {
              emit(stub, request, deadline, done, chain);
            } else {
              chain.complete(null);
            }
          }
        });
  }

  /** Appends through {@code writer} every 10 ms; the delay to a subscriber on {@code reader}. */
  private static Latencies delay(Channel writer, Channel reader, String session, int count)
      throws Exception {
    Latencies latencies = new Latencies();
    var stub = SessionServiceGrpc.newBlockingStub(writer);
    long after =
        stub.getSession(
                dev.corral.proto.v1.GetSessionRequest.newBuilder().setSessionId(session).build())
            .getSession()
            .getLastSeq();
    AtomicInteger received = new AtomicInteger();
    io.grpc.Context.CancellableContext context = io.grpc.Context.current().withCancellation();
    context.run(
        () ->
            SessionServiceGrpc.newStub(reader)
                .streamEvents(
                    StreamEventsRequest.newBuilder()
                        .setSessionId(session)
                        .setAfterSeq(after)
                        .build(),
                    new StreamObserver<StreamEventsResponse>() {
                      @Override
                      public void onNext(StreamEventsResponse item) {
                        Instant now = Instant.now();
                        var at = item.getEvent().getProcessedAt();
                        synchronized (latencies) {
                          latencies.record(
                              Duration.between(
                                      Instant.ofEpochSecond(at.getSeconds(), at.getNanos()), now)
                                  .toNanos());
                        }
                        received.incrementAndGet();
                      }

                      @Override
                      public void onError(Throwable failure) {}

                      @Override
                      public void onCompleted() {}
                    }));
    TimeUnit.MILLISECONDS.sleep(500);
    EmitEventRequest request = Fixtures.emit(session, "delay");
    for (int i = 0; i < count; i++) {
      stub.emitEvent(request);
      TimeUnit.MILLISECONDS.sleep(10);
    }
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
    while (received.get() < count && System.nanoTime() < deadline) {
      TimeUnit.MILLISECONDS.sleep(10);
    }
    context.cancel(null);
    return latencies;
  }
}
