package dev.corral.api;

import static dev.corral.testing.Fixtures.createSession;
import static dev.corral.testing.Fixtures.emit;
import static dev.corral.testing.Fixtures.text;
import static dev.corral.testing.Fixtures.userMessage;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.corral.proto.v1.AgentServiceGrpc;
import dev.corral.proto.v1.ArchiveSessionRequest;
import dev.corral.proto.v1.CreateSessionRequest;
import dev.corral.proto.v1.DeleteSessionRequest;
import dev.corral.proto.v1.EmitEventRequest;
import dev.corral.proto.v1.EmitEventResponse;
import dev.corral.proto.v1.Event;
import dev.corral.proto.v1.GetEventsRequest;
import dev.corral.proto.v1.GetEventsResponse;
import dev.corral.proto.v1.GetSessionRequest;
import dev.corral.proto.v1.ListSessionsRequest;
import dev.corral.proto.v1.ListSessionsResponse;
import dev.corral.proto.v1.Session;
import dev.corral.proto.v1.SessionServiceGrpc;
import dev.corral.proto.v1.SessionStatus;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.quarkus.grpc.GrpcClient;
import io.quarkus.test.junit.QuarkusTest;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;

@QuarkusTest
class SessionServiceTest {

  @GrpcClient("corral")
  SessionServiceGrpc.SessionServiceBlockingStub sessions;

  @GrpcClient("corral")
  AgentServiceGrpc.AgentServiceBlockingStub agents;

  @Test
  void fieldsTheSchemaDoesNotKnowAreNotStoredAtAnyDepth() {
    // Given an event whose text block carries a field of a later schema (number 99, bytes that
    // are neither UTF-8 nor free of NUL)
    Session session = createSession(agents, sessions);
    com.google.protobuf.UnknownFieldSet unknown =
        com.google.protobuf.UnknownFieldSet.newBuilder()
            .addField(
                99,
                com.google.protobuf.UnknownFieldSet.Field.newBuilder()
                    .addLengthDelimited(
                        com.google.protobuf.ByteString.copyFrom(new byte[] {0, (byte) 0xff, 1}))
                    .build())
            .build();
    Event message = userMessage("with a future field");
    Event.Builder withUnknown = message.toBuilder();
    withUnknown
        .getUserMessageBuilder()
        .getContentBuilder(0)
        .getTextBuilder()
        .setUnknownFields(unknown);

    // When it is emitted
    EmitEventResponse emitted =
        sessions.emitEvent(
            EmitEventRequest.newBuilder()
                .setSessionId(session.getId())
                .setEvent(withUnknown)
                .build());

    // Then it is stored and read back without that field
    Event read =
        sessions
            .getEvents(GetEventsRequest.newBuilder().setSessionId(session.getId()).build())
            .getEvents(0);
    assertThat(text(read)).isEqualTo("with a future field");
    assertThat(read.getUserMessage().getContent(0).getText().getUnknownFields().asMap()).isEmpty();
    assertThat(
            emitted.getEvent().getUserMessage().getContent(0).getText().getUnknownFields().asMap())
        .isEmpty();
  }

  @Test
  void createdSessionIsIdleWithASnapshotOfTheAgent() {
    // When
    Session session = createSession(agents, sessions);

    // Then
    assertThat(session.getId()).startsWith("sesn_");
    assertThat(session.getStatus()).isEqualTo(SessionStatus.SESSION_STATUS_IDLE);
    assertThat(session.getLastSeq()).isZero();
    assertThat(session.getAgent().getVersion()).isEqualTo(1);
    assertThat(session.getAgent().getModel()).isEqualTo("claude-test");
    assertThat(
            sessions
                .getSession(GetSessionRequest.newBuilder().setSessionId(session.getId()).build())
                .getSession())
        .isEqualTo(session);
  }

