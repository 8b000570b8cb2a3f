package dev.corral.sandbox;

import com.google.protobuf.InvalidProtocolBufferException;
import dev.corral.common.FailedPreconditionException;
import dev.corral.common.NotFoundException;
import dev.corral.common.Paging;
import dev.corral.common.PermissionDeniedException;
import dev.corral.common.ProtoTime;
import dev.corral.common.ResourceExhaustedException;
import dev.corral.common.Tenant;
import dev.corral.db.TenantLimits;
import dev.corral.proto.v1.LimitEnforcement;
import dev.corral.proto.v1.Sandbox;
import dev.corral.proto.v1.SandboxDriver;
import dev.corral.proto.v1.SandboxResources;
import dev.corral.proto.v1.SandboxState;
import io.smallrye.mutiny.Uni;
import io.vertx.core.buffer.Buffer;
import io.vertx.mutiny.sqlclient.Pool;
import io.vertx.mutiny.sqlclient.Row;
import io.vertx.mutiny.sqlclient.RowSet;
import io.vertx.mutiny.sqlclient.Tuple;
import jakarta.enterprise.context.ApplicationScoped;
import java.time.OffsetDateTime;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;

/** Sandbox records in PostgreSQL: what exists, where, and in which state. */
@ApplicationScoped
public class SandboxRepository {

  private static final String COLUMNS =
      "id, environment_id, session_id, driver, state, host, created_at, last_used_at, released_at,"
          + " lost_reason, release_reason, expires_at, limits_enforced, resources, tenant_id";

  /**
   * A sandbox that holds its session (the parameter named): live, and its lifetime not over. A
   * session has at most one; all of a session's sandboxes are its tenant's, whose inserts take
   * turns under one lock.
   */
  private static String holdsSession(String sessionParameter) {
    return "session_id = "
        + sessionParameter
        + " AND state IN ('provisioning', 'ready')"
        + " AND (expires_at IS NULL OR expires_at > clock_timestamp())";
  }

  /** The session ($1) is there, not archived and not terminated. */
  private static String openSession(String sessionParameter) {
    return "EXISTS (SELECT 1 FROM sessions WHERE id = "
        + sessionParameter
        + " AND archived_at IS NULL AND status <> 'terminated')";
  }

  /**
   * Inserts unless the tenant runs {@code $11} sandboxes or is disabled, or the session ($3, if
   * any) has a sandbox already or has ended (archived, terminated or deleted while a local
   * sandbox's setup ran: the release that ended it found no record to release).
   */
  static final String INSERT =
      """
      INSERT INTO sandboxes (id, environment_id, session_id, driver, state, host, resources,
                             expires_at, limits_enforced, tenant_id)
      SELECT $1, $2, $3, $4, $7, $5, $6, clock_timestamp() + make_interval(secs => $8), $9, $10
      WHERE (SELECT count(*) FROM sandboxes
             WHERE tenant_id = $10 AND state IN ('provisioning', 'ready')) < $11
        AND NOT EXISTS (SELECT 1 FROM tenants WHERE id = $10 AND disabled_at IS NOT NULL)
        AND ($3::text IS NULL OR (
      """
          + openSession("$3")
          + " AND NOT EXISTS (SELECT 1 FROM sandboxes WHERE "
          + holdsSession("$3")
          + ")))"
          + " RETURNING "
          + COLUMNS;

  /** Whether session $1 is open (see {@link #openSession}). */
  static final String SESSION_OPEN = "SELECT " + openSession("$1") + " AS open";

  /** The sandbox holding session $1, if any. */
  static final String HOLDING_SESSION =
      "SELECT id, state FROM sandboxes WHERE " + holdsSession("$1") + " LIMIT 1";

  /** A sandbox whatever its tenant: for the server's own work on a sandbox already checked. */
  static final String SELECT = "SELECT " + COLUMNS + " FROM sandboxes WHERE id = $1";

  static final String SELECT_OF_TENANT =
      "SELECT " + COLUMNS + " FROM sandboxes WHERE id = $1 AND tenant_id = $2";

