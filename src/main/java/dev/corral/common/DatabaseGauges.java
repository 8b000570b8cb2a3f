package dev.corral.common;

import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.vertx.mutiny.core.Vertx;
import io.vertx.mutiny.sqlclient.Pool;
import io.vertx.mutiny.sqlclient.Row;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLong;
import org.jboss.logging.Logger;

/**
 * Gauges counted in the database, so that every replica reports the whole deployment's figure: one
 * gauge per combination of tag values, refreshed from a {@code GROUP BY} query (its tag columns,
 * then {@code n}) every 15 s, without blocking.
 */
public final class DatabaseGauges {

  private static final Logger LOGGER = Logger.getLogger(DatabaseGauges.class);
  private static final long REFRESH_MS = 15_000;

  private final Map<List<String>, AtomicLong> counts = new HashMap<>();
  private final List<String> tags;
  private final String query;

  private DatabaseGauges(List<String> tags, String query) {
    this.tags = tags;
    this.query = query;
  }

  /**
   * Registers gauge {@code name} for each list of values in {@code combinations} (one value per tag
   * of {@code tags}, which are also the query's columns) and starts refreshing them.
   */
  public static void register(
      MeterRegistry metrics,
      Pool pool,
      Vertx vertx,
      String name,
      String description,
      List<String> tags,
      List<List<String>> combinations,
      String query) {
    DatabaseGauges gauges = new DatabaseGauges(tags, query);
    for (List<String> values : combinations) {
      AtomicLong count = new AtomicLong();
      gauges.counts.put(values, count);
      Gauge.Builder<AtomicLong> gauge =
          Gauge.builder(name, count, AtomicLong::get).description(description);
      for (int i = 0; i < tags.size(); i++) {
        gauge.tag(tags.get(i), values.get(i));
      }
      gauge.register(metrics);
    }
    gauges.refresh(pool);
    vertx.setPeriodic(REFRESH_MS, ignored -> gauges.refresh(pool));
  }

  private void refresh(Pool pool) {
    pool.query(query)
        .execute()
        .subscribe()
        .with(
            rows -> {
              Map<List<String>, Long> counted = new HashMap<>();
              for (Row row : rows) {
                counted.put(tags.stream().map(row::getString).toList(), row.getLong("n"));
              }
              counts.forEach((values, count) -> count.set(counted.getOrDefault(values, 0L)));
            },
            failure -> LOGGER.debugf("%s not counted: %s", query, failure.getMessage()));
  }
}