  @Test
  void initialEventsAreTheFirstEventsOfTheLog() {
    // Given
    String agentId = createSession(agents, sessions).getAgent().getId();

    // When
    Session session =
        sessions
            .createSession(
                CreateSessionRequest.newBuilder()
                    .setAgentId(agentId)
                    .addInitialEvents(userMessage("one"))
                    .addInitialEvents(userMessage("two"))
                    .build())
            .getSession();

    // Then
    assertThat(session.getLastSeq()).isEqualTo(2);
    List<Event> events =
        sessions
            .getEvents(GetEventsRequest.newBuilder().setSessionId(session.getId()).build())
            .getEventsList();
    assertThat(events).extracting(Event::getSeq).containsExactly(1L, 2L);
    assertThat(events).extracting(event -> text(event)).containsExactly("one", "two");
    assertThat(events)
        .allSatisfy(
            event -> {
              assertThat(event.getType()).isEqualTo("user.message");
              assertThat(event.getSessionId()).isEqualTo(session.getId());
              assertThat(event.getId()).startsWith("sevt_");
              assertThat(event.hasProcessedAt()).isTrue();
            });
  }

  @Test
  void emittedEventsGetDenseSequenceNumbersFromOne() {
    // Given
    Session session = createSession(agents, sessions);

    // When
    List<Long> seqs =
        List.of(1, 2, 3, 4, 5).stream()
            .map(i -> sessions.emitEvent(emit(session.getId(), "message " + i)).getEvent().getSeq())
            .toList();

    // Then
    assertThat(seqs).containsExactly(1L, 2L, 3L, 4L, 5L);
    assertThat(get(session.getId()).getLastSeq()).isEqualTo(5);
  }

  @Test
  void retriedEmitWithTheSameIdempotencyKeyReturnsTheOriginalEvent() {
    // Given
    Session session = createSession(agents, sessions);
    EmitEventRequest request =
        emit(session.getId(), "hello").toBuilder().setIdempotencyKey("retry-1").build();
    EmitEventResponse first = sessions.emitEvent(request);

    // When
    EmitEventResponse retry = sessions.emitEvent(request);

    // Then
    assertThat(first.getDeduplicated()).isFalse();
    assertThat(retry.getDeduplicated()).isTrue();
    assertThat(retry.getEvent()).isEqualTo(first.getEvent());
    assertThat(get(session.getId()).getLastSeq()).isEqualTo(1);
  }

  @Test
  void idempotencyKeyReusedForAnotherEventIsRejected() {
    // Given
    Session session = createSession(agents, sessions);
    sessions.emitEvent(emit(session.getId(), "hello").toBuilder().setIdempotencyKey("k").build());

    // When / Then
    assertThatThrownBy(
            () ->
                sessions.emitEvent(
                    emit(session.getId(), "bye").toBuilder().setIdempotencyKey("k").build()))
        .satisfies(
            failure ->
                assertThat(Status.fromThrowable(failure).getCode())
                    .isEqualTo(Status.Code.INVALID_ARGUMENT))
        .hasMessageContaining("idempotency_key");
    assertThat(get(session.getId()).getLastSeq()).isEqualTo(1);
  }

  @Test
  void staleExpectedLastSeqIsAbortedAndAppendsNothing() {
    // Given
    Session session = createSession(agents, sessions);
    sessions.emitEvent(emit(session.getId(), "one"));

    // When
    StatusRuntimeException failure =
        catchStatus(
            () ->
                sessions.emitEvent(
                    emit(session.getId(), "two").toBuilder().setExpectedLastSeq(0).build()));

    // Then
    assertThat(failure.getStatus().getCode()).isEqualTo(Status.Code.ABORTED);
    assertThat(get(session.getId()).getLastSeq()).isEqualTo(1);
    assertThat(
            sessions
                .emitEvent(emit(session.getId(), "two").toBuilder().setExpectedLastSeq(1).build())
                .getEvent()
                .getSeq())
        .isEqualTo(2);
  }