  static final String READY =
      "UPDATE sandboxes SET state = 'ready', host = $2, limits_enforced = $3,"
          + " last_used_at = clock_timestamp()"
          + " WHERE id = $1 AND state = 'provisioning' RETURNING "
          + COLUMNS;

  static final String END =
      "UPDATE sandboxes SET state = $2,"
          + " lost_reason = CASE WHEN $2 = 'lost' THEN $3 END,"
          + " release_reason = CASE WHEN $2 = 'released' THEN $3 END,"
          + " released_at = coalesce(released_at, clock_timestamp())"
          + " WHERE id = $1 AND state IN ('provisioning', 'ready') RETURNING "
          + COLUMNS;

  /** Releases a live sandbox whose lifetime is over, as of the moment it ended. */
  static final String EXPIRE =
      "UPDATE sandboxes SET state = 'released', release_reason = $2, released_at = expires_at"
          + " WHERE id = $1 AND state IN ('provisioning', 'ready')"
          + " AND expires_at <= clock_timestamp() RETURNING "
          + COLUMNS;

  static final String EXPIRED =
      "SELECT id FROM sandboxes WHERE state IN ('provisioning', 'ready')"
          + " AND expires_at <= clock_timestamp()";

  static final String USED = "UPDATE sandboxes SET last_used_at = clock_timestamp() WHERE id = $1";

  static final Paging.Listing LIST =
      Paging.listing(
          "SELECT "
              + COLUMNS
              + """
           FROM sandboxes
          WHERE tenant_id = $5
            AND ($1::text IS NULL OR id < $1)
            AND ($2::text IS NULL OR session_id = $2)
            AND ($3 OR state IN ('provisioning', 'ready'))
          ORDER BY id DESC
          LIMIT $4
          """);

  static final String LIVE_OF_SESSION =
      "SELECT "
          + COLUMNS
          + " FROM sandboxes WHERE session_id = $1 AND state IN ('provisioning', 'ready')";

  static final String CURRENT_OF_SESSION =
      "SELECT "
          + COLUMNS
          + " FROM sandboxes WHERE session_id = $1 AND state = 'ready'"
          + " AND (expires_at IS NULL OR expires_at > clock_timestamp())"
          + " ORDER BY created_at DESC LIMIT 1";

  /**
   * How many sandboxes of a tenant are live (counted by {@code sandboxes_tenant_live_idx}), and
   * whether the tenant is disabled.
   */
  static final String LIVE_OF_TENANT =
      """
      SELECT (SELECT count(*) FROM sandboxes
              WHERE tenant_id = $1 AND state IN ('provisioning', 'ready')) AS live,
             EXISTS (SELECT 1 FROM tenants WHERE id = $1 AND disabled_at IS NOT NULL) AS disabled
      """;

  static final String TENANT_DISABLED =
      "SELECT EXISTS (SELECT 1 FROM tenants WHERE id = $1 AND disabled_at IS NOT NULL) AS disabled";

  /**
   * Whether session $1 had a sandbox that is gone, other than one released while still being
   * provisioned because its harness needed a sandbox ($2, the reason), or one that never became
   * ready (a pod the cluster refused, a setup that failed: its limits are recorded when it does):
   * the model never had those.
   */
  static final String HAD_ONE =
      "SELECT 1 FROM sandboxes WHERE session_id = $1 AND state IN ('lost', 'released')"
          + " AND release_reason IS DISTINCT FROM $2 AND limits_enforced IS NOT NULL LIMIT 1";

  /** Sandboxes whose session ended (deleted, archived or terminated) but which still run. */
  static final String ORPHANED =
      """
      SELECT b.id FROM sandboxes b
      LEFT JOIN sessions s ON s.id = b.session_id
      WHERE b.state IN ('provisioning', 'ready') AND b.session_id IS NOT NULL
        AND (s.id IS NULL OR s.archived_at IS NOT NULL OR s.status = 'terminated')
      """;

  /** Live sandboxes of disabled tenants: a disabled tenant runs nothing. */
  static final String OF_DISABLED_TENANTS =
      """
      SELECT b.id FROM sandboxes b JOIN tenants t ON t.id = b.tenant_id
      WHERE b.state IN ('provisioning', 'ready') AND t.disabled_at IS NOT NULL
      """;

