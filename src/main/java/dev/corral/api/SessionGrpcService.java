package dev.corral.api;

import dev.corral.common.InvalidArgumentException;
import dev.corral.identity.Principal;
import dev.corral.proto.v1.AddSessionResourceRequest;
import dev.corral.proto.v1.AddSessionResourceResponse;
import dev.corral.proto.v1.ArchiveSessionRequest;
import dev.corral.proto.v1.ArchiveSessionResponse;
import dev.corral.proto.v1.CreateSessionRequest;
import dev.corral.proto.v1.CreateSessionResponse;
import dev.corral.proto.v1.DeleteSessionRequest;
import dev.corral.proto.v1.DeleteSessionResponse;
import dev.corral.proto.v1.EmitEventRequest;
import dev.corral.proto.v1.EmitEventResponse;
import dev.corral.proto.v1.GetEventsRequest;
import dev.corral.proto.v1.GetEventsResponse;
import dev.corral.proto.v1.GetSessionRequest;
import dev.corral.proto.v1.GetSessionResponse;
import dev.corral.proto.v1.ListSessionResourcesRequest;
import dev.corral.proto.v1.ListSessionResourcesResponse;
import dev.corral.proto.v1.ListSessionsRequest;
import dev.corral.proto.v1.ListSessionsResponse;
import dev.corral.proto.v1.MutinySessionServiceGrpc;
import dev.corral.proto.v1.RemoveSessionResourceRequest;
import dev.corral.proto.v1.RemoveSessionResourceResponse;
import dev.corral.proto.v1.SessionDeleted;
import dev.corral.proto.v1.SessionServiceGrpc;
import dev.corral.proto.v1.StreamEventsRequest;
import dev.corral.proto.v1.StreamEventsResponse;
import dev.corral.session.EventSlice;
import dev.corral.session.Sessions;
import io.grpc.ServerServiceDefinition;
import io.quarkus.grpc.GrpcService;
import io.smallrye.mutiny.Multi;
import io.smallrye.mutiny.Uni;
import java.util.Map;

/** corral.v1.SessionService on top of {@link Sessions}. */
@GrpcService
public class SessionGrpcService extends MutinySessionServiceGrpc.SessionServiceImplBase {

  private final Sessions sessions;

  SessionGrpcService(Sessions sessions) {
    this.sessions = sessions;
  }

  @Override
  public ServerServiceDefinition bindService() {
    return ServiceDefinitions.rewrite(
        super.bindService(),
        Map.of(
            SessionServiceGrpc.getStreamEventsMethod().getFullMethodName(),
            FlowControlledStream.handler(this::follow)));
  }

  @Override
  public Uni<CreateSessionResponse> createSession(CreateSessionRequest request) {
    Principal caller = Caller.current();
    return sessions
        .create(
            caller.tenant(),
            caller.emitter(),
            new Sessions.NewSession(
                request.getAgentId(),
                request.getAgentVersion(),
                request.getTitle(),
                request.getMetadataMap(),
                request.getInitialEventsList(),
                request.getBudget(),
                request.getEnvironmentId(),
                request.getResourcesList(),
                request.getVaultIdsList()))
        .map(session -> CreateSessionResponse.newBuilder().setSession(session).build());
  }

  @Override
  public Uni<GetSessionResponse> getSession(GetSessionRequest request) {
    return sessions
        .get(Caller.current().tenant(), request.getSessionId())
        .map(session -> GetSessionResponse.newBuilder().setSession(session).build());
  }

  @Override
  public Uni<ListSessionsResponse> listSessions(ListSessionsRequest request) {
    return sessions
        .list(
            Caller.current().tenant(),
            request.getPageSize(),
            request.getPageToken(),
            request.getAgentId(),
            request.getStatusesList(),
            request.getIncludeArchived())
        .map(
            page ->
                ListSessionsResponse.newBuilder()
                    .addAllSessions(page.items())
                    .setNextPageToken(page.nextPageToken())
                    .build());
  }