  @Test
  void harnessEventsWithoutALeaseAreRejected() {
    // Given
    Session session = createSession(agents, sessions);
    Event running =
        Event.newBuilder()
            .setSessionStatusRunning(dev.corral.proto.v1.SessionStatusRunning.getDefaultInstance())
            .build();

    // When
    StatusRuntimeException withoutEpoch =
        catchStatus(
            () ->
                sessions.emitEvent(
                    EmitEventRequest.newBuilder()
                        .setSessionId(session.getId())
                        .setEvent(running)
                        .build()));
    StatusRuntimeException withStaleEpoch =
        catchStatus(
            () ->
                sessions.emitEvent(
                    EmitEventRequest.newBuilder()
                        .setSessionId(session.getId())
                        .setEvent(running)
                        .setLeaseEpoch(7)
                        .build()));

    // Then
    assertThat(withoutEpoch.getStatus().getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT);
    assertThat(withoutEpoch.getStatus().getDescription()).startsWith("lease_epoch");
    assertThat(withStaleEpoch.getStatus().getCode()).isEqualTo(Status.Code.FAILED_PRECONDITION);
    assertThat(get(session.getId()).getLastSeq()).isZero();
  }

  @Test
  void archivedSessionTakesNoMoreEvents() {
    // Given
    Session session = createSession(agents, sessions);
    sessions.emitEvent(emit(session.getId(), "before"));

    // When
    Session archived =
        sessions
            .archiveSession(
                ArchiveSessionRequest.newBuilder().setSessionId(session.getId()).build())
            .getSession();
    StatusRuntimeException failure =
        catchStatus(() -> sessions.emitEvent(emit(session.getId(), "after")));

    // Then it ended, its log's last event saying so, and nothing more was appended
    assertThat(archived.hasArchivedAt()).isTrue();
    assertThat(archived.getStatus()).isEqualTo(SessionStatus.SESSION_STATUS_TERMINATED);
    assertThat(failure.getStatus().getCode()).isEqualTo(Status.Code.FAILED_PRECONDITION);
    assertThat(get(session.getId()).getLastSeq()).isEqualTo(2);
    assertThat(
            sessions
                .getEvents(GetEventsRequest.newBuilder().setSessionId(session.getId()).build())
                .getEvents(1)
                .getSessionStatusTerminated()
                .getReason())
        .isEqualTo("archived");

    // And archiving it again returns it unchanged
    Session again =
        sessions
            .archiveSession(
                ArchiveSessionRequest.newBuilder().setSessionId(session.getId()).build())
            .getSession();
    assertThat(again).isEqualTo(archived);
  }

  @Test
  void getEventsReturnsPositionalSlices() {
    // Given a log of 10 messages
    Session session = createSession(agents, sessions);
    for (int i = 1; i <= 10; i++) {
      sessions.emitEvent(emit(session.getId(), "m" + i));
    }
    GetEventsRequest base =
        GetEventsRequest.newBuilder().setSessionId(session.getId()).setPageSize(3).build();

    // When
    GetEventsResponse after = sessions.getEvents(base.toBuilder().setAfterSeq(4).build());
    GetEventsResponse before = sessions.getEvents(base.toBuilder().setBeforeSeq(4).build());
    GetEventsResponse tail = sessions.getEvents(base.toBuilder().setTail(true).build());
    GetEventsResponse end = sessions.getEvents(base.toBuilder().setAfterSeq(8).build());

    // Then
    assertThat(after.getEventsList()).extracting(Event::getSeq).containsExactly(5L, 6L, 7L);
    assertThat(after.getHasMore()).isTrue();
    assertThat(before.getEventsList()).extracting(Event::getSeq).containsExactly(1L, 2L, 3L);
    assertThat(before.getHasMore()).isFalse();
    assertThat(tail.getEventsList()).extracting(Event::getSeq).containsExactly(8L, 9L, 10L);
    assertThat(tail.getHasMore()).isTrue();
    assertThat(end.getEventsList()).extracting(Event::getSeq).containsExactly(9L, 10L);
    assertThat(end.getHasMore()).isFalse();
    assertThat(end.getLastSeq()).isEqualTo(10);
  }

