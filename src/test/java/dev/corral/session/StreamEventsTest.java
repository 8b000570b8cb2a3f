package dev.corral.session;

import static dev.corral.testing.Fixtures.createSession;
import static dev.corral.testing.Fixtures.emit;
import static dev.corral.testing.Fixtures.userMessage;
import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import dev.corral.proto.v1.AgentServiceGrpc;
import dev.corral.proto.v1.DeleteSessionRequest;
import dev.corral.proto.v1.Session;
import dev.corral.proto.v1.SessionServiceGrpc;
import dev.corral.proto.v1.StreamEventsRequest;
import dev.corral.proto.v1.StreamEventsResponse;
import dev.corral.testing.StreamRecorder;
import io.grpc.Channel;
import io.grpc.Status;
import io.quarkus.grpc.GrpcClient;
import io.quarkus.test.junit.QuarkusTest;
import jakarta.inject.Inject;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.stream.LongStream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

@QuarkusTest
class StreamEventsTest {

  private static final Duration WAIT = Duration.ofSeconds(20);

  @GrpcClient("corral")
  Channel channel;

  @GrpcClient("corral")
  SessionServiceGrpc.SessionServiceBlockingStub sessions;

  @GrpcClient("corral")
  AgentServiceGrpc.AgentServiceBlockingStub agents;

  @Inject EventLog log;

  @Inject EventTail tail;

  @Inject io.vertx.mutiny.sqlclient.Pool pool;

  private final ExecutorService writers = Executors.newFixedThreadPool(4);
  private final List<StreamRecorder> streams = new ArrayList<>();

  @AfterEach
  void stop() {
    writers.shutdownNow();
    streams.forEach(
        stream -> {
          if (stream.closedWith() == null) {
            stream.cancel();
          }
        });
  }

  @Test
  void streamReplaysTheLogThenFollowsIt() {
    // Given
    Session session = createSession(agents, sessions);
    emitMessages(session.getId(), 3);

    // When
    StreamRecorder stream = follow(session.getId(), 0);
    await().atMost(WAIT).until(() -> stream.seqs().size() == 3);
    emitMessages(session.getId(), 2);

    // Then
    await().atMost(WAIT).until(() -> stream.seqs().size() == 5);
    assertThat(stream.seqs()).containsExactly(1L, 2L, 3L, 4L, 5L);
    assertThat(stream.closedWith()).isNull();
  }

  @Test
  void appendsOfThisProcessReachSubscribersWithoutALogReadAndAsStored() {
    // Given a subscriber that has caught up and been woken once
    Session session = createSession(agents, sessions);
    StreamRecorder stream = follow(session.getId(), 0);
    emitMessages(session.getId(), 1);
    await().atMost(WAIT).until(() -> stream.seqs().size() == 1);
    long queriesBefore = tail.queries();

    // When this process appends more, one at a time
    for (int i = 0; i < 10; i++) {
      sessions.emitEvent(emit(session.getId(), "local " + i));
      int expected = i + 2;
      await().atMost(WAIT).until(() -> stream.seqs().size() == expected);
    }

    // Then the stream got them from the appends themselves (a read each without that), exactly as
    // the log stores them. A poll that sees a commit before its append is published wakes the
    // reader early, which then reads: allow for that race twice.
    assertThat(tail.queries()).isLessThanOrEqualTo(queriesBefore + 2);
    List<dev.corral.proto.v1.Event> stored =
        sessions
            .getEvents(
                dev.corral.proto.v1.GetEventsRequest.newBuilder()
                    .setSessionId(session.getId())
                    .build())
            .getEventsList();
    assertThat(stream.events()).isEqualTo(stored);
  }

