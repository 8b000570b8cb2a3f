package dev.corral.session;

import com.google.protobuf.InvalidProtocolBufferException;
import dev.corral.common.InvalidArgumentException;
import dev.corral.common.NotFoundException;
import dev.corral.common.ProtoTime;
import dev.corral.common.Tenant;
import dev.corral.proto.v1.Event;
import dev.corral.proto.v1.Lease;
import io.smallrye.mutiny.Uni;
import io.vertx.mutiny.sqlclient.Pool;
import io.vertx.mutiny.sqlclient.Row;
import io.vertx.mutiny.sqlclient.RowSet;
import io.vertx.mutiny.sqlclient.SqlClient;
import io.vertx.mutiny.sqlclient.Tuple;
import io.vertx.pgclient.PgException;
import jakarta.enterprise.context.ApplicationScoped;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Appends to and reads from session logs.
 *
 * <p>An append is one SQL statement: it bumps {@code sessions.last_seq} by the number of events
 * (taking the session row lock, which orders concurrent appends), inserts the events at the seqs it
 * got, and applies the events' {@link SessionEffects} — all in one transaction, so seqs are dense
 * and the session row never disagrees with its log. The same statement returns the original events
 * instead when the idempotency keys were seen before, and appends nothing when the session is
 * closed, the expected seq is stale or the lease epoch is not live.
 */
@ApplicationScoped
public class EventLog {

  /** Largest stored payload of one event. */
  public static final int MAX_EVENT_BYTES = 256 * 1024;

  static final String APPEND =
      """
      WITH batch AS (
          SELECT * FROM unnest($2::text[], $3::text[], $4::bytea[], $5::text[], $15::text[], $16::text[])
              WITH ORDINALITY AS b (id, type, body, idempotency_key, result_for, confirmation_for, ord)
      ),
      existing AS (
          SELECT e.id, e.seq, e.type, e.processed_at, e.body, e.idempotency_key
          FROM events e
          WHERE e.session_id = $1 AND e.idempotency_key = ANY ($5::text[])
            AND ($20::text IS NULL OR EXISTS (SELECT 1 FROM sessions WHERE id = $1 AND tenant_id = $20))
      ),
      head AS (
          UPDATE sessions SET
              last_seq = last_seq + cardinality($2::text[]),
              updated_at = clock_timestamp(),
              status = coalesce($8, status),
              stop_reason = CASE WHEN $8 IS NULL THEN stop_reason ELSE $9 END,
              work_pending = coalesce($10, work_pending),
              input_tokens = input_tokens + $11,
              output_tokens = output_tokens + $12,
              cache_creation_input_tokens = cache_creation_input_tokens + $13,
              cache_read_input_tokens = cache_read_input_tokens + $14,
              lease_holder = CASE
                  WHEN $18::text IS NOT NULL AND NOT $17 AND coalesce(lease_expires_at <= clock_timestamp(), true)
                      THEN $18
                  ELSE lease_holder END,
              lease_epoch = CASE
                  WHEN NOT $17 AND $18::text IS NOT NULL
                      AND coalesce(lease_expires_at <= clock_timestamp(), true)
                      THEN lease_epoch + 1
                  ELSE lease_epoch END,
              lease_expires_at = CASE
                  WHEN $17 THEN NULL
                  WHEN $18::text IS NOT NULL AND coalesce(lease_expires_at <= clock_timestamp(), true)
                      THEN clock_timestamp() + $19 * interval '1 millisecond'
                  ELSE lease_expires_at END
          WHERE id = $1
            AND ($20::text IS NULL OR tenant_id = $20)
            AND archived_at IS NULL
            AND status <> 'terminated'
            AND ($6::bigint IS NULL OR last_seq = $6)
            AND ($7::bigint IS NULL OR (lease_epoch = $7 AND lease_expires_at > clock_timestamp()))
            AND NOT EXISTS (SELECT 1 FROM existing)
          RETURNING id, last_seq, lease_holder, lease_epoch, lease_expires_at
      ),
      inserted AS (
          INSERT INTO events (session_id, seq, id, type, epoch, idempotency_key, processed_at, body,
                              result_for, confirmation_for)
          SELECT head.id, head.last_seq - cardinality($2::text[]) + b.ord, b.id, b.type, $7,
                 b.idempotency_key, clock_timestamp(), b.body, b.result_for, b.confirmation_for
          FROM head CROSS JOIN batch b
          RETURNING id, seq, type, processed_at, body, idempotency_key
      )
      SELECT i.id, i.seq, i.type, i.processed_at, i.body, i.idempotency_key, true AS fresh,
             h.lease_holder, h.lease_epoch, h.lease_expires_at
      FROM inserted i CROSS JOIN head h
      UNION ALL
      SELECT id, seq, type, processed_at, body, idempotency_key, false AS fresh,
             NULL, NULL, NULL
      FROM existing
      ORDER BY seq
      """;

