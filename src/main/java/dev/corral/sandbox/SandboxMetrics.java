package dev.corral.sandbox;

import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.quarkus.runtime.StartupEvent;
import io.vertx.mutiny.core.Vertx;
import io.vertx.mutiny.sqlclient.Pool;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Observes;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;
import org.jboss.logging.Logger;

/** Live sandboxes (provisioning and ready) by driver, in the whole deployment, every 15 s. */
@ApplicationScoped
class SandboxMetrics {

  private static final Logger LOGGER = Logger.getLogger(SandboxMetrics.class);
  private static final long REFRESH_MS = 15_000;

  static final String COUNT =
      "SELECT driver, state, count(*) AS n FROM sandboxes"
          + " WHERE state IN ('provisioning', 'ready') GROUP BY driver, state";

  private final Map<String, AtomicLong> counts = new ConcurrentHashMap<>();

  void register(@Observes StartupEvent event, MeterRegistry metrics, Pool pool, Vertx vertx) {
    for (String driver : new String[] {"local", "kubernetes"}) {
      for (String state : new String[] {"provisioning", "ready"}) {
        AtomicLong count = counts.computeIfAbsent(driver + "/" + state, key -> new AtomicLong());
        Gauge.builder("corral.sandboxes", count, AtomicLong::get)
            .description("Live sandboxes by driver and state, in the whole deployment")
            .tag("driver", driver)
            .tag("state", state)
            .register(metrics);
      }
    }
    refresh(pool);
    vertx.setPeriodic(REFRESH_MS, ignored -> refresh(pool));
  }

  private void refresh(Pool pool) {
    pool.query(COUNT)
        .execute()
        .subscribe()
        .with(
            rows -> {
              Map<String, Long> counted = new HashMap<>();
              rows.forEach(
                  row ->
                      counted.put(
                          row.getString("driver") + "/" + row.getString("state"),
                          row.getLong("n")));
              counts.forEach((key, count) -> count.set(counted.getOrDefault(key, 0L)));
            },
            failure -> LOGGER.debugf("sandboxes not counted: %s", failure.getMessage()));
  }
}