  @Test
  void handOverFromCatchUpToLiveHasNoGapOrDuplicateWhileWritersAppend() throws Exception {
    Random random = new Random(42);
    for (int round = 0; round < 15; round++) {
      // Given a session that writers keep appending to
      Session session = createSession(agents, sessions);
      AtomicBoolean writing = new AtomicBoolean(true);
      List<Future<?>> running = startWriters(session.getId(), writing, 3);
      await().atMost(WAIT).until(() -> lastSeq(session.getId()) >= 10);

      // When a subscriber joins at a random point of the log while writes go on
      long from = random.nextLong(lastSeq(session.getId()) + 1);
      StreamRecorder stream = follow(session.getId(), from);
      await().pollDelay(Duration.ofMillis(random.nextInt(100))).until(() -> true);
      writing.set(false);
      for (Future<?> writer : running) {
        writer.get();
      }
      long last = lastSeq(session.getId());

      // Then it gets every event after its cursor exactly once, in order
      await().atMost(WAIT).until(() -> stream.seqs().size() >= last - from);
      assertThat(stream.seqs())
          .containsExactlyElementsOf(LongStream.rangeClosed(from + 1, last).boxed().toList());
      stream.cancel();
    }
  }

  @Test
  void subscriberThatReconnectsWithItsLastSeqMissesNothing() throws Exception {
    // Given a subscriber that reads for a while, then drops
    Session session = createSession(agents, sessions);
    AtomicBoolean writing = new AtomicBoolean(true);
    List<Future<?>> running = startWriters(session.getId(), writing, 2);
    StreamRecorder first = follow(session.getId(), 0);
    await().atMost(WAIT).until(() -> first.seqs().size() >= 20);
    first.cancel();
    List<Long> firstSeqs = first.seqs();

    // When it reconnects from the last seq it saw, while writers go on
    StreamRecorder second = follow(session.getId(), firstSeqs.get(firstSeqs.size() - 1));
    await().atMost(WAIT).until(() -> second.seqs().size() >= 20);
    writing.set(false);
    for (Future<?> writer : running) {
      writer.get();
    }
    long last = lastSeq(session.getId());
    await().atMost(WAIT).until(() -> firstSeqs.size() + second.seqs().size() >= last);

    // Then both streams together hold the whole log once
    List<Long> all = new ArrayList<>(firstSeqs);
    all.addAll(second.seqs());
    assertThat(all).containsExactlyElementsOf(LongStream.rangeClosed(1, last).boxed().toList());
  }

  @Test
  void eventAppendedOutsideThisProcessReachesTheSubscriber() {
    // Given a subscriber that has caught up
    Session session = createSession(agents, sessions);
    StreamRecorder stream = follow(session.getId(), 0);
    emitMessages(session.getId(), 1);
    await().atMost(WAIT).until(() -> stream.seqs().size() == 1);

    // When another connection appends through the same statement, without telling this process
    AppendRequest request =
        AppendRequest.of(session.getId(), NewEvent.of(userMessage("from elsewhere")));
    OtherReplica.append(request);

    // Then the subscriber gets it (the poll of session heads notices)
    await().atMost(WAIT).until(() -> stream.seqs().size() == 2);
    assertThat(stream.seqs()).containsExactly(1L, 2L);
    assertThat(stream.events().get(1).getId()).isEqualTo(request.events().get(0).id());
  }

