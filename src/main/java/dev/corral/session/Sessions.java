package dev.corral.session;

import dev.corral.agent.AgentRepository;
import dev.corral.common.FailedPreconditionException;
import dev.corral.common.IdKind;
import dev.corral.common.InputRules;
import dev.corral.common.InvalidArgumentException;
import dev.corral.common.Page;
import dev.corral.common.Paging;
import dev.corral.common.Tenant;
import dev.corral.db.TenantCaps;
import dev.corral.db.TenantLimits;
import dev.corral.proto.v1.Agent;
import dev.corral.proto.v1.Event;
import dev.corral.proto.v1.EventEmitter;
import dev.corral.proto.v1.GitRepository;
import dev.corral.proto.v1.Session;
import dev.corral.proto.v1.SessionBudget;
import dev.corral.proto.v1.SessionResource;
import dev.corral.proto.v1.SessionStatus;
import io.smallrye.mutiny.Multi;
import io.smallrye.mutiny.Uni;
import jakarta.enterprise.context.ApplicationScoped;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * The session operations offered to clients: lifecycle, emitting events, reading and following
 * logs.
 */
@ApplicationScoped
public class Sessions {

  public static final int DEFAULT_PAGE_SIZE = 20;
  public static final int MAX_PAGE_SIZE = 100;
  public static final int DEFAULT_EVENT_PAGE_SIZE = 100;
  public static final int MAX_EVENT_PAGE_SIZE = 1000;
  public static final int MAX_INITIAL_EVENTS = 50;
  public static final int MAX_TITLE = 256;

  private final TenantCaps caps;

  private final TenantLimits limits;
  private final SessionRepository repository;
  private final AgentRepository agents;
  private final EventLog log;
  private final EventTail tail;
  private final SessionSignals signals;
  private final LiveDeltas deltas;
  private final StreamSlots streamSlots;
  private final LeaseClaims claims;
  private final dev.corral.agent.Environments environments;
  private final VaultDirectory vaults;
  private final dev.corral.common.CredentialBindings credentials;
  private final jakarta.enterprise.event.Event<SessionWorkArrived> workArrived;
  private final jakarta.enterprise.event.Event<SessionEnded> ended;
  private final TenantReads reads;

  Sessions(
      SessionRepository repository,
      AgentRepository agents,
      EventLog log,
      EventTail tail,
      SessionSignals signals,
      LiveDeltas deltas,
      StreamSlots streamSlots,
      LeaseClaims claims,
      dev.corral.agent.Environments environments,
      VaultDirectory vaults,
      dev.corral.common.CredentialBindings credentials,
      jakarta.enterprise.event.Event<SessionWorkArrived> workArrived,
      jakarta.enterprise.event.Event<SessionEnded> ended,
      TenantCaps caps,
      TenantLimits limits,
      SessionConfig config) {
    this.caps = caps;
    this.reads = new TenantReads(config.readsPerTenant(), config.readsWaitingPerTenant());
    this.limits = limits;
    this.ended = ended;
    this.repository = repository;
    this.agents = agents;
    this.log = log;
    this.tail = tail;
    this.signals = signals;
    this.workArrived = workArrived;
    this.deltas = deltas;
    this.streamSlots = streamSlots;
    this.claims = claims;
    this.environments = environments;
    this.vaults = vaults;
    this.credentials = credentials;
  }

  /**
   * Creates an idle session of {@code tenant} from one of its agents, and appends its initial user
   * messages as emitted by {@code emitter}.
   */
  public Uni<Session> create(Tenant tenant, EventEmitter emitter, NewSession request) {
    return Uni.createFrom()
        .item(
            () -> {
              checkedResources(request.resources());
              VaultDirectory.checkIds("vault_ids", request.vaultIds());
              return checkNewSession(request, emitter);
            })
        .flatMap(
            events ->
                environmentUsable(tenant, request.environmentId())
                    .call(ignored -> vaults.requireUsable(tenant, "vault_ids", request.vaultIds()))
                    .call(ignored -> credentialsBound(tenant, request.resources()))
                    .flatMap(
                        ignored -> agents.find(tenant, request.agentId(), request.agentVersion()))
                    .invoke(Sessions::requireActive)
                    .flatMap(agent -> insert(tenant, request, agent, events)));
  }

