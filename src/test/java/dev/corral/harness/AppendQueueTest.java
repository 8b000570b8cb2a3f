package dev.corral.harness;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import dev.corral.proto.v1.AgentServiceGrpc;
import dev.corral.proto.v1.Event;
import dev.corral.proto.v1.RetryStatus;
import dev.corral.proto.v1.SessionError;
import dev.corral.proto.v1.SessionServiceGrpc;
import dev.corral.session.Appended;
import dev.corral.session.NewEvent;
import dev.corral.session.SequenceConflictException;
import dev.corral.testing.Fixtures;
import dev.corral.testing.SessionLogs;
import io.quarkus.grpc.GrpcClient;
import io.quarkus.test.junit.QuarkusTest;
import jakarta.inject.Inject;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.Test;

/**
 * A harness run's appends. A model's answer queued behind its span start never reaches the log when
 * that span start is refused (new input arrived meanwhile): the answer would stand without the
 * start of its call, after input its request never saw.
 */
@QuarkusTest
class AppendQueueTest {

  private static final Duration WAIT = Duration.ofSeconds(10);

  @GrpcClient("corral")
  SessionServiceGrpc.SessionServiceBlockingStub sessions;

  @GrpcClient("corral")
  AgentServiceGrpc.AgentServiceBlockingStub agents;

  @Inject Leases leases;

  @Inject HarnessServices services;

  @Test
  void anAnswerQueuedBehindARefusedSpanStartIsDropped() {
    // Given a run's queue, and a user message that arrived after the run last looked (seq 1)
    String sessionId = Fixtures.createSession(agents, sessions).getId();
    sessions.emitEvent(Fixtures.emit(sessionId, "arrived meanwhile"));
    long epoch = leaseOf(sessionId);
    List<Object> outcomes = new CopyOnWriteArrayList<>();
    AppendQueue[] queue = new AppendQueue[1];
    queue[0] =
        new AppendQueue(
            sessionId,
            epoch,
            services.emitter(),
            services.log(),
            new TurnTrace(services.tracer(), sessionId, epoch),
            Runnable::run,
            new AppendQueue.Outcome() {
              @Override
              public void appended(AppendQueue.Batch batch, Appended appended) {
                outcomes.add(appended);
                batch.then().accept(appended);
                queue[0].next();
              }

              @Override
              public void refused(AppendQueue.Batch batch, Throwable failure) {
                outcomes.add(failure);
                batch.refused().run();
                queue[0].next();
              }
            });
    AtomicBoolean cancelled = new AtomicBoolean();

    // When a span start built on the log before that message is refused, while the call's answer
    // waits behind it, and an unconditional event after both
    queue[0].add(List.of(error("span start")), 0L, appended -> {}, () -> cancelled.set(true));
    queue[0].addIfStillWanted(List.of(error("answer")), appended -> {}, () -> !cancelled.get());
    queue[0].add(List.of(error("afterwards")), null);

    // Then the span start is refused, the answer dropped unsent, and the queue goes on
    await().atMost(WAIT).until(() -> outcomes.size() == 2);
    assertThat(outcomes.get(0)).isInstanceOf(SequenceConflictException.class);
    assertThat(outcomes.get(1)).isInstanceOf(Appended.class);
    List<String> logged =
        SessionLogs.log(sessions, sessionId).stream()
            .filter(Event::hasSessionError)
            .map(event -> event.getSessionError().getMessage())
            .toList();
    assertThat(logged).containsExactly("afterwards");
  }

  @Test
  void anAppendAFullLogQueueRefusesIsTriedAgainNotLost() {
    // Given a run's queue whose first two appends the log refuses as too busy (its queue full:
    // refused before any statement, so nothing was appended)
    String sessionId = Fixtures.createSession(agents, sessions).getId();
    long epoch = leaseOf(sessionId);
    java.util.concurrent.atomic.AtomicInteger tries =
        new java.util.concurrent.atomic.AtomicInteger();
    java.util.function.Function<dev.corral.session.AppendRequest, io.smallrye.mutiny.Uni<Appended>>
        busyTwice =
            request ->
                io.smallrye.mutiny.Uni.createFrom()
                    .deferred(
                        () ->
                            tries.incrementAndGet() <= 2
                                ? io.smallrye.mutiny.Uni.createFrom()
                                    .failure(
                                        new dev.corral.common.ResourceExhaustedException(
                                            "the log's queue is full"))
                                : services.log().append(request));
    List<Object> outcomes = new CopyOnWriteArrayList<>();
    AppendQueue queue =
        new AppendQueue(
            sessionId,
            epoch,
            services.emitter(),
            busyTwice,
            new TurnTrace(services.tracer(), sessionId, epoch),
            Runnable::run,
            new AppendQueue.Outcome() {
              @Override
              public void appended(AppendQueue.Batch batch, Appended appended) {
                outcomes.add(appended);
              }

              @Override
              public void refused(AppendQueue.Batch batch, Throwable failure) {
                outcomes.add(failure);
              }
            });

    // When a finished call's result is appended
    queue.add(List.of(error("a result in hand")), null);

    // Then it is tried again until the log takes it
    await().atMost(WAIT).until(() -> outcomes.size() == 1);
    assertThat(outcomes.get(0)).isInstanceOf(Appended.class);
    assertThat(tries).hasValue(3);
    assertThat(
            SessionLogs.log(sessions, sessionId).stream()
                .filter(Event::hasSessionError)
                .map(event -> event.getSessionError().getMessage()))
        .containsExactly("a result in hand");
  }

  /** Takes the session's lease, as a harness would, and returns its epoch. */
  private long leaseOf(String sessionId) {
    return leases
        .acquire(sessionId, "replica-q", 60_000)
        .await()
        .atMost(WAIT)
        .orElseThrow()
        .getEpoch();
  }

  private static NewEvent error(String message) {
    return NewEvent.of(
        Event.newBuilder()
            .setSessionError(
                SessionError.newBuilder()
                    .setErrorType("test")
                    .setMessage(message)
                    .setRetryStatus(RetryStatus.RETRY_STATUS_RETRYING))
            .build());
  }
}
