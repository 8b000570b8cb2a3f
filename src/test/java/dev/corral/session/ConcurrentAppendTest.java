package dev.corral.session;

import static dev.corral.testing.Fixtures.createSession;
import static dev.corral.testing.Fixtures.emit;
import static dev.corral.testing.Fixtures.text;
import static org.assertj.core.api.Assertions.assertThat;

import dev.corral.proto.v1.AgentServiceGrpc;
import dev.corral.proto.v1.EmitEventRequest;
import dev.corral.proto.v1.EmitEventResponse;
import dev.corral.proto.v1.Event;
import dev.corral.proto.v1.GetEventsRequest;
import dev.corral.proto.v1.GetEventsResponse;
import dev.corral.proto.v1.SessionServiceGrpc;
import io.quarkus.grpc.GrpcClient;
import io.quarkus.test.junit.QuarkusTest;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.stream.LongStream;
import org.junit.jupiter.api.Test;

/** Many writers at once: the stored sequence has no gap and no duplicate, and nothing is lost. */
@QuarkusTest
class ConcurrentAppendTest {

  private static final int EVENTS_PER_WRITER = 40;

  @GrpcClient("corral")
  SessionServiceGrpc.SessionServiceBlockingStub sessions;

  @GrpcClient("corral")
  AgentServiceGrpc.AgentServiceBlockingStub agents;

  @Test
  void thirtyTwoWritersOnOneSessionGetADenseSequence() throws Exception {
    // Given
    String sessionId = createSession(agents, sessions).getId();

    // When 32 writers append at once
    List<String> sent = runWriters(32, writer -> sessionId);

    // Then
    List<Event> log = readAll(sessionId);
    assertThat(log)
        .extracting(Event::getSeq)
        .containsExactlyElementsOf(
            LongStream.rangeClosed(1, 32 * EVENTS_PER_WRITER).boxed().toList());
    assertThat(log).extracting(event -> text(event)).containsExactlyInAnyOrderElementsOf(sent);
  }

  @Test
  void sixteenWritersEachOnItsOwnSessionGetDenseSequences() throws Exception {
    // Given
    List<String> sessionIds = new ArrayList<>();
    for (int i = 0; i < 16; i++) {
      sessionIds.add(createSession(agents, sessions).getId());
    }

    // When
    runWriters(16, sessionIds::get);

    // Then
    for (String sessionId : sessionIds) {
      assertThat(readAll(sessionId))
          .extracting(Event::getSeq)
          .containsExactlyElementsOf(LongStream.rangeClosed(1, EVENTS_PER_WRITER).boxed().toList());
    }
  }

  @Test
  void concurrentRetriesWithOneIdempotencyKeyAppendOnce() throws Exception {
    // Given
    String sessionId = createSession(agents, sessions).getId();
    EmitEventRequest request =
        emit(sessionId, "exactly once").toBuilder().setIdempotencyKey("once").build();
    ExecutorService pool = Executors.newFixedThreadPool(8);
    CountDownLatch start = new CountDownLatch(1);

    // When 8 clients send the same request at the same moment
    List<Future<EmitEventResponse>> responses = new ArrayList<>();
    for (int i = 0; i < 8; i++) {
      responses.add(
          pool.submit(
              () -> {
                start.await();
                return sessions.emitEvent(request);
              }));
    }
    start.countDown();
    Set<String> ids = new HashSet<>();
    int fresh = 0;
    for (Future<EmitEventResponse> response : responses) {
      ids.add(response.get().getEvent().getId());
      fresh += response.get().getDeduplicated() ? 0 : 1;
    }
    pool.shutdown();

    // Then
    assertThat(ids).hasSize(1);
    assertThat(fresh).isEqualTo(1);
    assertThat(readAll(sessionId)).hasSize(1);
  }

  private List<String> runWriters(int writers, java.util.function.IntFunction<String> sessionOf)
      throws Exception {
    ExecutorService pool = Executors.newFixedThreadPool(writers);
    CountDownLatch start = new CountDownLatch(1);
    List<Future<List<String>>> results = new ArrayList<>();
    for (int w = 0; w < writers; w++) {
      int writer = w;
      Callable<List<String>> task =
          () -> {
            start.await();
            List<String> sent = new ArrayList<>();
            for (int i = 0; i < EVENTS_PER_WRITER; i++) {
              String text = "writer " + writer + " event " + i;
              sessions.emitEvent(emit(sessionOf.apply(writer), text));
              sent.add(text);
            }
            return sent;
          };
      results.add(pool.submit(task));
    }
    start.countDown();
    List<String> sent = new ArrayList<>();
    for (Future<List<String>> result : results) {
      sent.addAll(result.get());
    }
    pool.shutdown();
    return sent;
  }

  private List<Event> readAll(String sessionId) {
    List<Event> events = new ArrayList<>();
    long after = 0;
    GetEventsResponse page;
    do {
      page =
          sessions.getEvents(
              GetEventsRequest.newBuilder()
                  .setSessionId(sessionId)
                  .setAfterSeq(after)
                  .setPageSize(1000)
                  .build());
      events.addAll(page.getEventsList());
      if (!page.getEventsList().isEmpty()) {
        after = page.getEvents(page.getEventsCount() - 1).getSeq();
      }
    } while (page.getHasMore());
    return events;
  }
}
