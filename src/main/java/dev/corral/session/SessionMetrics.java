package dev.corral.session;

import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.quarkus.runtime.StartupEvent;
import io.vertx.mutiny.core.Vertx;
import io.vertx.mutiny.sqlclient.Pool;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Observes;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;
import org.jboss.logging.Logger;

/**
 * Gauges of sessions: how many are in each status (counted in the database every 15 s, so that
 * every replica reports the whole deployment's figure), and the live log streams this replica
 * serves.
 */
@ApplicationScoped
class SessionMetrics {

  private static final Logger LOGGER = Logger.getLogger(SessionMetrics.class);
  private static final long REFRESH_MS = 15_000;
  private static final List<String> STATUSES =
      List.of("idle", "running", "rescheduling", "terminated");

  static final String COUNT =
      "SELECT status, count(*) AS n FROM sessions WHERE archived_at IS NULL GROUP BY status";

  private final Map<String, AtomicLong> byStatus = new ConcurrentHashMap<>();

  void register(
      @Observes StartupEvent event, MeterRegistry metrics, EventTail tail, Pool pool, Vertx vertx) {
    for (String status : STATUSES) {
      AtomicLong count = byStatus.computeIfAbsent(status, key -> new AtomicLong());
      Gauge.builder("corral.sessions", count, AtomicLong::get)
          .description("Sessions (not archived) in each status, in the whole deployment")
          .tag("status", status)
          .register(metrics);
    }
    Gauge.builder("corral.streams.open", tail, EventTail::open)
        .description("Live log streams on this replica (client streams and harness tails)")
        .register(metrics);
    refresh(pool);
    vertx.setPeriodic(REFRESH_MS, ignored -> refresh(pool));
  }

  private void refresh(Pool pool) {
    pool.query(COUNT)
        .execute()
        .subscribe()
        .with(
            rows -> {
              Map<String, Long> counted = new java.util.HashMap<>();
              rows.forEach(row -> counted.put(row.getString("status"), row.getLong("n")));
              byStatus.forEach((status, count) -> count.set(counted.getOrDefault(status, 0L)));
            },
            failure -> LOGGER.debugf("sessions not counted: %s", failure.getMessage()));
  }
}