  public Uni<Session> get(Tenant tenant, String sessionId) {
    return Uni.createFrom()
        .item(() -> IdKind.SESSION.require("session_id", sessionId))
        .flatMap(id -> repository.find(tenant, id));
  }

  /**
   * The session {@code sessionId} whatever its tenant: for the harness working it and the sandboxes
   * it provisions, never for a client's request.
   */
  public Uni<Session> find(String sessionId) {
    return repository.findAnyTenant(sessionId);
  }

  public Uni<Page<Session>> list(
      Tenant tenant,
      int pageSize,
      String pageToken,
      String agentId,
      List<SessionStatus> statuses,
      boolean includeArchived) {
    return Uni.createFrom()
        .item(() -> Paging.pageSize("page_size", pageSize, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE))
        .flatMap(
            size ->
                repository
                    .list(
                        tenant,
                        Paging.keyOf("page_token", pageToken, IdKind.SESSION::isValid),
                        agentId.isEmpty() ? null : IdKind.AGENT.require("agent_id", agentId),
                        statusColumns(statuses),
                        includeArchived,
                        size + 1)
                    .map(sessions -> Page.of(sessions, size, Session::getId)));
  }

  /**
   * Archives a session: it ends (its log's last event is {@code session.status_terminated}, which
   * stops its harness at its next append and ends every stream of it), and becomes read-only.
   * Archiving an archived session changes nothing.
   */
  public Uni<Session> archive(Tenant tenant, String sessionId) {
    return Uni.createFrom()
        .item(() -> IdKind.SESSION.require("session_id", sessionId))
        .flatMap(
            id ->
                repository
                    .find(tenant, id)
                    .flatMap(
                        session ->
                            session.hasArchivedAt()
                                ? Uni.createFrom().item(session) // archived already: unchanged
                                : terminate(tenant, session)
                                    .flatMap(ignored -> repository.archive(tenant, id))
                                    .invoke(
                                        archived ->
                                            ended.fireAsync(new SessionEnded(archived.getId())))));
  }

  /** Appends {@code session.status_terminated} to a session that has not ended yet. */
  private Uni<Void> terminate(Tenant tenant, Session session) {
    if (session.hasArchivedAt() || session.getStatus() == SessionStatus.SESSION_STATUS_TERMINATED) {
      return Uni.createFrom().voidItem();
    }
    Event terminated =
        Event.newBuilder()
            .setSessionStatusTerminated(
                dev.corral.proto.v1.SessionStatusTerminated.newBuilder().setReason("archived"))
            .build();
    return log.append(AppendRequest.of(session.getId(), NewEvent.of(terminated)).within(tenant))
        .onFailure(SessionClosedException.class)
        .recoverWithNull() // archived or terminated meanwhile
        .replaceWithVoid();
  }

  /**
   * Deletions of one tenant's sessions that may run at once on a replica. A deletion is one
   * statement over all of a session's events (it may run up to 15 minutes), and holds a connection
   * of the replica's pool while it runs: without a bound, a tenant deleting many large sessions at
   * once held the pool every other tenant needs.
   */
  static final int DELETIONS_PER_TENANT = 2;

  private final TenantSlots deletions = new TenantSlots();

  public Uni<Void> delete(Tenant tenant, String sessionId) {
    return Uni.createFrom()
        .item(() -> IdKind.SESSION.require("session_id", sessionId))
        .flatMap(
            id -> {
              Runnable giveBack =
                  deletions.take(
                      tenant,
                      DELETIONS_PER_TENANT,
                      () ->
                          DELETIONS_PER_TENANT
                              + " deletions of this tenant's sessions are under way on this"
                              + " server; delete this one when one of them has ended");
              // The statement runs on when the caller goes away, counts until it ends, and then
              // tells the session's streams and sandboxes.
              return Uni.createFrom()
                  .<Void>emitter(
                      emitter ->
                          repository
                              .delete(tenant, id)
                              .invoke(
                                  () -> {
                                    signals.deleted(id);
                                    ended.fireAsync(new SessionEnded(id));
                                  })
                              .onTermination()
                              .invoke(giveBack)
                              .subscribe()
                              .with(emitter::complete, emitter::fail));
            });
  }

