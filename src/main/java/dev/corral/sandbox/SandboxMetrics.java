package dev.corral.sandbox;

import dev.corral.common.DatabaseGauges;
import io.micrometer.core.instrument.MeterRegistry;
import io.quarkus.runtime.StartupEvent;
import io.vertx.mutiny.core.Vertx;
import io.vertx.mutiny.sqlclient.Pool;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Observes;
import java.util.ArrayList;
import java.util.List;

/** Live sandboxes (provisioning and ready) by driver, in the whole deployment. */
@ApplicationScoped
class SandboxMetrics {

  static final String COUNT =
      "SELECT driver, state, count(*) AS n FROM sandboxes"
          + " WHERE state IN ('provisioning', 'ready') GROUP BY driver, state";

  void register(@Observes StartupEvent event, MeterRegistry metrics, Pool pool, Vertx vertx) {
    List<List<String>> combinations = new ArrayList<>();
    for (String driver : List.of("local", "kubernetes")) {
      for (String state : List.of("provisioning", "ready")) {
        combinations.add(List.of(driver, state));
      }
    }
    DatabaseGauges.register(
        metrics,
        pool,
        vertx,
        "corral.sandboxes",
        "Live sandboxes by driver and state, in the whole deployment",
        List.of("driver", "state"),
        combinations,
        COUNT);
  }
}
