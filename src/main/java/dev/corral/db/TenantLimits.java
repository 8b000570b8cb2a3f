package dev.corral.db;

import dev.corral.common.CallLane;
import dev.corral.common.ResourceExhaustedException;
import io.smallrye.mutiny.Uni;
import io.vertx.mutiny.sqlclient.Pool;
import io.vertx.mutiny.sqlclient.Row;
import io.vertx.mutiny.sqlclient.RowSet;
import io.vertx.mutiny.sqlclient.SqlConnection;
import io.vertx.mutiny.sqlclient.Tuple;
import jakarta.enterprise.context.ApplicationScoped;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.Function;

/**
 * Inserts that a per-tenant limit bounds. Under READ COMMITTED two inserts running at once each
 * count the rows before the other's, and both pass at the limit; so each runs in a transaction that
 * first takes a lock of the tenant and the kind of row (an advisory lock, held until commit), and
 * its count is a new statement that sees every insert committed before it.
 *
 * <p>A transaction waiting for that lock holds a connection of the replica's pool, so a tenant's
 * inserts of one kind also wait their turn here, before they take a connection: one tenant creating
 * many sessions at once holds one connection of a replica, not the pool every tenant needs.
 */
@ApplicationScoped
public class TenantLimits {

  static final String LOCK = "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))";

  /** Inserts of one tenant and kind that may wait their turn on a replica. */
  static final int MAX_WAITING = 1_000;

  private final Pool pool;

  private final Map<String, CallLane> lanes = new ConcurrentHashMap<>();

  TenantLimits(Pool pool) {
    this.pool = pool;
  }

  /** A kind of row whose number per tenant {@link TenantCaps} bounds. */
  public enum Capped {
    AGENTS(
        "agents",
        "corral.tenant.max-agents",
        "archived ones count; ask for a higher limit",
        counted("agents")),
    ENVIRONMENTS(
        "environments",
        "corral.tenant.max-environments",
        "archived ones count; ask for a higher limit",
        counted("environments")),
    /** Keys that authenticate: revoked ones stay as rows but do not count. */
    API_KEYS(
        "api_keys",
        "corral.tenant.max-api-keys",
        "revoke one first",
        counted("api_keys", "revoked_at IS NULL")),
    /**
     * Sessions are many and their rows change on every append, so they are not counted: the
     * tenant's row of {@code tenant_sessions} goes up here, in the creation's transaction, and down
     * with each deletion ({@link #SESSION_DELETED}).
     */
    SESSIONS(
        "sessions",
        "corral.tenant.max-sessions",
        "delete one first",
        """
        WITH up AS (
            INSERT INTO tenant_sessions (tenant_id, held) VALUES ($1, 1)
            ON CONFLICT (tenant_id) DO UPDATE SET held = tenant_sessions.held + 1
            WHERE tenant_sessions.held < $2
            RETURNING 1)
        SELECT EXISTS (SELECT 1 FROM up) AS room
        """);

    private final String table;
    private final String setting;
    private final String advice;

    /** Whether one more may be made, as a boolean {@code room} ($1 the tenant, $2 the cap). */
    private final String room;

    Capped(String table, String setting, String advice, String room) {
      this.table = table;
      this.setting = setting;
      this.advice = advice;
      this.room = room;
    }

    /** LIMIT: a tenant far past a lowered cap costs no more than one at it. */
    private static String counted(String table) {
      return counted(table, "true");
    }

    /** {@link #counted(String)}, of the rows where {@code condition} holds. */
    private static String counted(String table, String condition) {
      return "SELECT count(*) < $2 AS room FROM (SELECT 1 FROM "
          + table
          + " WHERE tenant_id = $1 AND "
          + condition
          + " LIMIT $2) held";
    }
  }

  /** Within a session's deletion: its tenant holds one fewer. */
  public static final String SESSION_DELETED =
      "UPDATE tenant_sessions SET held = held - 1 WHERE tenant_id = $1 AND held > 0";

  /**
   * Runs {@code insert} (which counts in its own statement) in a transaction that holds the lock of
   * {@code tenantId}'s {@code kind}, once the replica's earlier ones of that kind have ended.
   */
  public Uni<RowSet<Row>> insert(
      String kind, String tenantId, Function<SqlConnection, Uni<RowSet<Row>>> insert) {
    return locked(kind, tenantId, insert);
  }

  /**
   * Runs {@code insert} in a transaction that holds the lock of {@code tenantId}'s {@code kind},
   * once the replica's earlier ones of that kind have ended, and after a count that fails with
   * RESOURCE_EXHAUSTED when the tenant already holds {@code max} of them.
   */
  public <T> Uni<T> capped(
      Capped kind, String tenantId, int max, Function<SqlConnection, Uni<T>> insert) {
    return locked(
        kind.table,
        tenantId,
        connection ->
            connection
                .preparedQuery(kind.room)
                .execute(Tuple.of(tenantId, max))
                .map(
                    rows -> {
                      if (!rows.iterator().next().getBoolean("room")) {
                        throw new ResourceExhaustedException(
                            "tenant "
                                + tenantId
                                + " holds "
                                + max
                                + " "
                                + kind.table
                                + ", the most it may ("
                                + kind.setting
                                + "); "
                                + kind.advice);
                      }
                      return rows;
                    })
                .flatMap(room -> insert.apply(connection)));
  }

  private <T> Uni<T> locked(String kind, String tenantId, Function<SqlConnection, Uni<T>> work) {
    String key = "corral-limit " + kind + " " + tenantId;
    return lane(key)
        .submit(
            new CallLane.Call<T>() {
              @Override
              public Uni<T> start() {
                return pool.withTransaction(
                    connection ->
                        connection
                            .preparedQuery(LOCK)
                            .execute(Tuple.of(key))
                            .flatMap(lock -> work.apply(connection)));
              }

              @Override
              public void interrupt() {} // a transaction under way ends (or times out) by itself
            });
  }

  /**
   * The lane of {@code key}: its inserts run one after another, and a caller that gives up while it
   * waits leaves it. Lanes stay, one per tenant and kind that inserted on this replica.
   */
  private CallLane lane(String key) {
    return lanes.computeIfAbsent(
        key,
        ignored ->
            new CallLane(
                MAX_WAITING,
                MAX_WAITING
                    + " creations of the same kind wait for this tenant on this replica;"
                    + " try again shortly"));
  }

  /** Inserts of {@code tenantId}'s {@code kind} waiting their turn on this replica. */
  int waiting(String kind, String tenantId) {
    CallLane lane = lanes.get("corral-limit " + kind + " " + tenantId);
    return lane == null ? 0 : lane.waiting();
  }
}