  @org.junit.jupiter.params.ParameterizedTest(name = "with deltas: {0}")
  @org.junit.jupiter.params.provider.ValueSource(booleans = {false, true})
  void slowReaderMakesTheServerReadOnlyWhatItCanSend(boolean includeDeltas) {
    // Given a log far bigger than the transport's buffers (400 events of 64 KiB)
    Session session = createSession(agents, sessions);
    String big = "x".repeat(64 * 1024);
    for (int batch = 0; batch < 40; batch++) {
      List<NewEvent> events = new ArrayList<>();
      for (int i = 0; i < 10; i++) {
        events.add(NewEvent.of(userMessage(big)));
      }
      log.append(new AppendRequest(session.getId(), events, null, null)).await().atMost(WAIT);
    }
    long readBefore = tail.eventsRead();

    // When a client takes only 5 events and then stops asking
    StreamRecorder stream =
        StreamRecorder.followSlowly(
            channel,
            request(session.getId(), 0).toBuilder().setIncludeDeltas(includeDeltas).build(),
            5);
    streams.add(stream);
    await().atMost(WAIT).until(() -> stream.seqs().size() == 5);
    await().pollDelay(Duration.ofMillis(500)).until(() -> true);

    // Then the server has read what the transport accepted (the client's 1 MiB window, 16 of these
    // events) and a small page or two beyond, not the log: a stream's page holds 64 KiB (or one
    // event), so a stalled client holds little of the server's memory (16-17 events here; 30 with
    // pages of 1 MiB, 135 when a merge with deltas asked for 128)
    long readWhileStalled = tail.eventsRead() - readBefore;
    assertThat(readWhileStalled).isLessThanOrEqualTo(16 + 5 + 2);
    assertThat(stream.seqs()).hasSize(5);

    // And once the client asks for the rest, it gets everything in order
    stream.request(10_000);
    await().atMost(WAIT).until(() -> stream.seqs().size() == 400);
    assertThat(stream.seqs())
        .containsExactlyElementsOf(LongStream.rangeClosed(1, 400).boxed().toList());
  }

  @Test
  void streamEndsCleanlyWhenTheSessionIsDeleted() {
    // Given
    Session session = createSession(agents, sessions);
    emitMessages(session.getId(), 2);
    StreamRecorder stream = follow(session.getId(), 0);
    await().atMost(WAIT).until(() -> stream.seqs().size() == 2);

    // When
    sessions.deleteSession(DeleteSessionRequest.newBuilder().setSessionId(session.getId()).build());

    // Then
    await().atMost(WAIT).until(() -> stream.closedWith() != null);
    assertThat(stream.closedWith().getCode()).isEqualTo(Status.Code.OK);
    List<StreamEventsResponse> items = stream.items();
    assertThat(items.get(items.size() - 1).getSessionDeleted().getSessionId())
        .isEqualTo(session.getId());
  }

  @Test
  void streamsEndAfterTheSessionsTerminalEventWhateverTheirFilter() {
    // Given a session followed by a stream of everything and a stream of user messages only
    Session session = createSession(agents, sessions);
    emitMessages(session.getId(), 2);
    StreamRecorder everything = follow(session.getId(), 0);
    StreamRecorder messages = followTypes(session.getId(), "user.message");
    await().atMost(WAIT).until(() -> messages.seqs().size() == 2);

    // When the session ends (archiving appends session.status_terminated)
    sessions.archiveSession(
        dev.corral.proto.v1.ArchiveSessionRequest.newBuilder()
            .setSessionId(session.getId())
            .build());

    // Then both streams end cleanly: the first after the terminal event, the second without it
    await().atMost(WAIT).until(() -> everything.closedWith() != null);
    await().atMost(WAIT).until(() -> messages.closedWith() != null);
    assertThat(everything.closedWith().getCode()).isEqualTo(Status.Code.OK);
    assertThat(messages.closedWith().getCode()).isEqualTo(Status.Code.OK);
    List<StreamEventsResponse> items = everything.items();
    assertThat(items.get(items.size() - 1).getEvent().getType())
        .isEqualTo("session.status_terminated");
    assertThat(items).noneMatch(StreamEventsResponse::hasSessionDeleted);
    assertThat(messages.seqs()).containsExactly(1L, 2L);
    assertThat(messages.items()).noneMatch(StreamEventsResponse::hasSessionDeleted);

    // And a stream opened on the ended session replays up to its terminal event and ends, while
    // one opened past it ends at once
    long last = lastSeq(session.getId());
    StreamRecorder replay = follow(session.getId(), 1);
    StreamRecorder past = follow(session.getId(), last);
    await().atMost(WAIT).until(() -> replay.closedWith() != null && past.closedWith() != null);
    assertThat(replay.closedWith().getCode()).isEqualTo(Status.Code.OK);
    assertThat(replay.seqs())
        .containsExactlyElementsOf(LongStream.rangeClosed(2, last).boxed().toList());
    assertThat(past.closedWith().getCode()).isEqualTo(Status.Code.OK);
    assertThat(past.items()).isEmpty();
  }