  static final String LIVE =
      "SELECT " + COLUMNS + " FROM sandboxes WHERE state IN ('provisioning', 'ready')";

  static final String BY_IDS = "SELECT " + COLUMNS + " FROM sandboxes WHERE id = ANY ($1::text[])";

  private final Pool pool;

  private final TenantLimits tenantLimits;

  SandboxRepository(Pool pool, TenantLimits limits) {
    this.pool = pool;
    this.tenantLimits = limits;
  }

  /**
   * Records a sandbox: {@code ready} for one that already runs (a local sandbox, which cannot
   * outlive this replica; {@code limits} says how its limits are enforced), else ({@code limits}
   * null) {@code provisioning} before its resources exist, so that whatever is created for it
   * always has a record. Its lifetime starts now.
   */
  Uni<Sandbox> insert(
      Tenant tenant,
      String id,
      String environmentId,
      String sessionId,
      SandboxDriver driver,
      String host,
      SandboxResources resources,
      List<LimitEnforcement> limits,
      int maxLive) {
    Tuple values =
        Tuple.from(
            Arrays.asList(
                id,
                environmentId.isEmpty() ? null : environmentId,
                sessionId.isEmpty() ? null : sessionId,
                driverColumn(driver),
                host,
                Buffer.buffer(resources.toByteArray()),
                limits != null ? "ready" : "provisioning",
                (double) resources.getLifetimeSeconds(),
                limits == null ? null : limitsColumn(limits),
                tenant.id(),
                maxLive));
    return tenantLimits
        .insert(
            "sandboxes",
            tenant.id(),
            connection -> connection.preparedQuery(INSERT).execute(values))
        .flatMap(
            rows ->
                rows.size() == 0
                    // Refused: say why (the checks find it again unless it changed meanwhile)
                    ? requireOpen(sessionId)
                        .flatMap(open -> requireFree(sessionId))
                        .flatMap(free -> requireRoom(tenant, maxLive, () -> 0))
                        .map(
                            unchanged -> {
                              throw tooMany(tenant, maxLive);
                            })
                    : Uni.createFrom().item(fromRow(rows.iterator().next())));
  }

  /**
   * Fails ({@link SessionSandboxExistsException}) when session {@code sessionId} (none if empty)
   * has a sandbox: a check before a sandbox is started for it, which {@link #insert} makes again,
   * race-free, when it is recorded.
   */
  Uni<Void> requireFree(String sessionId) {
    if (sessionId.isEmpty()) {
      return Uni.createFrom().voidItem();
    }
    return pool.preparedQuery(HOLDING_SESSION)
        .execute(Tuple.of(sessionId))
        .map(
            rows -> {
              if (rows.size() > 0) {
                Row row = rows.iterator().next();
                throw new SessionSandboxExistsException(
                    sessionId, row.getString("id"), row.getString("state"));
              }
              return null;
            });
  }

  /**
   * Fails (FAILED_PRECONDITION) when session {@code sessionId} (none if empty) has ended since its
   * sandbox began to be provisioned.
   */
  private Uni<Void> requireOpen(String sessionId) {
    if (sessionId.isEmpty()) {
      return Uni.createFrom().voidItem();
    }
    return pool.preparedQuery(SESSION_OPEN)
        .execute(Tuple.of(sessionId))
        .map(
            rows -> {
              if (!rows.iterator().next().getBoolean("open")) {
                throw new FailedPreconditionException(
                    "session "
                        + sessionId
                        + " was archived, terminated or deleted while its sandbox was provisioned");
              }
              return null;
            });
  }

  /** Whether {@code tenant} is disabled (by this replica or another). */
  Uni<Boolean> disabled(Tenant tenant) {
    return pool.preparedQuery(TENANT_DISABLED)
        .execute(Tuple.of(tenant.id()))
        .map(rows -> rows.iterator().next().getBoolean("disabled"));
  }