  @Override
  public Uni<ArchiveSessionResponse> archiveSession(ArchiveSessionRequest request) {
    return sessions
        .archive(Caller.current().tenant(), request.getSessionId())
        .map(session -> ArchiveSessionResponse.newBuilder().setSession(session).build());
  }

  @Override
  public Uni<DeleteSessionResponse> deleteSession(DeleteSessionRequest request) {
    return sessions
        .delete(Caller.current().tenant(), request.getSessionId())
        .map(ignored -> DeleteSessionResponse.getDefaultInstance());
  }

  @Override
  public Uni<EmitEventResponse> emitEvent(EmitEventRequest request) {
    Principal caller = Caller.current();
    return sessions
        .emit(
            caller.tenant(),
            caller.emitter(),
            new Sessions.Emit(
                request.getSessionId(),
                request.hasEvent() ? request.getEvent() : null,
                request.getIdempotencyKey(),
                request.hasExpectedLastSeq() ? request.getExpectedLastSeq() : null,
                request.getLeaseEpoch()))
        .map(
            appended ->
                EmitEventResponse.newBuilder()
                    .setEvent(appended.events().get(0))
                    .setDeduplicated(appended.deduplicated())
                    .build());
  }

  @Override
  public Uni<GetEventsResponse> getEvents(GetEventsRequest request) {
    EventSlice.Position position =
        switch (request.getPositionCase()) {
          case BEFORE_SEQ -> EventSlice.Position.BEFORE;
          case TAIL -> {
            if (!request.getTail()) {
              throw new InvalidArgumentException(
                  "tail",
                  "must be true when set (leave the position unset to read from the start)");
            }
            yield EventSlice.Position.TAIL;
          }
          default -> EventSlice.Position.AFTER;
        };
    long seq =
        position == EventSlice.Position.BEFORE ? request.getBeforeSeq() : request.getAfterSeq();
    return sessions
        .events(
            Caller.current().tenant(),
            request.getSessionId(),
            position,
            seq,
            request.getPageSize(),
            request.getTypesList())
        .map(
            page ->
                GetEventsResponse.newBuilder()
                    .addAllEvents(page.events())
                    .setHasMore(page.hasMore())
                    .setLastSeq(page.lastSeq())
                    .build());
  }

  @Override
  public Uni<AddSessionResourceResponse> addSessionResource(AddSessionResourceRequest request) {
    return sessions
        .addResource(Caller.current().tenant(), request.getSessionId(), request.getResource())
        .map(resource -> AddSessionResourceResponse.newBuilder().setResource(resource).build());
  }

  @Override
  public Uni<RemoveSessionResourceResponse> removeSessionResource(
      RemoveSessionResourceRequest request) {
    return sessions
        .removeResource(Caller.current().tenant(), request.getSessionId(), request.getResourceId())
        .map(ignored -> RemoveSessionResourceResponse.getDefaultInstance());
  }

  @Override
  public Uni<ListSessionResourcesResponse> listSessionResources(
      ListSessionResourcesRequest request) {
    return sessions
        .resources(Caller.current().tenant(), request.getSessionId())
        .map(
            resources ->
                ListSessionResourcesResponse.newBuilder().addAllResources(resources).build());
  }

  private Multi<StreamEventsResponse> follow(StreamEventsRequest request) {
    return sessions
        .follow(
            Caller.current().tenant(),
            request.getSessionId(),
            request.getAfterSeq(),
            request.getTypesList(),
            request.getIncludeDeltas())
        .map(
            item ->
                switch (item.kind()) {
                  case EVENT -> StreamEventsResponse.newBuilder().setEvent(item.event()).build();
                  case DELTA -> StreamEventsResponse.newBuilder().setDelta(item.delta()).build();
                  case DELETED ->
                      StreamEventsResponse.newBuilder()
                          .setSessionDeleted(
                              SessionDeleted.newBuilder().setSessionId(request.getSessionId()))
                          .build();
                });
  }
}
