package dev.corral.session;

import static org.assertj.core.api.Assertions.assertThat;

import dev.corral.db.PoolCreator;
import io.quarkus.reactive.pg.client.PgPoolCreator;
import io.vertx.core.Vertx;
import io.vertx.pgclient.PgConnectOptions;
import io.vertx.sqlclient.PoolOptions;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * The pool keeps corral's longest statements prepared: the Vert.x client's default (2,048
 * characters) left the append statement to be parsed and planned on every append.
 */
class PreparedStatementsTest {

  private static final List<String> STATEMENTS =
      List.of(
          EventLog.APPEND,
          EventLog.APPEND_MANY,
          EventLog.APPEND_UNKEYED,
          EventLog.APPEND_ONE_EVENT,
          EventLog.APPEND_MANY_UNKEYED,
          EventLog.READ_AFTER,
          EventLog.READ_BEFORE,
          EventLog.FIND);

  @Test
  void everyLogStatementFitsTheCacheOfThePool() {
    Vertx vertx = Vertx.vertx();
    try {
      PgConnectOptions options = new PgConnectOptions().setCachePreparedStatements(true);
      new PoolCreator(java.time.Duration.ofSeconds(30))
          .create(
              new PgPoolCreator.Input() {
                @Override
                public Vertx vertx() {
                  return vertx;
                }

                @Override
                public PoolOptions poolOptions() {
                  return new PoolOptions();
                }

                @Override
                public List<PgConnectOptions> pgConnectOptionsList() {
                  return List.of(options);
                }
              })
          .close();
      for (String statement : STATEMENTS) {
        assertThat(statement.length()).isGreaterThan(100);
        assertThat(options.getPreparedStatementCacheSqlFilter().test(statement))
            .as(statement.substring(0, 40))
            .isTrue();
      }
      assertThat(STATEMENTS.stream().mapToInt(String::length).max().orElse(0))
          .as("the append statement is longer than the client's default limit")
          .isGreaterThan(2048);
    } finally {
      vertx.close();
    }
  }
}