  static final String DIAGNOSE =
      """
      SELECT archived_at IS NOT NULL AS archived, status, last_seq, lease_epoch,
             coalesce(lease_expires_at > clock_timestamp(), false) AS lease_live
      FROM sessions WHERE id = $1 AND ($2::text IS NULL OR tenant_id = $2)
      """;

  /**
   * Bytes a page of events may hold: their bodies plus {@link #ENVELOPE_BYTES} each. A page stops
   * before the event that would pass it (but holds at least one), so a client with gRPC's default 4
   * MiB message limit can read any log.
   */
  public static final int PAGE_BYTES = 1 << 20;

  /** What an event's id, session id, seq, type and time add to its body on the wire, at most. */
  static final int ENVELOPE_BYTES = 128;

  /**
   * One statement, one snapshot: the session's last seq and the slice agree. The running size keeps
   * the rows within the byte budget, plus the one that passes it (which tells that there is more);
   * the window runs over at most {@code $4} rows.
   */
  static final String READ_AFTER = read("seq > $2", "ORDER BY seq");

  static final String READ_BEFORE = read("seq < $2", "ORDER BY seq DESC");

  private static String read(String bound, String order) {
    return """
        SELECT s.last_seq, e.seq, e.id, e.type, e.processed_at, e.body, e.running
        FROM sessions s
        LEFT JOIN LATERAL (
            SELECT * FROM (
                SELECT seq, id, type, processed_at, body,
                       sum(octet_length(body) + %d) OVER (%s ROWS UNBOUNDED PRECEDING) AS running
                FROM (
                    SELECT seq, id, type, processed_at, body FROM events
                    WHERE session_id = s.id AND %s AND ($3::text[] IS NULL OR type = ANY ($3))
                    %s
                    LIMIT $4
                ) limited
            ) sized
            WHERE running - octet_length(body) - %d < $5
            %s
        ) e ON true
        WHERE s.id = $1 AND ($6::text IS NULL OR s.tenant_id = $6)
        """
        .formatted(ENVELOPE_BYTES, order, bound, order, ENVELOPE_BYTES, order);
  }

  /** The session (to tell an unknown session from an unknown event) and one of its events. */
  static final String FIND =
      """
      SELECT s.id AS session_id, e.seq, e.id, e.type, e.processed_at, e.body
      FROM sessions s
      LEFT JOIN events e ON e.session_id = s.id AND e.id = $2
      WHERE s.id = $1 AND s.tenant_id = $3
      """;

  private static final String UNIQUE_VIOLATION = "23505";

  private final Pool pool;
  private final SessionSignals signals;
  private final io.micrometer.core.instrument.MeterRegistry metrics;
  private final io.micrometer.core.instrument.Timer appendLatency;
  private final java.util.Map<String, io.micrometer.core.instrument.Counter> appendedByType =
      new java.util.concurrent.ConcurrentHashMap<>();

  EventLog(Pool pool, SessionSignals signals, io.micrometer.core.instrument.MeterRegistry metrics) {
    this.pool = pool;
    this.signals = signals;
    this.metrics = metrics;
    this.appendLatency =
        io.micrometer.core.instrument.Timer.builder("corral.append")
            .description("Appends to a session's log, from the request to the commit")
            .publishPercentileHistogram()
            .register(metrics);
  }

  /** Appends atomically, or returns the original events of an earlier append with the same keys. */
  public Uni<Appended> append(AppendRequest request) {
    long start = System.nanoTime();
    return appendWith(pool, request)
        .onFailure(EventLog::isIdempotencyRace)
        .recoverWithUni(() -> appendWith(pool, request))
        .onFailure(EventLog::isSecondAnswer)
        .transform(failure -> secondAnswer(request, (PgException) failure))
        .invoke(this::publish)
        .invoke(appended -> counted(appended, start));
  }

  private void counted(Appended appended, long start) {
    if (appended.deduplicated()) {
      return;
    }
    appendLatency.record(System.nanoTime() - start, java.util.concurrent.TimeUnit.NANOSECONDS);
  }

  /**
   * Appends within a transaction the caller owns. The caller must call {@link #publish} after it
   * commits.
   */
  Uni<Appended> appendWith(SqlClient client, AppendRequest request) {
    return client
        .preparedQuery(APPEND)
        .execute(appendTuple(request))
        .flatMap(
            rows ->
                rows.size() == 0
                    ? diagnose(client, request)
                    : Uni.createFrom().item(toAppended(request, rows)));
  }

