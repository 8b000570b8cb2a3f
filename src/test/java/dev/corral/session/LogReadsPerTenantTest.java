package dev.corral.session;

import static dev.corral.testing.Fixtures.createSession;
import static org.assertj.core.api.Assertions.assertThat;

import com.google.common.util.concurrent.ListenableFuture;
import dev.corral.proto.v1.AgentServiceGrpc;
import dev.corral.proto.v1.GetEventsRequest;
import dev.corral.proto.v1.GetEventsResponse;
import dev.corral.proto.v1.SessionServiceGrpc;
import dev.corral.testing.Fixtures;
import dev.corral.testing.SessionRows;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.quarkus.grpc.GrpcClient;
import io.quarkus.test.junit.QuarkusTest;
import io.vertx.mutiny.sqlclient.Pool;
import io.vertx.mutiny.sqlclient.SqlConnection;
import jakarta.inject.Inject;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.awaitility.Awaitility;
import org.junit.jupiter.api.Test;

/**
 * A page read holds a database connection while it runs: one tenant's reads at once hold at most 8
 * of a replica's (its pool has 32, which every tenant's appends need too), the rest wait their
 * turn, and a read past 256 waiting is refused.
 */
@QuarkusTest
class LogReadsPerTenantTest {

  private static final Duration WAIT = Duration.ofSeconds(10);

  @GrpcClient("corral")
  SessionServiceGrpc.SessionServiceBlockingStub sessions;

  @GrpcClient("corral")
  AgentServiceGrpc.AgentServiceBlockingStub agents;

  @GrpcClient("corral")
  io.grpc.Channel channel;

  @Inject Pool pool;

  @Test
  void aTenantsReadsHoldAtMostEightConnectionsTheRestWaitAndPastTheQueueAreRefused()
      throws Exception {
    // Given a session with an event, whose reads take long (another transaction locks the log)
    String id = createSession(agents, sessions).getId();
    sessions.emitEvent(Fixtures.emit(id, "hello"));
    SqlConnection lock = SessionRows.lockTheLog(pool);
    List<ListenableFuture<GetEventsResponse>> reads = new ArrayList<>();
    try {
      // When the tenant asks for 8 + 256 + 1 reads at once
      SessionServiceGrpc.SessionServiceFutureStub async =
          SessionServiceGrpc.newFutureStub(channel).withDeadlineAfter(60, TimeUnit.SECONDS);
      for (int i = 0; i < 8 + 256 + 1; i++) {
        reads.add(
            async.getEvents(
                GetEventsRequest.newBuilder().setSessionId(id).addTypes("user.message").build()));
      }

      // Then one is refused, saying why
      Awaitility.await()
          .atMost(WAIT)
          .until(() -> reads.stream().filter(ListenableFuture::isDone).count() == 1);
      ListenableFuture<GetEventsResponse> refused =
          reads.stream().filter(ListenableFuture::isDone).findFirst().orElseThrow();
      assertThat(refusal(refused).getStatus().getCode()).isEqualTo(Status.Code.RESOURCE_EXHAUSTED);
      assertThat(refusal(refused).getStatus().getDescription())
          .contains("8 log reads running on this server and 256 waiting");
      // and only 8 reach the database, where they wait for the lock, and stay 8
      Awaitility.await()
          .atMost(WAIT)
          .during(Duration.ofMillis(500))
          .until(() -> SessionRows.statementsWaitingForALock(pool) == 8);
    } finally {
      SessionRows.rollback(lock);
    }

    // And once the log is free, every other read gets its page, in turn
    long answered = 0;
    for (ListenableFuture<GetEventsResponse> read : reads) {
      try {
        assertThat(read.get(60, TimeUnit.SECONDS).getEventsList()).hasSize(1);
        answered++;
      } catch (ExecutionException refusedOne) {
        assertThat(refusedOne.getCause()).isInstanceOf(StatusRuntimeException.class);
      }
    }
    assertThat(answered).isEqualTo(8 + 256);
  }

  @Test
  void aTenantsStreamsReadTheLogInItsTurnTooWithoutBeingRefused() throws Exception {
    // Given a session with an event, whose reads take long (another transaction locks the log)
    String id = createSession(agents, sessions).getId();
    sessions.emitEvent(Fixtures.emit(id, "hello"));
    SqlConnection lock = SessionRows.lockTheLog(pool);
    List<dev.corral.testing.StreamRecorder> streams = new ArrayList<>();
    try {
      // When the tenant opens 40 streams from the start, filtered by a type the log holds once
      // (each catches up with a read of its own, which walks the log)
      for (int i = 0; i < 40; i++) {
        streams.add(
            dev.corral.testing.StreamRecorder.follow(
                channel,
                dev.corral.proto.v1.StreamEventsRequest.newBuilder()
                    .setSessionId(id)
                    .addTypes("user.message")
                    .build()));
      }

      // Then only 8 of their reads reach the database at once (each held a connection, and 40
      // held more of the pool than every tenant's appends had left), and none is refused
      Awaitility.await()
          .atMost(WAIT)
          .during(Duration.ofMillis(500))
          .until(() -> SessionRows.statementsWaitingForALock(pool) == 8);
      assertThat(streams).allSatisfy(stream -> assertThat(stream.closedWith()).isNull());
    } finally {
      SessionRows.rollback(lock);
    }

    // And once the log is free, every stream gets the event, in turn
    Awaitility.await()
        .atMost(WAIT)
        .untilAsserted(
            () -> assertThat(streams).allSatisfy(stream -> assertThat(stream.events()).hasSize(1)));
    streams.forEach(dev.corral.testing.StreamRecorder::cancel);
  }

  private static StatusRuntimeException refusal(ListenableFuture<GetEventsResponse> read) {
    try {
      read.get();
      throw new AssertionError("the read was answered");
    } catch (ExecutionException e) {
      return (StatusRuntimeException) e.getCause();
    } catch (InterruptedException e) {
      throw new AssertionError(e);
    }
  }
}
