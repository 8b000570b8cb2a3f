package dev.corral.db;

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