  /**
   * Appends one event emitted through the API to a session of {@code tenant} (by a client, or a
   * harness with its lease epoch), as emitted by {@code emitter}.
   */
  public Uni<Appended> emit(Tenant tenant, EventEmitter emitter, Emit request) {
    return Uni.createFrom()
        .item(() -> checkEmit(request, emitter).within(tenant))
        .call(this::checkAnsweredEvent)
        .call(this::checkCompaction)
        .map(this::withClaim)
        .flatMap(log::append)
        .invoke(appended -> announceWork(tenant, appended));
  }

  /**
   * Appends several client events to a session of {@code tenant} in one append: all of them, in
   * order, or none (each is checked first, and the append is one statement).
   *
   * @param field the request's name of the list, for errors ({@code events[2].content})
   */
  public Uni<Appended> emitAll(
      Tenant tenant, EventEmitter emitter, String sessionId, String field, List<Event> events) {
    return Uni.createFrom()
        .item(() -> checkEmitAll(sessionId, field, events, emitter).within(tenant))
        .call(append -> checkAnsweredEvents(append, field))
        .map(this::withClaim)
        .flatMap(log::append)
        .invoke(appended -> announceWork(tenant, appended));
  }

  private static AppendRequest checkEmitAll(
      String sessionId, String field, List<Event> events, EventEmitter emitter) {
    String id = IdKind.SESSION.require("session_id", sessionId);
    if (events.isEmpty()) {
      throw new InvalidArgumentException(field, "needs at least one event");
    }
    if (events.size() > MAX_INITIAL_EVENTS) {
      throw new InvalidArgumentException(
          field, "has " + events.size() + " events; at most " + MAX_INITIAL_EVENTS + " at once");
    }
    List<NewEvent> checked = new ArrayList<>();
    java.util.Set<String> results = new java.util.HashSet<>();
    java.util.Set<String> confirmations = new java.util.HashSet<>();
    for (int i = 0; i < events.size(); i++) {
      EventType type = EventRules.checkClient(field + "[" + i + "]", events.get(i));
      NewEvent event =
          new NewEvent(IdKind.EVENT.next(), type, NewEvent.onlyPayload(events.get(i)), null)
              .emittedBy(emitter);
      // the log takes one of each per call: a second in the same request is the client's mistake,
      // not a call someone else answered first
      if (event.resultFor() != null && !results.add(event.resultFor())) {
        throw new InvalidArgumentException(
            field + "[" + i + "]." + answeredField(type),
            "answers the same call as an earlier event");
      }
      if (event.confirmationFor() != null && !confirmations.add(event.confirmationFor())) {
        throw new InvalidArgumentException(
            field + "[" + i + "].user_tool_confirmation.tool_use_id",
            "confirms the same call as an earlier event");
      }
      checked.add(event);
    }
    return new AppendRequest(id, checked, null, null);
  }

  /** The field of an event of {@code type} that names the call it answers. */
  private static String answeredField(EventType type) {
    return switch (type) {
      case AGENT_TOOL_RESULT -> "agent_tool_result.tool_use_id";
      case AGENT_MCP_TOOL_RESULT -> "agent_mcp_tool_result.mcp_tool_use_id";
      default -> "user_custom_tool_result.custom_tool_use_id";
    };
  }

  /** As {@link #checkAnsweredEvent} for each event, a fault named by its place in {@code field}. */
  private Uni<Void> checkAnsweredEvents(AppendRequest append, String field) {
    return Multi.createFrom()
        .range(0, append.events().size())
        .onItem()
        .transformToUniAndConcatenate(
            i ->
                checkAnsweredEvent(
                        new AppendRequest(
                            append.sessionId(),
                            List.of(append.events().get(i)),
                            null,
                            null,
                            null,
                            append.tenant()))
                    .onFailure(InvalidArgumentException.class)
                    .transform(
                        failure -> {
                          InvalidArgumentException invalid = (InvalidArgumentException) failure;
                          return new InvalidArgumentException(
                              invalid.field().replaceFirst("^event", field + "[" + i + "]"),
                              invalid.problem());
                        }))
        .collect()
        .last()
        .replaceWithVoid();
  }