  /**
   * Fails (RESOURCE_EXHAUSTED) when {@code tenant} already runs {@code maxLive} sandboxes, counting
   * {@code starting} more (asked once the rows are counted) being started and not yet recorded, and
   * (PERMISSION_DENIED) when it is disabled: a check before a sandbox is started, which {@link
   * #insert} makes again, race-free, when it is recorded.
   */
  Uni<Void> requireRoom(Tenant tenant, int maxLive, java.util.function.IntSupplier starting) {
    return pool.preparedQuery(LIVE_OF_TENANT)
        .execute(Tuple.of(tenant.id()))
        .map(
            rows -> {
              Row row = rows.iterator().next();
              if (row.getBoolean("disabled")) {
                throw new PermissionDeniedException(
                    "tenant " + tenant.id() + " is disabled: it runs no sandbox");
              }
              if (row.getLong("live") + starting.getAsInt() >= maxLive) {
                throw tooMany(tenant, maxLive);
              }
              return null;
            });
  }

  private static ResourceExhaustedException tooMany(Tenant tenant, int maxLive) {
    return new ResourceExhaustedException(
        "tenant "
            + tenant.id()
            + " runs "
            + maxLive
            + " sandboxes, the most it may at once (corral.sandbox.max-live-per-tenant);"
            + " release one first");
  }

  /** The sandbox {@code id} whatever its tenant (never for a client's request). */
  Uni<Sandbox> find(String id) {
    return pool.preparedQuery(SELECT).execute(Tuple.of(id)).map(rows -> single(rows, id));
  }

  Uni<Sandbox> find(Tenant tenant, String id) {
    return pool.preparedQuery(SELECT_OF_TENANT)
        .execute(Tuple.of(id, tenant.id()))
        .map(rows -> single(rows, id));
  }

  private static Sandbox single(RowSet<Row> rows, String id) {
    if (rows.size() == 0) {
      throw new NotFoundException("sandbox", id);
    }
    return fromRow(rows.iterator().next());
  }

  Uni<Optional<Sandbox>> ready(String id, String host, List<LimitEnforcement> limits) {
    return pool.preparedQuery(READY)
        .execute(Tuple.of(id, host, limitsColumn(limits)))
        .map(SandboxRepository::first);
  }

  /** Releases a live sandbox whose lifetime is over; empty if it was not live or not over. */
  Uni<Optional<Sandbox>> expire(String id, String reason) {
    return pool.preparedQuery(EXPIRE).execute(Tuple.of(id, reason)).map(SandboxRepository::first);
  }

  /** Live sandboxes whose lifetime is over. */
  Uni<List<String>> expired() {
    return pool.preparedQuery(EXPIRED).execute().map(SandboxRepository::ids);
  }

  /** Moves a live sandbox to released or lost, for {@code reason}; empty if it was not live. */
  public Uni<Optional<Sandbox>> end(String id, SandboxState state, String reason) {
    String column = state == SandboxState.SANDBOX_STATE_LOST ? "lost" : "released";
    return pool.preparedQuery(END)
        .execute(Tuple.of(id, column, reason))
        .map(SandboxRepository::first);
  }

  Uni<Void> used(String id) {
    return pool.preparedQuery(USED).execute(Tuple.of(id)).replaceWithVoid();
  }

  Uni<List<Sandbox>> list(
      Tenant tenant, String beforeId, String sessionId, boolean includeEnded, int limit) {
    return pool.preparedQuery(LIST.after(beforeId))
        .execute(Tuple.of(beforeId, sessionId, includeEnded, limit, tenant.id()))
        .map(SandboxRepository::all);
  }

  /** The session's sandboxes that still live. */
  Uni<List<Sandbox>> liveOf(String sessionId) {
    return pool.preparedQuery(LIVE_OF_SESSION)
        .execute(Tuple.of(sessionId))
        .map(SandboxRepository::all);
  }

  /** The session's newest ready sandbox. */
  Uni<Optional<Sandbox>> currentOf(String sessionId) {
    return pool.preparedQuery(CURRENT_OF_SESSION)
        .execute(Tuple.of(sessionId))
        .map(SandboxRepository::first);
  }

  /**
   * Whether the session had a sandbox that is gone (so a new one starts with an empty workspace).
   */
  Uni<Boolean> hadOne(String sessionId) {
    return pool.preparedQuery(HAD_ONE)
        .execute(Tuple.of(sessionId, Sandboxes.SUPERSEDED))
        .map(rows -> rows.size() > 0);
  }

