package dev.corral.db;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.quarkus.test.junit.QuarkusTest;
import io.smallrye.mutiny.subscription.Cancellable;
import io.vertx.mutiny.sqlclient.Pool;
import io.vertx.mutiny.sqlclient.SqlConnection;
import io.vertx.mutiny.sqlclient.Tuple;
import jakarta.inject.Inject;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

/** A tenant's capped inserts wait their turn on the replica, and a caller may leave the line. */
@QuarkusTest
class TenantLimitsTest {

  private static final Duration WAIT = Duration.ofSeconds(10);

  @Inject TenantLimits limits;

  @Inject Pool pool;

  @Test
  void aCallerThatGivesUpWhileItWaitsLeavesTheQueueAndTheOthersRunInTurn() {
    // Given a tenant's lock held elsewhere, one insert waiting for it and three behind in memory
    String tenant = "queue-" + System.nanoTime();
    String lock = "corral-limit things " + tenant;
    SqlConnection elsewhere = pool.getConnection().await().atMost(WAIT);
    AtomicInteger ran = new AtomicInteger();
    List<Cancellable> calls = new ArrayList<>();
    try {
      elsewhere
          .preparedQuery("SELECT pg_advisory_lock(hashtextextended($1, 0))")
          .execute(Tuple.of(lock))
          .await()
          .atMost(WAIT);
      for (int i = 0; i < 4; i++) {
        calls.add(
            limits
                .insert(
                    "things",
                    tenant,
                    connection ->
                        connection.query("SELECT 1").execute().invoke(ran::incrementAndGet))
                .subscribe()
                .with(rows -> {}, failure -> {}));
      }
      assertThat(limits.waiting("things", tenant)).isEqualTo(3);

      // When two of those behind give up
      calls.get(1).cancel();
      calls.get(2).cancel();

      // Then they leave the line at once
      assertThat(limits.waiting("things", tenant)).isEqualTo(1);
    } finally {
      elsewhere
          .preparedQuery("SELECT pg_advisory_unlock(hashtextextended($1, 0))")
          .execute(Tuple.of(lock))
          .await()
          .atMost(WAIT);
      elsewhere.close().await().atMost(WAIT);
    }

    // And once the lock is free, the first and the last run, one after the other, and no line stays
    await().atMost(WAIT).until(() -> ran.get() == 2 && limits.waiting("things", tenant) == 0);
  }
}
