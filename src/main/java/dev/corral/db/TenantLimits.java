package dev.corral.db;

import dev.corral.common.ResourceExhaustedException;
import io.smallrye.mutiny.Uni;
import io.vertx.mutiny.sqlclient.Pool;
import io.vertx.mutiny.sqlclient.Row;
import io.vertx.mutiny.sqlclient.RowSet;
import io.vertx.mutiny.sqlclient.SqlConnection;
import io.vertx.mutiny.sqlclient.Tuple;
import java.util.function.Function;

/**
 * Inserts that a per-tenant limit bounds ({@code INSERT ... WHERE (SELECT count(*) ...) < limit}).
 * Under READ COMMITTED two such inserts running at once each count the rows before the other's, and
 * both pass at the limit; so each runs in a transaction that first takes a lock of the tenant and
 * the kind of row (an advisory lock, held until commit), and its count is a new statement that sees
 * every insert committed before it.
 */
public final class TenantLimits {

  static final String LOCK = "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))";

  private TenantLimits() {}

  /** A kind of row whose number per tenant {@link TenantCaps} bounds. */
  public enum Capped {
    AGENTS("agents", "corral.tenant.max-agents", "archived ones count; ask for a higher limit"),
    ENVIRONMENTS(
        "environments",
        "corral.tenant.max-environments",
        "archived ones count; ask for a higher limit"),
    SESSIONS("sessions", "corral.tenant.max-sessions", "delete one first");

    private final String table;
    private final String setting;
    private final String advice;
    private final String count;

    Capped(String table, String setting, String advice) {
      this.table = table;
      this.setting = setting;
      this.advice = advice;
      // LIMIT: a tenant far past a lowered limit costs no more than one at it
      this.count =
          "SELECT count(*) AS held FROM (SELECT 1 FROM "
              + table
              + " WHERE tenant_id = $1 LIMIT $2) held";
    }
  }

  /**
   * Within {@code connection}'s transaction, before an insert of {@code kind}: takes the lock of
   * {@code tenantId}'s {@code kind} (held until commit, so that the insert is counted by every
   * later check) and fails with RESOURCE_EXHAUSTED when the tenant already holds {@code max} of
   * them.
   */
  public static Uni<Void> requireRoom(
      SqlConnection connection, Capped kind, String tenantId, int max) {
    return connection
        .preparedQuery(LOCK)
        .execute(Tuple.of("corral-limit " + kind.table + " " + tenantId))
        .flatMap(locked -> connection.preparedQuery(kind.count).execute(Tuple.of(tenantId, max)))
        .map(
            rows -> {
              if (rows.iterator().next().getLong("held") >= max) {
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
              return null;
            });
  }

  /** Runs {@code insert} (with its count) alone among those of {@code tenantId}'s {@code kind}. */
  public static Uni<RowSet<Row>> insert(
      Pool pool, String kind, String tenantId, Function<SqlConnection, Uni<RowSet<Row>>> insert) {
    return pool.withTransaction(
        connection ->
            connection
                .preparedQuery(LOCK)
                .execute(Tuple.of("corral-limit " + kind + " " + tenantId))
                .flatMap(locked -> insert.apply(connection)));
  }
}