  @Test
  void aStreamFromPastTheLastEventIsRefusedRatherThanSkippingEventsUnsaid() {
    // Given a session with two events
    Session session = createSession(agents, sessions);
    emitMessages(session.getId(), 2);

    // When a stream asks for events after seq 3
    StreamRecorder stream = follow(session.getId(), 3);

    // Then it is refused, naming the field, and a stream from the last event is not
    await().atMost(WAIT).until(() -> stream.closedWith() != null);
    assertThat(stream.closedWith().getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT);
    assertThat(stream.closedWith().getDescription()).contains("after_seq");
    StreamRecorder fromTheEnd = follow(session.getId(), 2);
    emitMessages(session.getId(), 1);
    await().atMost(WAIT).until(() -> fromTheEnd.seqs().size() == 1);
    assertThat(fromTheEnd.seqs()).containsExactly(3L);
  }

  @Test
  void eventsThatFillAPageToTheByteAreFollowedByTheRest() {
    // Given events whose stored sizes (body plus envelope) add up to exactly one page's bytes
    int each = EventLog.PAGE_BYTES / 8 - EventLog.ENVELOPE_BYTES;
    Session probe = createSession(agents, sessions);
    sessions.emitEvent(emit(probe.getId(), "x".repeat(each)));
    int overhead = storedSizes(probe.getId()).get(0) - each;
    Session session = createSession(agents, sessions);
    for (int i = 0; i < 8; i++) {
      sessions.emitEvent(emit(session.getId(), Integer.toString(i % 10).repeat(each - overhead)));
    }
    assertThat(storedSizes(session.getId())).containsOnly(each);
    sessions.emitEvent(emit(session.getId(), "the ninth"));

    // When the log is read from the start, by page and by stream
    dev.corral.proto.v1.GetEventsResponse first =
        sessions.getEvents(
            dev.corral.proto.v1.GetEventsRequest.newBuilder()
                .setSessionId(session.getId())
                .build());
    StreamRecorder stream = follow(session.getId(), 0);

    // Then the page says there is more, and the stream carries the ninth event
    assertThat(first.getEventsCount()).isEqualTo(8);
    assertThat(first.getHasMore()).isTrue();
    await().atMost(WAIT).until(() -> stream.seqs().size() == 9);
    assertThat(stream.seqs())
        .containsExactlyElementsOf(LongStream.rangeClosed(1, 9).boxed().toList());
  }

  private List<Integer> storedSizes(String sessionId) {
    List<Integer> sizes = new ArrayList<>();
    pool.preparedQuery(
            "SELECT octet_length(body) AS n FROM events WHERE session_id = $1 ORDER BY seq")
        .execute(io.vertx.mutiny.sqlclient.Tuple.of(sessionId))
        .await()
        .atMost(WAIT)
        .forEach(row -> sizes.add(row.getInteger("n")));
    return sizes;
  }

  @Test
  void streamOfAnUnknownSessionFailsWithNotFound() {
    // When
    StreamRecorder stream = follow("sesn_00000000000000000000000000", 0);

    // Then
    await().atMost(WAIT).until(() -> stream.closedWith() != null);
    assertThat(stream.closedWith().getCode()).isEqualTo(Status.Code.NOT_FOUND);
  }