  @Test
  void pagesOfLargeEventsStopAtTheirByteBudgetAndTogetherHoldTheWholeLog() {
    // Given 24 messages of 200 000 bytes each (4.8 MB), more than a default client takes at once
    Session session = createSession(agents, sessions);
    for (int i = 1; i <= 24; i++) {
      sessions.emitEvent(emit(session.getId(), i + ":" + "x".repeat(200_000)));
    }

    // When a client with default settings reads the log forward, and the tail
    List<Long> seen = new java.util.ArrayList<>();
    long after = 0;
    int pages = 0;
    GetEventsResponse page;
    do {
      page =
          sessions.getEvents(
              GetEventsRequest.newBuilder()
                  .setSessionId(session.getId())
                  .setAfterSeq(after)
                  .build());
      assertThat(page.getSerializedSize()).isLessThanOrEqualTo(1 << 20);
      page.getEventsList().forEach(event -> seen.add(event.getSeq()));
      after = page.getEvents(page.getEventsCount() - 1).getSeq();
      pages++;
    } while (page.getHasMore());
    GetEventsResponse tail =
        sessions.getEvents(
            GetEventsRequest.newBuilder().setSessionId(session.getId()).setTail(true).build());

    // Then every page stayed within 1 MiB, and together they hold every event once, in order
    assertThat(pages).isGreaterThanOrEqualTo(5);
    assertThat(seen)
        .containsExactlyElementsOf(java.util.stream.LongStream.rangeClosed(1, 24).boxed().toList());
    assertThat(tail.getHasMore()).isTrue();
    assertThat(tail.getEventsList()).extracting(Event::getSeq).endsWith(24L);
    assertThat(tail.getSerializedSize()).isLessThanOrEqualTo(1 << 20);
  }

  @Test
  void getEventsFiltersByType() {
    // Given
    Session session = createSession(agents, sessions);
    sessions.emitEvent(emit(session.getId(), "m1"));
    sessions.emitEvent(
        EmitEventRequest.newBuilder()
            .setSessionId(session.getId())
            .setEvent(
                Event.newBuilder()
                    .setUserInterrupt(dev.corral.proto.v1.UserInterrupt.getDefaultInstance()))
            .build());
    sessions.emitEvent(emit(session.getId(), "m2"));

    // When
    GetEventsResponse interrupts =
        sessions.getEvents(
            GetEventsRequest.newBuilder()
                .setSessionId(session.getId())
                .addTypes("user.interrupt")
                .build());

    // Then
    assertThat(interrupts.getEventsList()).extracting(Event::getSeq).containsExactly(2L);
    assertThat(interrupts.getEvents(0).getType()).isEqualTo("user.interrupt");
  }

  @Test
  void listSessionsPagesNewestFirstWithOpaqueTokens() {
    // Given three sessions of one agent
    String agentId = createSession(agents, sessions).getAgent().getId();
    Set<String> created = new HashSet<>();
    for (int i = 0; i < 3; i++) {
      created.add(
          sessions
              .createSession(CreateSessionRequest.newBuilder().setAgentId(agentId).build())
              .getSession()
              .getId());
    }
    ListSessionsRequest first =
        ListSessionsRequest.newBuilder().setAgentId(agentId).setPageSize(2).build();

    // When
    ListSessionsResponse page1 = sessions.listSessions(first);
    ListSessionsResponse page2 =
        sessions.listSessions(first.toBuilder().setPageToken(page1.getNextPageToken()).build());

    // Then
    assertThat(page1.getSessionsList()).hasSize(2);
    assertThat(page1.getNextPageToken()).isNotEmpty();
    assertThat(page2.getSessionsList()).hasSize(2);
    assertThat(page2.getNextPageToken()).isEmpty();
    List<String> ids = new java.util.ArrayList<>();
    page1.getSessionsList().forEach(s -> ids.add(s.getId()));
    page2.getSessionsList().forEach(s -> ids.add(s.getId()));
    assertThat(ids)
        .isSortedAccordingTo(java.util.Comparator.reverseOrder())
        .doesNotHaveDuplicates()
        .containsAll(created);
  }

  @Test
  void deletedSessionIsGone() {
    // Given
    Session session = createSession(agents, sessions);
    sessions.emitEvent(emit(session.getId(), "m"));

    // When
    sessions.deleteSession(DeleteSessionRequest.newBuilder().setSessionId(session.getId()).build());

    // Then
    assertThat(catchStatus(() -> get(session.getId())).getStatus().getCode())
        .isEqualTo(Status.Code.NOT_FOUND);
    assertThat(
            catchStatus(
                    () ->
                        sessions.getEvents(
                            GetEventsRequest.newBuilder().setSessionId(session.getId()).build()))
                .getStatus()
                .getCode())
        .isEqualTo(Status.Code.NOT_FOUND);
  }