  Uni<List<String>> orphaned() {
    return pool.preparedQuery(ORPHANED).execute().map(SandboxRepository::ids);
  }

  Uni<List<String>> ofDisabledTenants() {
    return pool.preparedQuery(OF_DISABLED_TENANTS).execute().map(SandboxRepository::ids);
  }

  private static List<String> ids(RowSet<Row> rows) {
    List<String> ids = new ArrayList<>();
    rows.forEach(row -> ids.add(row.getString("id")));
    return ids;
  }

  private static Buffer limitsColumn(List<LimitEnforcement> limits) {
    return Buffer.buffer(Sandbox.newBuilder().addAllLimitsEnforced(limits).build().toByteArray());
  }

  /** Every sandbox in provisioning or ready state. */
  Uni<List<Sandbox>> live() {
    return pool.preparedQuery(LIVE).execute().map(SandboxRepository::all);
  }

  Uni<List<Sandbox>> byIds(List<String> ids) {
    return pool.preparedQuery(BY_IDS)
        .execute(Tuple.of(ids.toArray(String[]::new)))
        .map(SandboxRepository::all);
  }

  static String driverColumn(SandboxDriver driver) {
    return Sandboxes.driverName(driver);
  }

  private static Optional<Sandbox> first(RowSet<Row> rows) {
    return rows.size() == 0 ? Optional.empty() : Optional.of(fromRow(rows.iterator().next()));
  }

  private static List<Sandbox> all(RowSet<Row> rows) {
    List<Sandbox> sandboxes = new ArrayList<>();
    rows.forEach(row -> sandboxes.add(fromRow(row)));
    return sandboxes;
  }

  static Sandbox fromRow(Row row) {
    Sandbox.Builder sandbox =
        Sandbox.newBuilder()
            .setId(row.getString("id"))
            .setTenantId(row.getString("tenant_id"))
            .setDriver(
                "kubernetes".equals(row.getString("driver"))
                    ? SandboxDriver.SANDBOX_DRIVER_KUBERNETES
                    : SandboxDriver.SANDBOX_DRIVER_LOCAL)
            .setState(state(row.getString("state")))
            .setHost(row.getString("host"))
            .setCreatedAt(ProtoTime.of(row.getOffsetDateTime("created_at")))
            .setLastUsedAt(ProtoTime.of(row.getOffsetDateTime("last_used_at")));
    if (row.getString("environment_id") != null) {
      sandbox.setEnvironmentId(row.getString("environment_id"));
    }
    if (row.getString("session_id") != null) {
      sandbox.setSessionId(row.getString("session_id"));
    }
    OffsetDateTime releasedAt = row.getOffsetDateTime("released_at");
    if (releasedAt != null) {
      sandbox.setReleasedAt(ProtoTime.of(releasedAt));
    }
    if (row.getString("lost_reason") != null) {
      sandbox.setLostReason(row.getString("lost_reason"));
    }
    if (row.getString("release_reason") != null) {
      sandbox.setReleaseReason(row.getString("release_reason"));
    }
    OffsetDateTime expiresAt = row.getOffsetDateTime("expires_at");
    if (expiresAt != null) {
      sandbox.setExpiresAt(ProtoTime.of(expiresAt));
    }
    try {
      if (row.getBuffer("limits_enforced") != null) {
        sandbox.addAllLimitsEnforced(
            Sandbox.parseFrom(row.getBuffer("limits_enforced").getBytes()).getLimitsEnforcedList());
      }
      sandbox.setResources(SandboxResources.parseFrom(row.getBuffer("resources").getBytes()));
    } catch (InvalidProtocolBufferException e) {
      throw new IllegalStateException(
          "stored sandbox " + row.getString("id") + " is not readable", e);
    }
    return sandbox.build();
  }

  private static SandboxState state(String column) {
    return switch (column) {
      case "provisioning" -> SandboxState.SANDBOX_STATE_PROVISIONING;
      case "ready" -> SandboxState.SANDBOX_STATE_READY;
      case "lost" -> SandboxState.SANDBOX_STATE_LOST;
      default -> SandboxState.SANDBOX_STATE_RELEASED;
    };
  }
}
