package dev.corral.db;

import io.smallrye.health.api.AsyncHealthCheck;
import io.smallrye.mutiny.Uni;
import io.vertx.mutiny.sqlclient.Pool;
import io.vertx.mutiny.sqlclient.Row;
import io.vertx.mutiny.sqlclient.Tuple;
import jakarta.enterprise.context.ApplicationScoped;
import java.time.Duration;
import org.eclipse.microprofile.health.HealthCheckResponse;
import org.eclipse.microprofile.health.Readiness;

/**
 * Ready once the database answers and holds the schema version this code needs (Flyway migrates at
 * start, so a replica whose migration failed never becomes ready).
 */
@Readiness
@ApplicationScoped
class SchemaReadiness implements AsyncHealthCheck {

  /** The newest migration ({@code V<n>__*.sql}) this code expects. */
  static final String REQUIRED_VERSION = "14";

  private static final String NAME = "corral schema";
  private static final String QUERY =
      "SELECT coalesce(bool_or(version = $1 AND success), false) AS migrated FROM flyway_schema_history";

  private final Pool pool;

  /**
   * The last answer, for a second: probes need no credential, so however many come, the database
   * answers at most one query a second for them.
   */
  private final Uni<HealthCheckResponse> recent;

  SchemaReadiness(Pool pool) {
    this.pool = pool;
    this.recent = query().memoize().atLeast(Duration.ofSeconds(1));
  }

  @Override
  public Uni<HealthCheckResponse> call() {
    return recent;
  }

  private Uni<HealthCheckResponse> query() {
    return pool.preparedQuery(QUERY)
        .execute(Tuple.of(REQUIRED_VERSION))
        .map(rows -> rows.iterator().next())
        .map(SchemaReadiness::fromRow)
        .ifNoItem()
        .after(Duration.ofSeconds(5))
        .fail()
        .onFailure()
        .recoverWithItem(
            failure ->
                HealthCheckResponse.named(NAME)
                    .down()
                    .withData("error", "database unreachable")
                    .build());
  }

  private static HealthCheckResponse fromRow(Row row) {
    return HealthCheckResponse.named(NAME)
        .status(row.getBoolean("migrated"))
        .withData("requiredVersion", REQUIRED_VERSION)
        .build();
  }
}