  /** User work on a session also claims its harness lease for this replica, when it may. */
  private AppendRequest withClaim(AppendRequest append) {
    if (append.events().stream().noneMatch(event -> event.type().wakesHarness())) {
      return append;
    }
    return claims
        .claimFor(append.sessionId(), append.tenant().id())
        .map(append::claiming)
        .orElse(append);
  }

  private void announceWork(Tenant tenant, Appended appended) {
    boolean needsHarness =
        appended.events().stream()
            .anyMatch(
                event ->
                    EventType.fromWireName(event.getType())
                        .map(EventType::wakesHarness)
                        .orElse(false));
    if (needsHarness && !appended.deduplicated()) {
      workArrived.fire(
          new SessionWorkArrived(
              appended.events().get(0).getSessionId(), tenant.id(), appended.lease()));
    }
  }

  /**
   * A compaction's summary stands for events the log has: its {@code up_to_seq} is at most the
   * session's last seq now (seqs only grow, so the compaction comes after them). One further ahead
   * would hide every event up to it, those still to come, from each later model request.
   */
  private Uni<Void> checkCompaction(AppendRequest append) {
    NewEvent event = append.events().get(0);
    if (event.type() != EventType.AGENT_CONTEXT_COMPACTED) {
      return Uni.createFrom().voidItem();
    }
    long upTo = event.payload().getAgentContextCompacted().getUpToSeq();
    return repository
        .find(append.tenant(), append.sessionId())
        .invoke(
            session -> {
              if (upTo > session.getLastSeq()) {
                throw new InvalidArgumentException(
                    "event.agent_context_compacted.up_to_seq",
                    "is "
                        + upTo
                        + ", past the session's last seq "
                        + session.getLastSeq()
                        + "; a summary stands only for events the log holds");
              }
            })
        .replaceWithVoid();
  }

  /**
   * A confirmation or a tool result of any kind must answer an event of this session that asks for
   * it, and be its first: a second one is refused here, before it joins a batch of appends that its
   * unique index would roll back whole (that index stays, for answers that race).
   */
  private Uni<Void> checkAnsweredEvent(AppendRequest append) {
    NewEvent event = append.events().get(0);
    String answered = event.resultFor() != null ? event.resultFor() : event.confirmationFor();
    if (answered == null) {
      return Uni.createFrom().voidItem();
    }
    boolean confirmation = event.confirmationFor() != null;
    return log.find(append.tenant(), append.sessionId(), answered)
        .invoke(found -> EventRules.checkAnswers(event, found))
        .chain(found -> log.answers(append.sessionId(), answered, event.idempotencyKey()))
        .invoke(
            answers -> {
              if (confirmation && answers.result()) {
                // an interrupt (or a harness restart) answered the call: the confirmation would
                // change nothing, and the client must know
                throw new dev.corral.common.FailedPreconditionException(
                    "tool call "
                        + answered
                        + " already has its result (the session was interrupted or the call was"
                        + " closed); a confirmation no longer applies to it");
              }
              if (confirmation ? answers.confirmation() : answers.result()) {
                throw EventLog.secondAnswer(append.sessionId(), confirmation);
              }
            })
        .replaceWithVoid();
  }

  /**
   * A positional slice of a log, read once fewer than {@link SessionConfig#readsPerTenant()} of the
   * tenant's reads run on this replica.
   *
   * @param seq the cursor of AFTER and BEFORE slices
   * @param pageSize 0 for the default
   */
  public Uni<EventPage> events(
      Tenant tenant,
      String sessionId,
      EventSlice.Position position,
      long seq,
      int pageSize,
      List<String> types) {
    return Uni.createFrom()
        .item(() -> checkSlice(sessionId, position, seq, pageSize, types))
        .flatMap(slice -> reads.run(tenant, () -> log.read(tenant, slice)));
  }

