package dev.corral.api;

import static dev.corral.testing.Fixtures.createSession;
import static dev.corral.testing.Fixtures.emit;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowableOfType;
import static org.awaitility.Awaitility.await;

import dev.corral.proto.v1.AgentServiceGrpc;
import dev.corral.proto.v1.Event;
import dev.corral.proto.v1.GetEventsRequest;
import dev.corral.proto.v1.Session;
import dev.corral.proto.v1.SessionServiceGrpc;
import dev.corral.proto.v1.StreamEventsRequest;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.NettyChannelBuilder;
import io.grpc.stub.StreamObserver;
import io.quarkus.grpc.GrpcClient;
import io.quarkus.test.junit.QuarkusTest;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * A client that resets one call, because an answer passed its message limit or because it stopped
 * waiting, loses that call only: the other calls on the same HTTP/2 connection, a live stream among
 * them, carry on.
 */
@QuarkusTest
class StreamResetTest {

  @GrpcClient("corral")
  SessionServiceGrpc.SessionServiceBlockingStub sessions;

  @GrpcClient("corral")
  AgentServiceGrpc.AgentServiceBlockingStub agents;

  private ManagedChannel channel;
  private Session session;
  private final List<Event> streamed = new CopyOnWriteArrayList<>();
  private final AtomicReference<Throwable> streamFailure = new AtomicReference<>();

  @BeforeEach
  void connect() {
    // One connection, with a small message limit: a 1 MiB page passes it.
    channel =
        NettyChannelBuilder.forAddress("localhost", 18081)
            .usePlaintext()
            .intercept(new dev.corral.testing.TestCredentials())
            .maxInboundMessageSize(64 * 1024)
            .build();
    session = createSession(agents, sessions);
    for (int i = 0; i < 8; i++) {
      sessions.emitEvent(emit(session.getId(), i + ":" + "x".repeat(200_000)));
    }
    SessionServiceGrpc.newStub(channel)
        .streamEvents(
            StreamEventsRequest.newBuilder().setSessionId(session.getId()).setAfterSeq(8).build(),
            new StreamObserver<>() {
              @Override
              public void onNext(dev.corral.proto.v1.StreamEventsResponse item) {
                if (item.hasEvent()) {
                  streamed.add(item.getEvent());
                }
              }

              @Override
              public void onError(Throwable failure) {
                streamFailure.set(failure);
              }

              @Override
              public void onCompleted() {}
            });
  }

  @AfterEach
  void close() throws InterruptedException {
    channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
  }

  @Test
  void answersLargerThanTheClientTakesResetOnlyTheirOwnCall() {
    SessionServiceGrpc.SessionServiceBlockingStub small =
        SessionServiceGrpc.newBlockingStub(channel);
    for (int i = 0; i < 5; i++) {
      // When an answer (about 1 MiB) passes the client's 64 KiB limit, which resets the stream
      StatusRuntimeException tooLarge =
          catchThrowableOfType(
              StatusRuntimeException.class,
              () ->
                  small.getEvents(
                      GetEventsRequest.newBuilder().setSessionId(session.getId()).build()));
      assertThat(tooLarge.getStatus().getCode())
          .as("call %d: %s", i, tooLarge.getStatus())
          .isEqualTo(Status.Code.RESOURCE_EXHAUSTED);
    }

    // Then the connection still carries small calls and the live stream
    assertThat(
            small
                .getEvents(
                    GetEventsRequest.newBuilder()
                        .setSessionId(session.getId())
                        .setAfterSeq(8)
                        .build())
                .getLastSeq())
        .isEqualTo(8);
    sessions.emitEvent(emit(session.getId(), "after the resets"));
    await()
        .atMost(Duration.ofSeconds(10))
        .until(() -> !streamed.isEmpty() || streamFailure.get() != null);
    assertThat(streamFailure.get()).isNull();
    assertThat(streamed.get(0).getSeq()).isEqualTo(9);
  }

  @Test
  void aClientThatStopsWaitingResetsOnlyItsOwnCall() {
    for (int i = 0; i < 10; i++) {
      long deadlineMs = 2 + i;
      // When a client gives up on a large answer before it comes
      StatusRuntimeException late =
          catchThrowableOfType(
              StatusRuntimeException.class,
              () ->
                  SessionServiceGrpc.newBlockingStub(channel)
                      .withDeadlineAfter(deadlineMs, TimeUnit.MILLISECONDS)
                      .getEvents(
                          GetEventsRequest.newBuilder().setSessionId(session.getId()).build()));
      assertThat(late.getStatus().getCode())
          .isIn(Status.Code.DEADLINE_EXCEEDED, Status.Code.RESOURCE_EXHAUSTED);
    }

    // Then the connection goes on
    sessions.emitEvent(emit(session.getId(), "after the deadlines"));
    await()
        .atMost(Duration.ofSeconds(10))
        .until(() -> !streamed.isEmpty() || streamFailure.get() != null);
    assertThat(streamFailure.get()).isNull();
    assertThat(streamed.get(0).getSeq()).isEqualTo(9);
    assertThat(
            SessionServiceGrpc.newBlockingStub(channel)
                .getEvents(
                    GetEventsRequest.newBuilder()
                        .setSessionId(session.getId())
                        .setAfterSeq(9)
                        .build())
                .getLastSeq())
        .isEqualTo(9);
  }
}
