package dev.corral.session;

import dev.corral.common.DatabaseGauges;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.quarkus.runtime.StartupEvent;
import io.vertx.mutiny.core.Vertx;
import io.vertx.mutiny.sqlclient.Pool;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Observes;
import java.util.List;

/**
 * Gauges of sessions: how many are in each status in the whole deployment, and the live log streams
 * this replica serves.
 */
@ApplicationScoped
class SessionMetrics {

  static final String COUNT =
      "SELECT status, count(*) AS n FROM sessions WHERE archived_at IS NULL GROUP BY status";

  void register(
      @Observes StartupEvent event, MeterRegistry metrics, EventTail tail, Pool pool, Vertx vertx) {
    DatabaseGauges.register(
        metrics,
        pool,
        vertx,
        "corral.sessions",
        "Sessions (not archived) in each status, in the whole deployment",
        List.of("status"),
        List.of(
            List.of("idle"), List.of("running"), List.of("rescheduling"), List.of("terminated")),
        COUNT);
    Gauge.builder("corral.streams.open", tail, EventTail::open)
        .description("Live log streams on this replica (client streams and harness tails)")
        .register(metrics);
  }
}
