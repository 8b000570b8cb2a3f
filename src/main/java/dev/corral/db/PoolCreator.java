package dev.corral.db;

import io.quarkus.reactive.pg.client.PgPoolCreator;
import io.vertx.pgclient.PgPool;
import io.vertx.sqlclient.Pool;
import jakarta.inject.Singleton;

/**
 * The reactive pool as Quarkus configures it, with one change: statements up to {@link
 * #CACHED_SQL_LIMIT} characters are kept prepared. The Vert.x client caches only statements of at
 * most 2,048 characters by default, and the append statement is longer: it was parsed and planned
 * again on every append, which cost PostgreSQL more than running it (see docs/decisions.md, "The
 * cost of an append").
 */
@Singleton
public class PoolCreator implements PgPoolCreator {

  static final int CACHED_SQL_LIMIT = 16 * 1024;

  @Override
  public Pool create(Input input) {
    input
        .pgConnectOptionsList()
        .forEach(options -> options.setPreparedStatementCacheSqlLimit(CACHED_SQL_LIMIT));
    return PgPool.pool(input.vertx(), input.pgConnectOptionsList(), input.poolOptions());
  }
}