  @Test
  void streamFiltersByTypeAndStillMovesPastOtherEvents() {
    // Given
    Session session = createSession(agents, sessions);
    emitMessages(session.getId(), 2);
    sessions.emitEvent(
        dev.corral.proto.v1.EmitEventRequest.newBuilder()
            .setSessionId(session.getId())
            .setEvent(
                dev.corral.proto.v1.Event.newBuilder()
                    .setUserInterrupt(dev.corral.proto.v1.UserInterrupt.getDefaultInstance()))
            .build());

    // When
    StreamRecorder stream = followTypes(session.getId(), "user.interrupt");
    emitMessages(session.getId(), 3);
    sessions.emitEvent(
        dev.corral.proto.v1.EmitEventRequest.newBuilder()
            .setSessionId(session.getId())
            .setEvent(
                dev.corral.proto.v1.Event.newBuilder()
                    .setUserInterrupt(dev.corral.proto.v1.UserInterrupt.getDefaultInstance()))
            .build());

    // Then
    await().atMost(WAIT).until(() -> stream.seqs().size() == 2);
    assertThat(stream.seqs()).containsExactly(3L, 7L);
  }

  @Test
  void manySubscribersShareOneReaderAndEachGetsTheWholeLogInOrder() throws Exception {
    // Given 40 live subscribers of one session, caught up
    Session session = createSession(agents, sessions);
    emitMessages(session.getId(), 2);
    List<StreamRecorder> followers = new ArrayList<>();
    for (int i = 0; i < 40; i++) {
      followers.add(follow(session.getId(), 0));
    }
    await().atMost(WAIT).until(() -> followers.stream().allMatch(f -> f.seqs().size() == 2));
    long queriesBefore = tail.queries();

    // When 100 events are appended one at a time, and then 600 by concurrent writers
    emitMessages(session.getId(), 100);
    AtomicBoolean writing = new AtomicBoolean(true);
    List<Future<?>> running = startWriters(session.getId(), writing, 3);
    await().atMost(WAIT).until(() -> lastSeq(session.getId()) >= 702);
    writing.set(false);
    for (Future<?> writer : running) {
      writer.get();
    }
    long last = lastSeq(session.getId());

    // Then every subscriber has every event exactly once, in order
    await().atMost(WAIT).until(() -> followers.stream().allMatch(f -> f.seqs().size() == last));
    for (StreamRecorder follower : followers) {
      assertThat(follower.seqs())
          .containsExactlyElementsOf(LongStream.rangeClosed(1, last).boxed().toList());
    }
    // And the log was queried about once per wake-up, not once per subscriber and append
    long queries = tail.queries() - queriesBefore;
    assertThat(queries).isLessThanOrEqualTo(3 * (last - 2)).isLessThan(40L * (last - 2) / 4);
  }

  @Test
  void aStalledSubscriberDoesNotHoldBackTheOthersAndCatchesUpFromTheLog() throws Exception {
    // Given a subscriber that takes 3 events and stops asking, and a live one
    Session session = createSession(agents, sessions);
    StreamRecorder stalled = followSlowly(session.getId(), 3);
    StreamRecorder live = follow(session.getId(), 0);

    // When far more events than the shared window holds are appended
    int batches = (EventTail.WINDOW_EVENTS + 500) / 100;
    int count = batches * 100;
    for (int batch = 0; batch < batches; batch++) {
      List<NewEvent> events = new ArrayList<>();
      for (int i = 0; i < 100; i++) {
        events.add(NewEvent.of(dev.corral.testing.Fixtures.userMessage("e" + batch + "-" + i)));
      }
      log.append(new AppendRequest(session.getId(), events, null, null)).await().atMost(WAIT);
    }

    // Then the live one has them all while the stalled one still has 3
    await().atMost(WAIT).until(() -> live.seqs().size() == count);
    assertThat(stalled.seqs()).hasSize(3);

    // And once the stalled one asks again it gets the rest, in order, with nothing lost
    stalled.request(100_000);
    await().atMost(WAIT).until(() -> stalled.seqs().size() == count);
    assertThat(stalled.seqs())
        .containsExactlyElementsOf(LongStream.rangeClosed(1, count).boxed().toList());
    assertThat(live.seqs())
        .containsExactlyElementsOf(LongStream.rangeClosed(1, count).boxed().toList());
  }