  /**
   * Every event after {@code afterSeq}, then live ones, until the session ends: after its {@code
   * session.status_terminated} event (sent only if {@code types} takes it; a stream opened past it
   * ends at once), or when it is deleted, which the last item ({@link Tailed.Kind#DELETED}) says.
   * With {@code includeDeltas} also the live previews of blocks the model is writing (best effort).
   */
  public Multi<Tailed> follow(
      Tenant tenant, String sessionId, long afterSeq, List<String> types, boolean includeDeltas) {
    return Multi.createFrom()
        .deferred(
            () -> {
              Set<String> filter = checkFollow(sessionId, afterSeq, types);
              Runnable slot = streamSlots.take(tenant);
              return followChecked(tenant, sessionId, afterSeq, filter, includeDeltas)
                  .onTermination()
                  .invoke(slot);
            });
  }

  /**
   * Takes one of {@code tenant}'s live stream slots on this replica, for {@link #follow} with a
   * slot; running the returned action gives it back. An HTTP stream takes its slot before its
   * headers go out, so that a refusal is an HTTP error rather than an error event.
   *
   * @throws dev.corral.common.ResourceExhaustedException if the tenant has as many open as it may
   */
  public Runnable takeStreamSlot(Tenant tenant) {
    return streamSlots.take(tenant);
  }

  /**
   * {@link #follow}, with the stream slot {@code slot} already taken by {@link #takeStreamSlot}:
   * given back when the stream ends, also when its checks fail.
   */
  public Multi<Tailed> follow(
      Tenant tenant,
      String sessionId,
      long afterSeq,
      List<String> types,
      boolean includeDeltas,
      Runnable slot) {
    return Multi.createFrom()
        .deferred(
            () ->
                followChecked(
                    tenant,
                    sessionId,
                    afterSeq,
                    checkFollow(sessionId, afterSeq, types),
                    includeDeltas))
        .onTermination()
        .invoke(slot);
  }

  private Multi<Tailed> followChecked(
      Tenant tenant, String sessionId, long afterSeq, Set<String> filter, boolean includeDeltas) {
    // Deltas are caught from the subscription on, before the session is even read: a client that
    // sends a message right after subscribing sees its whole preview.
    LiveDeltas.Handle handle = includeDeltas ? deltas.follow(sessionId) : null;
    Multi<Tailed> followed =
        repository
            .find(tenant, sessionId)
            .onItem()
            .transformToMulti(
                session -> {
                  if (afterSeq > session.getLastSeq()) {
                    // A cursor past the end would skip every event up to it unsaid.
                    throw new InvalidArgumentException(
                        "after_seq",
                        "is past the session's last event (seq " + session.getLastSeq() + ")");
                  }
                  return session.getStatus() == SessionStatus.SESSION_STATUS_TERMINATED
                          && afterSeq == session.getLastSeq()
                      ? Multi.createFrom().<Tailed>empty() // its last event is behind
                      : tailed(tenant, sessionId, afterSeq, filter, handle);
                });
    return handle == null ? followed : followed.onTermination().invoke(handle::complete);
  }

  private Multi<Tailed> tailed(
      Tenant tenant, String sessionId, long afterSeq, Set<String> types, LiveDeltas.Handle deltas) {
    String terminal = EventType.SESSION_STATUS_TERMINATED.wireName();
    AtomicBoolean terminated = new AtomicBoolean();
    Multi<Event> events =
        // a stream's own reads (catching up, or behind the shared window) take the tenant's turn
        // as its page reads do: a filtered one walks the log, holding a connection
        tail.follow(sessionId, afterSeq, types, true, read -> reads.runInTurn(tenant, read))
            .invoke(
                event -> {
                  if (event.getType().equals(terminal)) {
                    terminated.set(true);
                  }
                });
    if (!types.isEmpty() && !types.contains(terminal)) {
      events = events.select().where(event -> !event.getType().equals(terminal));
    }
    Multi<Tailed> items = events.map(Tailed::of);
    if (deltas != null) {
      items =
          Multi.createBy()
              .merging()
              .withRequests(1) // one event at a time, as the client takes them
              .streams(
                  items.onTermination().invoke(deltas::complete),
                  deltas
                      .deltas()
                      // previews of the types the client follows only
                      .select()
                      .where(delta -> types.isEmpty() || types.contains(delta.getType()))
                      .map(Tailed::of))
              // the terminal event is the last word, and an event whole is the last word on
              // itself: no preview after either (the merge may find a delta still waiting)
              .select()
              .where(new PreviewsFirst(terminated));
    }
    return items
        .onCompletion()
        .switchTo(
            () ->
                terminated.get()
                    ? Multi.createFrom().empty()
                    : Multi.createFrom().item(Tailed.DELETED));
  }

