package dev.corral.session;

import io.vertx.core.Vertx;
import io.vertx.pgclient.PgBuilder;
import io.vertx.pgclient.PgConnectOptions;
import io.vertx.sqlclient.Pool;
import io.vertx.sqlclient.PoolOptions;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
import org.eclipse.microprofile.config.ConfigProvider;

/**
 * Appends the way another corral replica would: its own Vert.x, its own connection, the same append
 * statement, and no signal to this process.
 */
final class OtherReplica {

  private OtherReplica() {}

  static void append(AppendRequest request) {
    run(request, false);
  }

  /** Appends, then sends the NOTIFY a replica sends after its appends commit. */
  static void appendAndNotify(AppendRequest request) {
    run(request, true);
  }

  private static void run(AppendRequest request, boolean notify) {
    Vertx vertx = Vertx.vertx();
    try {
      String url =
          ConfigProvider.getConfig().getValue("quarkus.datasource.reactive.url", String.class);
      PgConnectOptions options = PgConnectOptions.fromUri(url);
      ConfigProvider.getConfig()
          .getOptionalValue("quarkus.datasource.username", String.class)
          .ifPresent(options::setUser);
      ConfigProvider.getConfig()
          .getOptionalValue("quarkus.datasource.password", String.class)
          .ifPresent(options::setPassword);
      Pool pool =
          PgBuilder.pool()
              .with(new PoolOptions().setMaxSize(1))
              .connectingTo(options)
              .using(vertx)
              .build();
      EventLog.Statement statement = EventLog.statementFor(java.util.List.of(request));
      var rows =
          pool.preparedQuery(statement.sql())
              .execute(EventLog.appendTuple(java.util.List.of(request), statement).getDelegate())
              .toCompletionStage()
              .toCompletableFuture()
              .get(Duration.ofSeconds(10).toMillis(), TimeUnit.MILLISECONDS);
      if (rows.size() != request.events().size()) {
        throw new IllegalStateException("the other replica's append did not happen");
      }
      if (notify) {
        long lastSeq = rows.iterator().next().getLong("seq") + rows.size() - 1;
        pool.preparedQuery("SELECT pg_notify($1, $2)")
            .execute(
                io.vertx.sqlclient.Tuple.of(
                    SessionSignals.CHANNEL, request.sessionId() + ":" + lastSeq))
            .toCompletionStage()
            .toCompletableFuture()
            .get(10, TimeUnit.SECONDS);
      }
      pool.close();
    } catch (Exception e) {
      throw new IllegalStateException(e);
    } finally {
      vertx.close();
    }
  }
}
