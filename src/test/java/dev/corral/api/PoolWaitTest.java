package dev.corral.api;

import static org.assertj.core.api.Assertions.assertThat;

import io.grpc.Status;
import io.quarkus.test.junit.QuarkusTest;
import io.vertx.mutiny.pgclient.PgPool;
import io.vertx.mutiny.sqlclient.SqlConnection;
import io.vertx.pgclient.PgConnectOptions;
import io.vertx.sqlclient.PoolOptions;
import jakarta.inject.Inject;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
import org.eclipse.microprofile.config.inject.ConfigProperty;
import org.junit.jupiter.api.Test;

/**
 * A pool whose connections all stay busy for as long as a caller may wait for one: the caller is
 * told to retry (UNAVAILABLE), not that corral broke (INTERNAL). A real pool of corral's database,
 * of one connection and a one-second wait.
 */
@QuarkusTest
class PoolWaitTest {

  @Inject io.vertx.mutiny.core.Vertx vertx;

  @ConfigProperty(name = "quarkus.datasource.reactive.url")
  String url;

  @ConfigProperty(name = "quarkus.datasource.username")
  String user;

  @ConfigProperty(name = "quarkus.datasource.password")
  String password;

  @Test
  void aQueryAndATransactionThatFindNoFreeConnectionInTimeAreUnavailable() {
    PgPool pool =
        PgPool.pool(
            vertx,
            PgConnectOptions.fromUri(url.replaceFirst("^vertx-reactive:", ""))
                .setUser(user)
                .setPassword(password),
            new PoolOptions()
                .setMaxSize(1)
                .setConnectionTimeout(1)
                .setConnectionTimeoutUnit(TimeUnit.SECONDS));
    SqlConnection held = pool.getConnection().await().atMost(Duration.ofSeconds(10));
    try {
      // a statement straight on the pool (the way most reads run), and one that asks the pool for
      // a connection of its own (transactions): each fails its wait differently
      Throwable query = failure(pool.query("SELECT 1").execute());
      Throwable transaction = failure(pool.withTransaction(c -> c.query("SELECT 1").execute()));

      for (Throwable waited : java.util.List.of(query, transaction)) {
        Status status = GrpcErrors.toStatus(waited).getStatus();
        assertThat(status.getCode()).as(String.valueOf(waited)).isEqualTo(Status.Code.UNAVAILABLE);
        assertThat(status.getDescription()).contains("no connection came free");
      }
    } finally {
      held.close().await().atMost(Duration.ofSeconds(10));
      pool.close().await().atMost(Duration.ofSeconds(10));
    }
  }

  private static Throwable failure(io.smallrye.mutiny.Uni<?> call) {
    try {
      call.await().atMost(Duration.ofSeconds(10));
    } catch (RuntimeException failed) {
      return failed;
    }
    throw new AssertionError("the call found a connection");
  }
}