  void publish(Appended appended) {
    if (!appended.deduplicated()) {
      signals.appended(appended.events().get(0).getSessionId(), appended.lastSeq());
      for (Event event : appended.events()) {
        appendedByType
            .computeIfAbsent(
                event.getType(), type -> metrics.counter("corral.events.appended", "type", type))
            .increment();
      }
    }
  }

  /**
   * One event of a session of {@code tenant}, if it exists.
   *
   * @throws NotFoundException (in the Uni) if the tenant has no such session
   */
  public Uni<java.util.Optional<Event>> find(Tenant tenant, String sessionId, String eventId) {
    return pool.preparedQuery(FIND)
        .execute(Tuple.of(sessionId, eventId, tenant.id()))
        .map(
            rows -> {
              if (rows.size() == 0) {
                throw new NotFoundException("session", sessionId);
              }
              Row row = rows.iterator().next();
              return row.getLong("seq") == null
                  ? java.util.Optional.<Event>empty()
                  : java.util.Optional.of(toEvent(sessionId, row));
            });
  }

  /** Reads a slice of the log of any tenant's session (for the harness and open streams). */
  public Uni<EventPage> read(EventSlice slice) {
    return read(slice, null);
  }

  /**
   * Reads a slice of the log of a session of {@code tenant}.
   *
   * @throws NotFoundException (in the Uni) if the tenant has no such session
   */
  public Uni<EventPage> read(Tenant tenant, EventSlice slice) {
    return read(slice, tenant.id());
  }

  private Uni<EventPage> read(EventSlice slice, String tenantId) {
    boolean forward = slice.position() == EventSlice.Position.AFTER;
    long seq = slice.position() == EventSlice.Position.TAIL ? Long.MAX_VALUE : slice.seq();
    String[] types = slice.types().isEmpty() ? null : slice.types().toArray(String[]::new);
    return pool.preparedQuery(forward ? READ_AFTER : READ_BEFORE)
        .execute(
            Tuple.from(
                Arrays.asList(
                    slice.sessionId(), seq, types, slice.limit() + 1, PAGE_BYTES, tenantId)))
        .map(rows -> toPage(slice, rows, forward));
  }

  /** The parameters of {@link #APPEND} for {@code request}. */
  static Tuple appendTuple(AppendRequest request) {
    List<NewEvent> events = request.events();
    SessionEffects effects = SessionEffects.of(events);
    return Tuple.from(
        Arrays.asList(
            request.sessionId(),
            events.stream().map(NewEvent::id).toArray(String[]::new),
            events.stream().map(event -> event.type().wireName()).toArray(String[]::new),
            events.stream()
                .map(event -> io.vertx.core.buffer.Buffer.buffer(event.payload().toByteArray()))
                .toArray(io.vertx.core.buffer.Buffer[]::new),
            events.stream().map(NewEvent::idempotencyKey).toArray(String[]::new),
            request.expectedLastSeq(),
            request.leaseEpoch(),
            effects.status(),
            effects.stopReason() == null
                ? null
                : io.vertx.core.buffer.Buffer.buffer(effects.stopReason()),
            effects.workPending(),
            effects.usage().getInputTokens(),
            effects.usage().getOutputTokens(),
            effects.usage().getCacheCreationInputTokens(),
            effects.usage().getCacheReadInputTokens(),
            events.stream().map(NewEvent::resultFor).toArray(String[]::new),
            events.stream().map(NewEvent::confirmationFor).toArray(String[]::new),
            effects.releaseLease(),
            request.claim() == null ? null : request.claim().holder(),
            request.claim() == null ? 0L : request.claim().ttlMillis(),
            request.tenant() == null ? null : request.tenant().id()));
  }

  private static Appended toAppended(AppendRequest request, RowSet<Row> rows) {
    List<Event> events = new ArrayList<>(rows.size());
    boolean fresh = true;
    Lease lease = null;
    for (Row row : rows) {
      fresh = row.getBoolean("fresh");
      events.add(toEvent(request.sessionId(), row));
      if (fresh && request.claim() != null) {
        lease = lease(row);
      }
    }
    if (!fresh) {
      requireSameEvents(request, events);
    }
    return new Appended(List.copyOf(events), !fresh, lease);
  }

  private static Lease lease(Row row) {
    Lease.Builder lease = Lease.newBuilder().setEpoch(row.getLong("lease_epoch"));
    if (row.getString("lease_holder") != null) {
      lease.setHolder(row.getString("lease_holder"));
    }
    if (row.getOffsetDateTime("lease_expires_at") != null) {
      lease.setExpiresAt(ProtoTime.of(row.getOffsetDateTime("lease_expires_at")));
    }
    return lease.build();
  }