  private Session get(String id) {
    return sessions
        .getSession(GetSessionRequest.newBuilder().setSessionId(id).build())
        .getSession();
  }

  static StatusRuntimeException catchStatus(Runnable call) {
    try {
      call.run();
    } catch (StatusRuntimeException e) {
      return e;
    }
    throw new AssertionError("expected the call to fail");
  }

  @Test
  void everyEmittedEventRecordsWhoEmittedIt() {
    // Given
    Session session = createSession(agents, sessions);

    // When
    Event event = sessions.emitEvent(emit(session.getId(), "hello")).getEvent();

    // Then
    assertThat(event.getEmittedBy().getKind())
        .isEqualTo(dev.corral.proto.v1.EmitterKind.EMITTER_KIND_API_KEY);
    assertThat(event.getEmittedBy().getTenantId()).isEqualTo("default");
    assertThat(event.getEmittedBy().getApiKeyId()).startsWith("key_");
    assertThat(event.getEmittedBy().getSubject()).isEqualTo(event.getEmittedBy().getApiKeyId());
    assertThat(
            sessions
                .getEvents(GetEventsRequest.newBuilder().setSessionId(session.getId()).build())
                .getEvents(0)
                .getEmittedBy())
        .isEqualTo(event.getEmittedBy());
  }