  /**
   * Lets a delta through only before its event and before the session's end. Items of one stream
   * come one at a time, so it needs no lock; it remembers the ids of the last events sent only, as
   * deltas preview the event the model is writing.
   */
  private static final class PreviewsFirst implements java.util.function.Predicate<Tailed> {
    private static final int REMEMBERED = 64;
    private final AtomicBoolean terminated;
    private final Set<String> sent =
        java.util.Collections.newSetFromMap(
            new java.util.LinkedHashMap<>() {
              @Override
              protected boolean removeEldestEntry(Map.Entry<String, Boolean> eldest) {
                return size() > REMEMBERED;
              }
            });

    PreviewsFirst(AtomicBoolean terminated) {
      this.terminated = terminated;
    }

    @Override
    public boolean test(Tailed item) {
      if (item.kind() == Tailed.Kind.EVENT) {
        sent.add(item.event().getId());
        return true;
      }
      return item.kind() != Tailed.Kind.DELTA
          || (!terminated.get() && !sent.contains(item.delta().getEventId()));
    }
  }

  private static Set<String> checkFollow(String sessionId, long afterSeq, List<String> types) {
    IdKind.SESSION.require("session_id", sessionId);
    if (afterSeq < 0) {
      throw new InvalidArgumentException("after_seq", "must not be negative");
    }
    return eventTypes("types", types);
  }

  /**
   * Checks what a new session's request holds on its own, as {@link #create} does before any
   * lookup: for a caller that must know before it stores anything for the session (a repository's
   * token, in the vault).
   *
   * @throws InvalidArgumentException naming the first field that is not right
   */
  public static void checkNew(NewSession request, EventEmitter emitter) {
    checkedResources(request.resources());
    VaultDirectory.checkIds("vault_ids", request.vaultIds());
    checkNewSession(request, emitter);
  }

  private static List<NewEvent> checkNewSession(NewSession request, EventEmitter emitter) {
    IdKind.AGENT.require("agent_id", request.agentId());
    if (request.agentVersion() < 0) {
      throw new InvalidArgumentException("agent_version", "must not be negative");
    }
    InputRules.name("title", request.title(), 0, MAX_TITLE);
    InputRules.metadata("metadata", request.metadata());
    if (request.budget().getMaxTokens() < 0) {
      throw new InvalidArgumentException("budget.max_tokens", "must not be negative");
    }
    if (request.budget().getMaxModelRequests() < 0) {
      throw new InvalidArgumentException("budget.max_model_requests", "must not be negative");
    }
    if (request.initialEvents().size() > MAX_INITIAL_EVENTS) {
      throw new InvalidArgumentException(
          "initial_events",
          "has " + request.initialEvents().size() + " events; the limit is " + MAX_INITIAL_EVENTS);
    }
    List<NewEvent> events = new ArrayList<>();
    for (int i = 0; i < request.initialEvents().size(); i++) {
      String field = "initial_events[" + i + "]";
      Event event = request.initialEvents().get(i);
      // a session starts with what its user says; the rest comes from its harness or later
      if (EventType.of(event).filter(type -> type != EventType.USER_MESSAGE).isPresent()) {
        throw new InvalidArgumentException(field, "must be a user.message");
      }
      EventRules.check(field, event, null);
      events.add(NewEvent.of(event).emittedBy(emitter));
    }
    return events;
  }

  private Uni<Void> environmentUsable(Tenant tenant, String environmentId) {
    return environmentId.isEmpty()
        ? Uni.createFrom().voidItem()
        : environments.usable(tenant, "environment_id", environmentId).replaceWithVoid();
  }

  private static void requireActive(Agent agent) {
    if (agent.hasArchivedAt()) {
      throw new FailedPreconditionException(
          "agent " + agent.getId() + " is archived; new sessions cannot use it");
    }
  }