  /** A replay must carry the same events as the original append, key for key. */
  private static void requireSameEvents(AppendRequest request, List<Event> originals) {
    boolean same = originals.size() == request.events().size();
    for (int i = 0; same && i < originals.size(); i++) {
      NewEvent asked = request.events().get(i);
      Event original = originals.get(i);
      same =
          asked.type().wireName().equals(original.getType())
              && asked.payload().toBuilder()
                  .clearEmittedBy()
                  .build()
                  .equals(NewEvent.onlyPayload(original).toBuilder().clearEmittedBy().build());
    }
    if (!same) {
      throw new InvalidArgumentException(
          "idempotency_key", "was already used for a different event in this session");
    }
  }

  /** Nothing was appended: find out why (the session row tells). */
  private Uni<Appended> diagnose(SqlClient client, AppendRequest request) {
    return client
        .preparedQuery(DIAGNOSE)
        .execute(
            Tuple.of(request.sessionId(), request.tenant() == null ? null : request.tenant().id()))
        .map(
            rows -> {
              throw refusal(request, rows);
            });
  }

  private static RuntimeException refusal(AppendRequest request, RowSet<Row> rows) {
    String sessionId = request.sessionId();
    if (rows.size() == 0) {
      return new NotFoundException("session", sessionId);
    }
    Row head = rows.iterator().next();
    if (head.getBoolean("archived")) {
      return new SessionClosedException(sessionId, "archived");
    }
    if ("terminated".equals(head.getString("status"))) {
      return new SessionClosedException(sessionId, "terminated");
    }
    long lastSeq = head.getLong("last_seq");
    if (request.expectedLastSeq() != null && request.expectedLastSeq() != lastSeq) {
      return new SequenceConflictException(sessionId, request.expectedLastSeq(), lastSeq);
    }
    if (request.leaseEpoch() != null) {
      return new LeaseLostException(sessionId, request.leaseEpoch());
    }
    // Every check passes now, so a concurrent change made the statement skip the row (the lease
    // was renewed, for instance). Report it as a conflict the caller may retry.
    return new SequenceConflictException(sessionId, lastSeq, lastSeq);
  }

  /** A result or confirmation for a tool call that already has one (the unique index says so). */
  private static boolean isSecondAnswer(Throwable failure) {
    return failure instanceof PgException pg
        && UNIQUE_VIOLATION.equals(pg.getSqlState())
        && ("events_result_for_idx".equals(pg.getConstraint())
            || "events_confirmation_for_idx".equals(pg.getConstraint()));
  }

  private static AlreadyAnsweredException secondAnswer(AppendRequest request, PgException failure) {
    boolean confirmation = "events_confirmation_for_idx".equals(failure.getConstraint());
    return new AlreadyAnsweredException(
        request.sessionId(), confirmation ? "confirmed" : "answered");
  }

  private static boolean isIdempotencyRace(Throwable failure) {
    return failure instanceof PgException pg
        && UNIQUE_VIOLATION.equals(pg.getSqlState())
        && "events_idempotency_idx".equals(pg.getConstraint());
  }

  private static EventPage toPage(EventSlice slice, RowSet<Row> rows, boolean forward) {
    if (rows.size() == 0) {
      throw new NotFoundException("session", slice.sessionId());
    }
    long lastSeq = 0;
    List<Event> events = new ArrayList<>(rows.size());
    boolean overBudget = false;
    for (Row row : rows) {
      lastSeq = row.getLong("last_seq");
      if (row.getLong("seq") == null) {
        continue;
      }
      if (!events.isEmpty() && row.getLong("running") > PAGE_BYTES) {
        overBudget = true; // the event that passes the budget: there is more
        break;
      }
      events.add(toEvent(slice.sessionId(), row));
    }
    boolean hasMore = overBudget || events.size() > slice.limit();
    if (events.size() > slice.limit()) {
      events.remove(events.size() - 1);
    }
    if (!forward) {
      java.util.Collections.reverse(events);
    }
    return new EventPage(List.copyOf(events), hasMore, lastSeq);
  }

  static Event toEvent(String sessionId, Row row) {
    try {
      return Event.parseFrom(row.getBuffer("body").getBytes()).toBuilder()
          .setId(row.getString("id"))
          .setSessionId(sessionId)
          .setSeq(row.getLong("seq"))
          .setType(row.getString("type"))
          .setProcessedAt(ProtoTime.of(row.getOffsetDateTime("processed_at")))
          .build();
    } catch (InvalidProtocolBufferException e) {
      throw new IllegalStateException(
          "stored event " + row.getString("id") + " is not readable", e);
    }
  }
}
