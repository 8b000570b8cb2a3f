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
import org.eclipse.microprofile.config.inject.ConfigProperty;

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

  /**
   * Appends for one or more sessions at once (group commit): one row of {@code r} per request, one
   * row of {@code b} per event, at most one request per session. Each request appends only if its
   * own checks pass; a request whose idempotency keys were seen before gets the original events
   * instead. Returns, per request (its ordinal {@code rn}), the events it appended (with the
   * session's lease afterwards) or the original ones; a request with no row was refused.
   *
   * <p>Every access to {@code sessions} and {@code events} is bounded by the sessions' ids ({@code
   * = ANY}), so that the plan is index lookups whatever the planner thinks of the arrays.
   *
   * <p>{@code b} is {@link #ONE_EVENT} for a single event without an idempotency key, else {@link
   * #MANY_EVENTS}. {@code existing} is {@link #EXISTING} when some event carries an idempotency
   * key, else {@link #NONE_EXISTING}: a statement without keys does not look for earlier events.
   */
  private static final String APPEND_TEMPLATE =
      """
      WITH r AS NOT MATERIALIZED (%s),
      b AS (%4$s),
      %3$s,
      head AS (
          UPDATE sessions s SET
              last_seq = s.last_seq + r.n,
              updated_at = clock_timestamp(),
              status = coalesce(r.status, s.status),
              stop_reason = CASE WHEN r.status IS NULL THEN s.stop_reason ELSE r.stop_reason END,
              work_pending = coalesce(r.work_pending, s.work_pending),
              harness_failures = CASE WHEN r.release_lease THEN 0 ELSE s.harness_failures END,
              input_tokens = s.input_tokens + r.input_tokens,
              output_tokens = s.output_tokens + r.output_tokens,
              cache_creation_input_tokens = s.cache_creation_input_tokens + r.cache_creation_input_tokens,
              cache_read_input_tokens = s.cache_read_input_tokens + r.cache_read_input_tokens,
              lease_holder = CASE
                  WHEN r.claim_holder IS NOT NULL AND NOT r.release_lease
                      AND coalesce(s.lease_expires_at <= clock_timestamp(), true)
                      THEN r.claim_holder
                  ELSE s.lease_holder END,
              lease_epoch = CASE
                  WHEN r.claim_holder IS NOT NULL AND NOT r.release_lease
                      AND coalesce(s.lease_expires_at <= clock_timestamp(), true)
                      THEN s.lease_epoch + 1
                  ELSE s.lease_epoch END,
              lease_expires_at = CASE
                  WHEN r.release_lease THEN NULL
                  WHEN r.claim_holder IS NOT NULL
                      AND coalesce(s.lease_expires_at <= clock_timestamp(), true)
                      THEN clock_timestamp() + r.claim_ttl * interval '1 millisecond'
                  ELSE s.lease_expires_at END
          FROM r
          WHERE s.id = ANY (%2$s) AND s.id = r.session_id
            AND (r.tenant_id IS NULL OR s.tenant_id = r.tenant_id)
            AND s.archived_at IS NULL
            AND s.status <> 'terminated'
            AND (r.expected_last_seq IS NULL OR s.last_seq = r.expected_last_seq)
            AND (r.lease_epoch IS NULL
                 OR (s.lease_epoch = r.lease_epoch AND s.lease_expires_at > clock_timestamp()))
            AND NOT EXISTS (SELECT 1 FROM existing x WHERE x.rn = r.rn)
          RETURNING r.rn, r.n, r.lease_epoch AS writer_epoch, s.id, s.last_seq, s.lease_holder,
                    s.lease_epoch, s.lease_expires_at
      ),
      inserted AS (
          INSERT INTO events (session_id, seq, id, type, epoch, idempotency_key, processed_at, body,
                              result_for, confirmation_for, call_id)
          SELECT h.id, h.last_seq - h.n + b.pos, b.id, b.type, h.writer_epoch, b.idempotency_key,
                 clock_timestamp(), b.body, b.result_for, b.confirmation_for, b.call_id
          FROM head h JOIN b ON b.rn = h.rn
          RETURNING session_id, id, seq, processed_at
      )
      SELECT h.rn, i.id, i.seq, NULL::text AS type, i.processed_at, NULL::bytea AS body,
             true AS fresh, h.lease_holder, h.lease_epoch, h.lease_expires_at
      FROM inserted i JOIN head h ON h.id = i.session_id
      UNION ALL
      SELECT rn, id, seq, type, processed_at, body, false AS fresh, NULL, NULL, NULL
      FROM existing
      ORDER BY rn, seq
      """;

  /** The earlier events of the requests' idempotency keys, per request ({@code %1$s}: the ids). */
  private static final String EXISTING =
      """
      existing AS (
          SELECT r.rn, e.id, e.seq, e.type, e.processed_at, e.body
          FROM events e
          JOIN (SELECT DISTINCT rn, idempotency_key FROM b WHERE idempotency_key IS NOT NULL) k
              ON e.idempotency_key = k.idempotency_key
          JOIN r ON r.rn = k.rn AND r.session_id = e.session_id
          JOIN sessions t ON t.id = r.session_id
          WHERE e.session_id = ANY (%1$s) AND e.idempotency_key = ANY ($21::text[])
            AND t.id = ANY (%1$s) AND (r.tenant_id IS NULL OR t.tenant_id = r.tenant_id)
      )""";

  private static final String NONE_EXISTING =
      """
      existing AS (
          SELECT NULL::bigint AS rn, NULL::text AS id, NULL::bigint AS seq, NULL::text AS type,
                 NULL::timestamptz AS processed_at, NULL::bytea AS body
          WHERE false
      )""";

  private static String append(String requests, String sessionIds, String events, boolean keyed) {
    return APPEND_TEMPLATE.formatted(
        requests, sessionIds, keyed ? EXISTING.formatted(sessionIds) : NONE_EXISTING, events);
  }

  /** One request: its parameters are scalars, which the planner folds in. */
  private static final String ONE_REQUEST =
      """
          SELECT $1::text AS session_id, $2::text AS tenant_id, $3::bigint AS expected_last_seq,
                 $4::bigint AS lease_epoch, $5::text AS status, $6::bytea AS stop_reason,
                 $7::boolean AS work_pending, $8::bigint AS input_tokens,
                 $9::bigint AS output_tokens, $10::bigint AS cache_creation_input_tokens,
                 $11::bigint AS cache_read_input_tokens, $12::boolean AS release_lease,
                 $13::text AS claim_holder, $14::bigint AS claim_ttl, $15::int AS n, 1::bigint AS rn\
          """;

  /** Many requests, one per session: each parameter is an array, one element per request. */
  private static final String MANY_REQUESTS =
      """
          SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::text[],
                               $6::bytea[], $7::boolean[], $8::bigint[], $9::bigint[], $10::bigint[],
                               $11::bigint[], $12::boolean[], $13::text[], $14::bigint[], $15::int[])
              WITH ORDINALITY AS r (session_id, tenant_id, expected_last_seq, lease_epoch, status,
                                    stop_reason, work_pending, input_tokens, output_tokens,
                                    cache_creation_input_tokens, cache_read_input_tokens,
                                    release_lease, claim_holder, claim_ttl, n, rn)\
          """;

  /** The events of the requests, one row each: each parameter is an array, one per event. */
  private static final String MANY_EVENTS =
      """
          SELECT * FROM unnest($16::int[], $17::int[], $18::text[], $19::text[], $20::bytea[],
                               $21::text[], $22::text[], $23::text[], $24::text[])
              AS b (rn, pos, id, type, body, idempotency_key, result_for, confirmation_for,
                    call_id)\
          """;

  /** The one event of the one request: its parameters are scalars. */
  private static final String ONE_EVENT =
      """
          SELECT $16::int AS rn, $17::int AS pos, $18::text AS id, $19::text AS type,
                 $20::bytea AS body, $21::text AS idempotency_key, $22::text AS result_for,
                 $23::text AS confirmation_for, $24::text AS call_id\
          """;

  private static final String ONE_SESSION = "ARRAY[$1::text]";

  private static final String SESSIONS = "$1::text[]";

  /** The append of one request. */
  static final String APPEND = append(ONE_REQUEST, ONE_SESSION, MANY_EVENTS, true);

  /** The append of one request none of whose events carries an idempotency key. */
  static final String APPEND_UNKEYED = append(ONE_REQUEST, ONE_SESSION, MANY_EVENTS, false);

  /**
   * The append of one event without an idempotency key: the commonest append (every EmitEvent
   * without a key), and the cheapest, with every parameter a scalar.
   */
  static final String APPEND_ONE_EVENT = append(ONE_REQUEST, ONE_SESSION, ONE_EVENT, false);

  /** The append of many requests, one per session. */
  static final String APPEND_MANY = append(MANY_REQUESTS, SESSIONS, MANY_EVENTS, true);

  /** The append of many requests none of whose events carries an idempotency key. */
  static final String APPEND_MANY_UNKEYED = append(MANY_REQUESTS, SESSIONS, MANY_EVENTS, false);

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
   * the rows that start within the byte budget, and always the first two: a first event that alone
   * passes the budget makes the page, and the second tells that there is more. The window runs over
   * at most {@code $4} rows.
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
                       sum(octet_length(body) + %d) OVER (%s ROWS UNBOUNDED PRECEDING) AS running,
                       row_number() OVER (%s) AS n
                FROM (
                    SELECT seq, id, type, processed_at, body FROM events
                    WHERE session_id = s.id AND %s AND ($3::text[] IS NULL OR type = ANY ($3))
                    %s
                    LIMIT $4
                ) limited
            ) sized
            WHERE running - octet_length(body) - %d <= $5 OR n <= 2
            %s
        ) e ON true
        WHERE s.id = $1 AND ($6::text IS NULL OR s.tenant_id = $6)
        """
        .formatted(ENVELOPE_BYTES, order, order, bound, order, ENVELOPE_BYTES, order);
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

  private final GroupCommit groupCommit;
  private volatile java.util.function.Consumer<Appended> published = appended -> {};

  EventLog(
      Pool pool,
      SessionSignals signals,
      io.micrometer.core.instrument.MeterRegistry metrics,
      @ConfigProperty(name = "corral.log.group-commit.statements", defaultValue = "2")
          int statements,
      @ConfigProperty(name = "corral.log.group-commit.max-appends", defaultValue = "64")
          int maxAppends,
      @ConfigProperty(name = "corral.log.group-commit.max-waiting", defaultValue = "10000")
          int maxWaiting,
      @ConfigProperty(name = "corral.log.group-commit.stall-after", defaultValue = "200ms")
          java.time.Duration stallAfter,
      io.vertx.core.Vertx vertx) {
    this.pool = pool;
    this.signals = signals;
    this.metrics = metrics;
    this.appendLatency =
        io.micrometer.core.instrument.Timer.builder("corral.append")
            .description("Appends to a session's log, from the request to the commit")
            .publishPercentileHistogram()
            .register(metrics);
    this.groupCommit = new GroupCommit(this, vertx, statements, maxAppends, maxWaiting, stallAfter);
    io.micrometer.core.instrument.Gauge.builder(
            "corral.append.waiting", groupCommit, GroupCommit::waiting)
        .description("Appends waiting for a free append statement (group commit)")
        .register(metrics);
  }

  /**
   * Appends atomically, or returns the original events of an earlier append with the same keys.
   * Concurrent appends to different sessions share a statement and a commit ({@link GroupCommit}).
   */
  public Uni<Appended> append(AppendRequest request) {
    long start = System.nanoTime();
    return groupCommit
        .submit(request)
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
   * Appends one request on its own statement, retrying once when a concurrent append with the same
   * idempotency key won the race (the retry then returns that append's events).
   */
  Uni<Appended> appendAlone(AppendRequest request) {
    return appendWith(pool, request)
        .onFailure(EventLog::isIdempotencyRace)
        .recoverWithUni(() -> appendWith(pool, request))
        .onFailure(EventLog::isSecondAnswer)
        .transform(failure -> secondAnswer(request, (PgException) failure))
        .onFailure(EventLog::isRepeatedCall)
        .transform(failure -> repeatedCall(request));
  }

  /**
   * Appends within a transaction the caller owns. The caller must call {@link #publish} after it
   * commits.
   */
  Uni<Appended> appendWith(SqlClient client, AppendRequest request) {
    return appendAll(client, List.of(request)).flatMap(outcomes -> outcomes.get(0));
  }

  /** {@link #appendAll(SqlClient, List)} on a connection of the pool, committed on its own. */
  Uni<List<Uni<Appended>>> appendAll(List<AppendRequest> requests) {
    return appendAll(pool, requests);
  }

  /**
   * Runs one append statement for {@code requests} (at most one per session). Each request's
   * outcome is a Uni of its own: its {@link Appended}, the refusal of a replay that does not match
   * its original, or, when the statement refused it, the reason ({@link #refused} asks the session
   * row on subscription).
   */
  Uni<List<Uni<Appended>>> appendAll(SqlClient client, List<AppendRequest> requests) {
    return Uni.createFrom()
        .deferred(
            () -> {
              Statement statement = statementFor(requests);
              return client
                  .preparedQuery(statement.sql())
                  .execute(appendTuple(requests, statement));
            })
        .map(rows -> outcomes(client, requests, rows));
  }

  /**
   * An append statement, and how many of its leading parameters are scalars ({@link #appendTuple}
   * gives the others as arrays): $1 to $15 describe the requests, $16 to $24 their events.
   */
  record Statement(String sql, int scalars) {}

  private static final Statement ONE_EVENT_STATEMENT = new Statement(APPEND_ONE_EVENT, 24);

  private static final Statement ONE_REQUEST_STATEMENT = new Statement(APPEND_UNKEYED, 15);

  private static final Statement ONE_KEYED_REQUEST_STATEMENT = new Statement(APPEND, 15);

  private static final Statement MANY_STATEMENT = new Statement(APPEND_MANY_UNKEYED, 0);

  private static final Statement MANY_KEYED_STATEMENT = new Statement(APPEND_MANY, 0);

  /** The statement for {@code requests}. */
  static Statement statementFor(List<AppendRequest> requests) {
    boolean keyed =
        requests.stream()
            .flatMap(request -> request.events().stream())
            .anyMatch(event -> event.idempotencyKey() != null);
    if (requests.size() != 1) {
      return keyed ? MANY_KEYED_STATEMENT : MANY_STATEMENT;
    }
    if (keyed) {
      return ONE_KEYED_REQUEST_STATEMENT;
    }
    return requests.get(0).events().size() == 1 ? ONE_EVENT_STATEMENT : ONE_REQUEST_STATEMENT;
  }

  /** Hears of every append this process commits, before its readers are woken. */
  void onPublish(java.util.function.Consumer<Appended> listener) {
    this.published = listener;
  }

  void publish(Appended appended) {
    if (!appended.deduplicated()) {
      published.accept(appended);
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

  static final String ANSWERS =
      "SELECT EXISTS (SELECT 1 FROM events WHERE session_id = $1 AND result_for = $2) AS result,"
          + " EXISTS (SELECT 1 FROM events WHERE session_id = $1 AND confirmation_for = $2)"
          + " AS confirmation,"
          + " EXISTS (SELECT 1 FROM events WHERE session_id = $1 AND idempotency_key = $3)"
          + " AS retry";

  /** What a tool use's log holds of its answers, for an answer to it with a key (or null). */
  record Answers(boolean result, boolean confirmation) {}

  /**
   * What event {@code eventId} of session {@code sessionId} (a tool use) has of its answers, for an
   * answer to it with idempotency key {@code key} (or null): an answer whose key the log already
   * holds is a retry, which the append answers with the event first sent, so it finds none.
   */
  Uni<Answers> answers(String sessionId, String eventId, String key) {
    return pool.preparedQuery(ANSWERS)
        .execute(Tuple.of(sessionId, eventId, key))
        .map(rows -> rows.iterator().next())
        .map(
            row ->
                row.getBoolean("retry")
                    ? new Answers(false, false)
                    : new Answers(row.getBoolean("result"), row.getBoolean("confirmation")));
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
                    slice.sessionId(), seq, types, slice.limit() + 1, slice.bytes(), tenantId)))
        .map(rows -> toPage(slice, rows, forward));
  }

  /**
   * The parameters of {@code statement} for {@code requests}: arrays, one element per request and
   * per event, but for the statement's leading scalars.
   */
  static Tuple appendTuple(List<AppendRequest> requests, Statement statement) {
    int count = requests.size();
    String[] sessionIds = new String[count];
    String[] tenantIds = new String[count];
    Long[] expectedLastSeqs = new Long[count];
    Long[] leaseEpochs = new Long[count];
    String[] statuses = new String[count];
    io.vertx.core.buffer.Buffer[] stopReasons = new io.vertx.core.buffer.Buffer[count];
    Boolean[] workPending = new Boolean[count];
    Long[] inputTokens = new Long[count];
    Long[] outputTokens = new Long[count];
    Long[] cacheCreationTokens = new Long[count];
    Long[] cacheReadTokens = new Long[count];
    Boolean[] releaseLease = new Boolean[count];
    String[] claimHolders = new String[count];
    Long[] claimTtls = new Long[count];
    Integer[] eventCounts = new Integer[count];
    List<Integer> requestOrdinals = new ArrayList<>();
    List<Integer> positions = new ArrayList<>();
    List<String> ids = new ArrayList<>();
    List<String> types = new ArrayList<>();
    List<io.vertx.core.buffer.Buffer> bodies = new ArrayList<>();
    List<String> keys = new ArrayList<>();
    List<String> resultFor = new ArrayList<>();
    List<String> confirmationFor = new ArrayList<>();
    List<String> callIds = new ArrayList<>();
    for (int i = 0; i < count; i++) {
      AppendRequest request = requests.get(i);
      SessionEffects effects = SessionEffects.of(request.events());
      sessionIds[i] = request.sessionId();
      tenantIds[i] = request.tenant() == null ? null : request.tenant().id();
      expectedLastSeqs[i] = request.expectedLastSeq();
      leaseEpochs[i] = request.leaseEpoch();
      statuses[i] = effects.status();
      stopReasons[i] =
          effects.stopReason() == null
              ? null
              : io.vertx.core.buffer.Buffer.buffer(effects.stopReason());
      workPending[i] = effects.workPending();
      inputTokens[i] = effects.usage().getInputTokens();
      outputTokens[i] = effects.usage().getOutputTokens();
      cacheCreationTokens[i] = effects.usage().getCacheCreationInputTokens();
      cacheReadTokens[i] = effects.usage().getCacheReadInputTokens();
      releaseLease[i] = effects.releaseLease();
      claimHolders[i] = request.claim() == null ? null : request.claim().holder();
      claimTtls[i] = request.claim() == null ? 0L : request.claim().ttlMillis();
      eventCounts[i] = request.events().size();
      for (int position = 0; position < request.events().size(); position++) {
        NewEvent event = request.events().get(position);
        requestOrdinals.add(i + 1);
        positions.add(position + 1);
        ids.add(event.id());
        types.add(event.type().wireName());
        bodies.add(io.vertx.core.buffer.Buffer.buffer(event.payload().toByteArray()));
        keys.add(event.idempotencyKey());
        resultFor.add(event.resultFor());
        confirmationFor.add(event.confirmationFor());
        callIds.add(event.callId());
      }
    }
    List<Object> parameters =
        new ArrayList<>(
            Arrays.asList(
                sessionIds,
                tenantIds,
                expectedLastSeqs,
                leaseEpochs,
                statuses,
                stopReasons,
                workPending,
                inputTokens,
                outputTokens,
                cacheCreationTokens,
                cacheReadTokens,
                releaseLease,
                claimHolders,
                claimTtls,
                eventCounts));
    parameters.addAll(
        Arrays.asList(
            requestOrdinals.toArray(Integer[]::new),
            positions.toArray(Integer[]::new),
            ids.toArray(String[]::new),
            types.toArray(String[]::new),
            bodies.toArray(io.vertx.core.buffer.Buffer[]::new),
            keys.toArray(String[]::new),
            resultFor.toArray(String[]::new),
            confirmationFor.toArray(String[]::new),
            callIds.toArray(String[]::new)));
    for (int i = 0; i < statement.scalars(); i++) {
      parameters.set(i, ((Object[]) parameters.get(i))[0]);
    }
    return Tuple.from(parameters);
  }

  /** The statement's rows, grouped by request (they come ordered by request, then seq). */
  private List<Uni<Appended>> outcomes(
      SqlClient client, List<AppendRequest> requests, RowSet<Row> rows) {
    List<List<Row>> byRequest = new ArrayList<>(requests.size());
    for (int i = 0; i < requests.size(); i++) {
      byRequest.add(new ArrayList<>());
    }
    for (Row row : rows) {
      byRequest.get(row.getLong("rn").intValue() - 1).add(row);
    }
    List<Uni<Appended>> outcomes = new ArrayList<>(requests.size());
    for (int i = 0; i < requests.size(); i++) {
      AppendRequest request = requests.get(i);
      List<Row> own = byRequest.get(i);
      outcomes.add(
          own.isEmpty()
              ? refused(client, request)
              : Uni.createFrom().item(() -> toAppended(request, own)));
    }
    return outcomes;
  }

  private static Appended toAppended(AppendRequest request, List<Row> rows) {
    List<Event> events = new ArrayList<>(rows.size());
    boolean fresh = rows.get(0).getBoolean("fresh");
    Lease lease = null;
    for (int i = 0; i < rows.size(); i++) {
      Row row = rows.get(i);
      if (fresh) {
        NewEvent asked = request.events().get(i);
        events.add(
            asked.payload().toBuilder()
                .setId(row.getString("id"))
                .setSessionId(request.sessionId())
                .setSeq(row.getLong("seq"))
                .setType(asked.type().wireName())
                .setProcessedAt(ProtoTime.of(row.getOffsetDateTime("processed_at")))
                .build());
      } else {
        events.add(toEvent(request.sessionId(), row));
      }
    }
    if (fresh && request.claim() != null) {
      lease = lease(rows.get(0));
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

  /** Nothing was appended: find out why (the session row tells), as the failure of the Uni. */
  private Uni<Appended> refused(SqlClient client, AppendRequest request) {
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
    return secondAnswer(
        request.sessionId(), "events_confirmation_for_idx".equals(failure.getConstraint()));
  }

  /** A second result, or confirmation, of a tool call of {@code sessionId}. */
  static AlreadyAnsweredException secondAnswer(String sessionId, boolean confirmation) {
    return new AlreadyAnsweredException(
        sessionId,
        confirmation
            ? "confirmed, or given its result (the session was interrupted); a confirmation no"
                + " longer applies to it"
            : "answered");
  }

  /** A tool use whose call id an earlier tool use of the session has (the unique index says so). */
  private static boolean isRepeatedCall(Throwable failure) {
    return failure instanceof PgException pg
        && UNIQUE_VIOLATION.equals(pg.getSqlState())
        && "events_call_id_idx".equals(pg.getConstraint());
  }

  private static InvalidArgumentException repeatedCall(AppendRequest request) {
    NewEvent use =
        request.events().stream().filter(event -> event.callId() != null).findFirst().orElseThrow();
    return new InvalidArgumentException(
        "event." + use.type().wireName().replace('.', '_') + ".call_id",
        "is the id of an earlier tool call of this session (or of another call of this"
            + " request); the model's API refuses two tool calls with one id in a conversation");
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
      if (!events.isEmpty() && row.getLong("running") > slice.bytes()) {
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
