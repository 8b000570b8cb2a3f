package dev.corral.testing;

import io.vertx.mutiny.sqlclient.Pool;
import io.vertx.mutiny.sqlclient.Row;
import java.time.Duration;
import java.util.stream.Collectors;
import java.util.stream.StreamSupport;

/** Query plans, as the server's pool runs its statements (planned once, for any parameters). */
public final class Plans {

  private Plans() {}

  /** The generic plan of {@code statement}, without costs. */
  public static String generic(Pool pool, String statement) {
    return StreamSupport.stream(
            pool.query("EXPLAIN (GENERIC_PLAN, COSTS OFF) " + statement)
                .execute()
                .await()
                .atMost(Duration.ofSeconds(10))
                .spliterator(),
            false)
        .map((Row row) -> row.getString(0))
        .collect(Collectors.joining("\n"));
  }
}