  private Uni<Session> insert(
      Tenant tenant, NewSession request, Agent agent, List<NewEvent> events) {
    String id = IdKind.SESSION.next();
    java.util.concurrent.atomic.AtomicReference<Appended> initial =
        new java.util.concurrent.atomic.AtomicReference<>();
    return limits
        .capped(
            TenantLimits.Capped.SESSIONS,
            tenant.id(),
            caps.maxSessions(),
            connection ->
                repository
                    .insert(
                        connection,
                        tenant,
                        id,
                        agent,
                        request.title(),
                        request.metadata(),
                        request.budget(),
                        request.environmentId(),
                        checkedResources(request.resources()),
                        request.vaultIds())
                    .flatMap(
                        ignored ->
                            events.isEmpty()
                                ? Uni.createFrom().<Appended>nullItem()
                                : log.appendWith(
                                    connection,
                                    new AppendRequest(
                                        id,
                                        events,
                                        0L,
                                        null,
                                        claims.claimFor(id, tenant.id()).orElse(null),
                                        tenant)))
                    .invoke(initial::set)
                    .flatMap(appended -> repository.find(connection, tenant, id)))
        .invoke(
            session -> {
              Appended appended = initial.get();
              if (appended != null) {
                log.publish(appended); // committed: readers wake, and it is counted
                workArrived.fire(new SessionWorkArrived(id, tenant.id(), appended.lease()));
              }
            });
  }

  private static AppendRequest checkEmit(Emit request, EventEmitter emitter) {
    String sessionId = IdKind.SESSION.require("session_id", request.sessionId());
    if (request.event() == null) {
      throw new InvalidArgumentException("event", "is required");
    }
    Long epoch = request.leaseEpoch() == 0 ? null : request.leaseEpoch();
    if (request.leaseEpoch() < 0) {
      throw new InvalidArgumentException("lease_epoch", "must not be negative");
    }
    if (request.expectedLastSeq() != null && request.expectedLastSeq() < 0) {
      throw new InvalidArgumentException("expected_last_seq", "must not be negative");
    }
    EventType type = EventRules.check("event", request.event(), epoch);
    String key = EventRules.idempotencyKey("idempotency_key", request.idempotencyKey());
    NewEvent event =
        new NewEvent(IdKind.EVENT.next(), type, NewEvent.onlyPayload(request.event()), key)
            .emittedBy(emitter);
    return new AppendRequest(sessionId, List.of(event), request.expectedLastSeq(), epoch);
  }

  private static EventSlice checkSlice(
      String sessionId, EventSlice.Position position, long seq, int pageSize, List<String> types) {
    IdKind.SESSION.require("session_id", sessionId);
    if (seq < 0) {
      throw new InvalidArgumentException(
          position == EventSlice.Position.BEFORE ? "before_seq" : "after_seq",
          "must not be negative");
    }
    if (position == EventSlice.Position.BEFORE && seq == 0) {
      // no event is before the first: a page of none would read as the start of the log
      throw new InvalidArgumentException(
          "before_seq", "must be at least 1 (a log's first seq is 1; tail gives its last page)");
    }
    int limit =
        Paging.pageSize("page_size", pageSize, DEFAULT_EVENT_PAGE_SIZE, MAX_EVENT_PAGE_SIZE);
    return new EventSlice(sessionId, position, seq, limit, eventTypes("types", types));
  }

  private static Set<String> eventTypes(String field, List<String> types) {
    Set<String> known = new HashSet<>();
    for (int i = 0; i < types.size(); i++) {
      String type = types.get(i);
      if (EventType.fromWireName(type).isEmpty()) {
        throw new InvalidArgumentException(
            field + "[" + i + "]", "'" + type + "' is not a known event type");
      }
      known.add(type);
    }
    return known;
  }

  private static List<String> statusColumns(List<SessionStatus> statuses) {
    // each status once: a filter of a million copies must not reach the database as one
    Set<String> columns = new java.util.LinkedHashSet<>();
    for (int i = 0; i < statuses.size(); i++) {
      SessionStatus status = statuses.get(i);
      if (status == SessionStatus.SESSION_STATUS_UNSPECIFIED
          || status == SessionStatus.UNRECOGNIZED) {
        throw new InvalidArgumentException("statuses[" + i + "]", "is not a session status");
      }
      columns.add(SessionRepository.column(status));
    }
    return List.copyOf(columns);
  }