  @Test
  void aSubscriberFromTheHeadIsNotWalkedThroughWhatAnotherReplicaAppendedPastAStaleWindow()
      throws Exception {
    // Given a subscriber that took 3 events and stopped asking (so this replica's window of the
    // session stays where it was; large events fill what its connection holds), and many events
    // another replica appended since
    Session session = createSession(agents, sessions);
    emitMessages(session.getId(), 3);
    StreamRecorder stalled = followSlowly(session.getId(), 3);
    await().atMost(WAIT).until(() -> stalled.seqs().size() == 3);
    for (int i = 0; i < 10; i++) {
      OtherReplica.append(
          AppendRequest.of(
              session.getId(),
              NewEvent.of(dev.corral.testing.Fixtures.userMessage("x".repeat(200_000)))));
    }
    for (int batch = 0; batch < 20; batch++) {
      List<NewEvent> events = new ArrayList<>();
      for (int i = 0; i < 100; i++) {
        events.add(NewEvent.of(dev.corral.testing.Fixtures.userMessage("e" + batch + "-" + i)));
      }
      OtherReplica.append(new AppendRequest(session.getId(), events, null, null));
    }
    long head = lastSeq(session.getId());

    // When a subscriber starts from the head, and one more event comes
    long readBefore = tail.eventsRead();
    StreamRecorder fresh = follow(session.getId(), head);
    emitMessages(session.getId(), 1);

    // Then it gets that event, and the replica did not read the 2,000 between the stale window
    // and the head to get there
    await().atMost(WAIT).until(() -> fresh.seqs().size() == 1);
    assertThat(fresh.seqs()).containsExactly(head + 1);
    assertThat(tail.eventsRead() - readBefore).isLessThan(300);

    // And the stalled one, asking again, still gets every event in order
    stalled.request(100_000);
    await().atMost(WAIT).until(() -> stalled.seqs().size() == head + 1);
    assertThat(stalled.seqs())
        .containsExactlyElementsOf(LongStream.rangeClosed(1, head + 1).boxed().toList());
  }

  private StreamRecorder follow(String sessionId, long afterSeq) {
    return follow(request(sessionId, afterSeq));
  }

  /** A stream of {@code types} only, from the start of the log. */
  private StreamRecorder followTypes(String sessionId, String... types) {
    return follow(
        StreamEventsRequest.newBuilder()
            .setSessionId(sessionId)
            .addAllTypes(java.util.List.of(types))
            .build());
  }

  private StreamRecorder follow(StreamEventsRequest request) {
    StreamRecorder stream = StreamRecorder.follow(channel, request);
    streams.add(stream);
    return stream;
  }

  private StreamRecorder followSlowly(String sessionId, int initial) {
    StreamRecorder stream = StreamRecorder.followSlowly(channel, request(sessionId, 0), initial);
    streams.add(stream);
    return stream;
  }

  private static StreamEventsRequest request(String sessionId, long afterSeq) {
    return StreamEventsRequest.newBuilder().setSessionId(sessionId).setAfterSeq(afterSeq).build();
  }

  private void emitMessages(String sessionId, int count) {
    for (int i = 0; i < count; i++) {
      sessions.emitEvent(emit(sessionId, "message " + i));
    }
  }

  private long lastSeq(String sessionId) {
    return sessions
        .getSession(
            dev.corral.proto.v1.GetSessionRequest.newBuilder().setSessionId(sessionId).build())
        .getSession()
        .getLastSeq();
  }

  private List<Future<?>> startWriters(String sessionId, AtomicBoolean writing, int count) {
    List<Future<?>> running = new ArrayList<>();
    for (int w = 0; w < count; w++) {
      int writer = w;
      running.add(
          writers.submit(
              () -> {
                int i = 0;
                while (writing.get()) {
                  sessions.emitEvent(emit(sessionId, "writer " + writer + " #" + i++));
                }
              }));
    }
    return running;
  }
}
