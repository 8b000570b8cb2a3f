package dev.corral.db;

import io.quarkus.reactive.pg.client.PgPoolCreator;
import io.vertx.pgclient.PgPool;
import io.vertx.sqlclient.Pool;
import jakarta.inject.Singleton;
import java.time.Duration;
import org.eclipse.microprofile.config.inject.ConfigProperty;

/**
 * The reactive pool as Quarkus configures it, with two changes.
 *
 * <ul>
 *   <li>Statements up to {@link #CACHED_SQL_LIMIT} characters are kept prepared. The Vert.x client
 *       caches only statements of at most 2,048 characters by default, and the append statement is
 *       longer: it was parsed and planned again on every append, which cost PostgreSQL more than
 *       running it (see docs/decisions.md, "The cost of an append").
 *   <li>Every connection has a {@code statement_timeout} ({@code
 *       corral.database.statement-timeout}, 30 s) and an {@code
 *       idle_in_transaction_session_timeout} (twice that, at least 60 s): a statement stuck on a
 *       lock or an overloaded server fails instead of holding its caller and its connection for
 *       ever, and a transaction corral left open is ended by PostgreSQL.
 * </ul>
 */
@Singleton
public class PoolCreator implements PgPoolCreator {

  static final int CACHED_SQL_LIMIT = 16 * 1024;

  /**
   * The idle-in-transaction timeout is never shorter: corral waits inside a transaction for an
   * OAuth token refresh (at most 15 s), and ending that transaction would lose the new tokens.
   */
  static final long IDLE_FLOOR_MILLIS = 60_000;

  private final Duration statementTimeout;

  public PoolCreator(
      @ConfigProperty(name = "corral.database.statement-timeout", defaultValue = "30s")
          Duration statementTimeout) {
    if (statementTimeout.isNegative() || statementTimeout.isZero()) {
      throw new IllegalArgumentException(
          "corral.database.statement-timeout must be positive, not " + statementTimeout);
    }
    this.statementTimeout = statementTimeout;
  }

  @Override
  public Pool create(Input input) {
    // PostgreSQL takes at most INT_MAX milliseconds for either setting
    long millis = Math.min(Integer.MAX_VALUE, Math.max(1, statementTimeout.toMillis()));
    long idleMillis = Math.min(Integer.MAX_VALUE, Math.max(IDLE_FLOOR_MILLIS, 2 * millis));
    input
        .pgConnectOptionsList()
        .forEach(
            options ->
                options
                    .setPreparedStatementCacheSqlLimit(CACHED_SQL_LIMIT)
                    .addProperty("statement_timeout", Long.toString(millis))
                    .addProperty("idle_in_transaction_session_timeout", Long.toString(idleMillis)));
    return PgPool.pool(input.vertx(), input.pgConnectOptionsList(), input.poolOptions());
  }
}