  @Test
  void aClientCannotClaimToBeSomeoneElse() {
    // Given
    Session session = createSession(agents, sessions);
    Event forged =
        userMessage("forged").toBuilder()
            .setEmittedBy(
                dev.corral.proto.v1.EventEmitter.newBuilder()
                    .setKind(dev.corral.proto.v1.EmitterKind.EMITTER_KIND_HARNESS)
                    .setReplica("elsewhere"))
            .build();

    // When / Then
    assertThatThrownBy(
            () ->
                sessions.emitEvent(
                    EmitEventRequest.newBuilder()
                        .setSessionId(session.getId())
                        .setEvent(forged)
                        .build()))
        .isInstanceOfSatisfying(
            StatusRuntimeException.class,
            e -> {
              assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT);
              assertThat(e.getStatus().getDescription()).contains("emitted_by");
            });
    assertThat(
            sessions
                .getSession(GetSessionRequest.newBuilder().setSessionId(session.getId()).build())
                .getSession()
                .getLastSeq())
        .isZero();
  }

  @Test
  void repositoriesAreResourcesThatAreAddedListedAndRemovedButNotOnAnArchivedSession() {
    // Given a session created with one repository (no mount path: the repository's name)
    String agent = dev.corral.testing.Fixtures.createAgent(agents);
    Session session =
        sessions
            .createSession(
                CreateSessionRequest.newBuilder()
                    .setAgentId(agent)
                    .addResources(repository("https://github.com/acme/app.git", ""))
                    .build())
            .getSession();

    // When another is added, then the first removed
    dev.corral.proto.v1.SessionResource added =
        sessions
            .addSessionResource(
                dev.corral.proto.v1.AddSessionResourceRequest.newBuilder()
                    .setSessionId(session.getId())
                    .setResource(repository("https://GitLab.com:443/acme/lib", "deps/lib"))
                    .build())
            .getResource();
    List<dev.corral.proto.v1.SessionResource> both = resources(session.getId());
    sessions.removeSessionResource(
        dev.corral.proto.v1.RemoveSessionResourceRequest.newBuilder()
            .setSessionId(session.getId())
            .setResourceId(session.getResources(0).getId())
            .build());

    // Then ids are assigned, URLs normalized, mount paths decided, and the session shows them
    assertThat(session.getResources(0).getId()).startsWith("sres_");
    assertThat(session.getResources(0).getGitRepository().getMountPath()).isEqualTo("app");
    assertThat(added.getGitRepository().getUrl()).isEqualTo("https://gitlab.com/acme/lib");
    assertThat(both)
        .extracting(dev.corral.proto.v1.SessionResource::getId)
        .containsExactly(session.getResources(0).getId(), added.getId());
    assertThat(resources(session.getId())).containsExactly(added);
    assertThat(
            sessions
                .getSession(GetSessionRequest.newBuilder().setSessionId(session.getId()).build())
                .getSession()
                .getResourcesList())
        .containsExactly(added);

    // And an archived session takes no change
    sessions.archiveSession(
        ArchiveSessionRequest.newBuilder().setSessionId(session.getId()).build());
    assertThatThrownBy(
            () ->
                sessions.addSessionResource(
                    dev.corral.proto.v1.AddSessionResourceRequest.newBuilder()
                        .setSessionId(session.getId())
                        .setResource(repository("https://github.com/acme/x", ""))
                        .build()))
        .isInstanceOfSatisfying(
            StatusRuntimeException.class,
            e -> assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.FAILED_PRECONDITION));
    assertThat(resources(session.getId())).containsExactly(added);
    // but a resource may still go, and the credential it holds with it
    sessions.removeSessionResource(
        dev.corral.proto.v1.RemoveSessionResourceRequest.newBuilder()
            .setSessionId(session.getId())
            .setResourceId(added.getId())
            .build());
    assertThat(resources(session.getId())).isEmpty();
  }

  @Test
  void aSessionTakesSixteenResourcesAndThenNoMore() {
    // Given a session with 16 repositories
    Session session =
        sessions
            .createSession(
                CreateSessionRequest.newBuilder()
                    .setAgentId(dev.corral.testing.Fixtures.createAgent(agents))
                    .build())
            .getSession();
    for (int i = 0; i < 16; i++) {
      addRepository(session.getId(), "https://github.com/acme/r" + i, "repos/r" + i);
    }

    // When a 17th is added, or one whose mount path lies inside another's
    var seventeenth =
        org.assertj.core.api.Assertions.catchThrowableOfType(
            StatusRuntimeException.class,
            () -> addRepository(session.getId(), "https://github.com/acme/more", "more"));
    sessions.removeSessionResource(
        dev.corral.proto.v1.RemoveSessionResourceRequest.newBuilder()
            .setSessionId(session.getId())
            .setResourceId(resources(session.getId()).get(0).getId())
            .build());
    var inside =
        org.assertj.core.api.Assertions.catchThrowableOfType(
            StatusRuntimeException.class,
            () -> addRepository(session.getId(), "https://github.com/acme/in", "repos/r3/in"));
    // and one with no mount path, whose URL's last segment names no directory
    var unnamed =
        org.assertj.core.api.Assertions.catchThrowableOfType(
            StatusRuntimeException.class,
            () -> addRepository(session.getId(), "https://dev.azure.com/o/p/_git/My%20Repo", ""));

    // Then the first is RESOURCE_EXHAUSTED, the second names the request's own field, and the
    // session keeps what it had
    assertThat(seventeenth.getStatus().getCode()).isEqualTo(Status.Code.RESOURCE_EXHAUSTED);
    assertThat(inside.getStatus().getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT);
    assertThat(inside.getStatus().getDescription())
        .startsWith("resource.git_repository.mount_path");
    assertThat(unnamed.getStatus().getDescription())
        .startsWith("resource.git_repository.mount_path: is needed: the url's last segment");
    assertThat(resources(session.getId())).hasSize(15);
  }

  private void addRepository(String sessionId, String url, String mount) {
    sessions.addSessionResource(
        dev.corral.proto.v1.AddSessionResourceRequest.newBuilder()
            .setSessionId(sessionId)
            .setResource(repository(url, mount))
            .build());
  }

  private List<dev.corral.proto.v1.SessionResource> resources(String sessionId) {
    return sessions
        .listSessionResources(
            dev.corral.proto.v1.ListSessionResourcesRequest.newBuilder()
                .setSessionId(sessionId)
                .build())
        .getResourcesList();
  }

  private static dev.corral.proto.v1.SessionResource repository(String url, String mount) {
    return dev.corral.proto.v1.SessionResource.newBuilder()
        .setGitRepository(
            dev.corral.proto.v1.GitRepository.newBuilder().setUrl(url).setMountPath(mount))
        .build();
  }
}