  /** A CreateSession request. {@code agentVersion} 0 means the latest. */
  public record NewSession(
      String agentId,
      int agentVersion,
      String title,
      Map<String, String> metadata,
      List<Event> initialEvents,
      SessionBudget budget,
      String environmentId,
      List<SessionResource> resources,
      List<String> vaultIds) {}

  /** Adds a resource to a live session of {@code tenant}; sandboxes provisioned next get it. */
  public Uni<SessionResource> addResource(
      Tenant tenant, String sessionId, SessionResource resource) {
    return Uni.createFrom()
        .item(
            () -> {
              IdKind.SESSION.require("session_id", sessionId);
              return ResourceRules.checked("resource", resource);
            })
        .call(checked -> credentialBound(tenant, "resource", checked))
        .flatMap(
            checked ->
                repository.changeResources(
                    tenant,
                    sessionId,
                    false,
                    current -> {
                      ResourceRules.checkAdded("resource", current, checked);
                      List<SessionResource> next = new ArrayList<>(current);
                      next.add(checked);
                      return new SessionRepository.ResourceChange<>(next, checked);
                    }));
  }

  public Uni<Void> removeResource(Tenant tenant, String sessionId, String resourceId) {
    return Uni.createFrom()
        .item(
            () -> {
              IdKind.SESSION.require("session_id", sessionId);
              return IdKind.SESSION_RESOURCE.require("resource_id", resourceId);
            })
        .flatMap(
            id ->
                // a closed session's resource may go too: with it goes the credential it holds
                repository.changeResources(
                    tenant,
                    sessionId,
                    true,
                    current -> {
                      List<SessionResource> next =
                          current.stream()
                              .filter(resource -> !resource.getId().equals(id))
                              .toList();
                      if (next.size() == current.size()) {
                        throw new dev.corral.common.NotFoundException("session resource", id);
                      }
                      return new SessionRepository.ResourceChange<Void>(next, null);
                    }));
  }

  public Uni<List<SessionResource>> resources(Tenant tenant, String sessionId) {
    return get(tenant, sessionId).map(Session::getResourcesList);
  }

  /**
   * The credential {@code resource} (the request's {@code field}) names, if any, exists in {@code
   * tenant} and is bound to its repository's host.
   */
  private Uni<Void> credentialBound(Tenant tenant, String field, SessionResource resource) {
    GitRepository repository = resource.getGitRepository();
    return repository.getCredentialId().isEmpty()
        ? Uni.createFrom().voidItem()
        : credentials.requireBound(
            tenant,
            field + ".git_repository.credential_id",
            repository.getCredentialId(),
            repository.getUrl(),
            dev.corral.common.CredentialUse.GIT_REPOSITORY);
  }

  /** {@link #credentialBound} for each of a new session's resources; the first refusal fails. */
  private Uni<Void> credentialsBound(Tenant tenant, List<SessionResource> resources) {
    Uni<Void> checks = Uni.createFrom().voidItem();
    for (int i = 0; i < resources.size(); i++) {
      String field = "resources[" + i + "]";
      SessionResource resource = resources.get(i);
      checks = checks.call(() -> credentialBound(tenant, field, resource));
    }
    return checks;
  }

  /**
   * Checks a new session's resources as {@link #create} will (each one, their number, their mount
   * paths), for a caller that has work to do before it may call it (INVALID_ARGUMENT).
   */
  public static void checkResources(List<SessionResource> requested) {
    checkedResources(requested);
  }

  private static List<SessionResource> checkedResources(List<SessionResource> requested) {
    List<SessionResource> checked = new ArrayList<>();
    for (int i = 0; i < requested.size(); i++) {
      checked.add(ResourceRules.checked("resources[" + i + "]", requested.get(i)));
    }
    ResourceRules.checkAll("resources", checked);
    return checked;
  }

  /** An EmitEvent request. {@code leaseEpoch} 0 means none. */
  public record Emit(
      String sessionId,
      Event event,
      String idempotencyKey,
      Long expectedLastSeq,
      long leaseEpoch) {}
}
