package dev.corral.identity;

import dev.corral.common.NotFoundException;
import dev.corral.common.Paging;
import dev.corral.common.ProtoTime;
import dev.corral.common.Tenant;
import io.smallrye.mutiny.Uni;
import io.vertx.mutiny.sqlclient.Pool;
import io.vertx.mutiny.sqlclient.Row;
import io.vertx.mutiny.sqlclient.RowSet;
import io.vertx.mutiny.sqlclient.Tuple;
import jakarta.enterprise.context.ApplicationScoped;
import java.time.OffsetDateTime;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/** Tenant rows in PostgreSQL. */
@ApplicationScoped
public class TenantRepository {

  private static final String COLUMNS = "id, created_at, disabled_at";

  /** Creates the tenant if it is new; returns it either way. */
  static final String ENSURE =
      """
      WITH inserted AS (
          INSERT INTO tenants (id) VALUES ($1) ON CONFLICT (id) DO NOTHING RETURNING id, created_at, disabled_at
      )
      SELECT id, created_at, disabled_at FROM inserted
      UNION ALL
      SELECT id, created_at, disabled_at FROM tenants WHERE id = $1
      LIMIT 1
      """;

  static final String SELECT = "SELECT " + COLUMNS + " FROM tenants WHERE id = $1";

  static final Paging.Listing LIST =
      Paging.listing(
          "SELECT "
              + COLUMNS
              + " FROM tenants WHERE ($1::text IS NULL OR id > $1) ORDER BY id LIMIT $2");

  static final String SET_DISABLED =
      """
      UPDATE tenants
      SET disabled_at = CASE WHEN $2 THEN coalesce(disabled_at, clock_timestamp()) END
      WHERE id = $1
      RETURNING id, created_at, disabled_at
      """;

  private final Pool pool;

  TenantRepository(Pool pool) {
    this.pool = pool;
  }

  /**
   * The tenant, made if it did not exist. When another insert of it commits while this one runs,
   * this statement's snapshot sees neither its own insert nor the other's row, so the row is read
   * again by a statement of its own, which does.
   */
  Uni<dev.corral.proto.v1.Tenant> ensure(Tenant tenant) {
    return pool.preparedQuery(ENSURE)
        .execute(Tuple.of(tenant.id()))
        .flatMap(
            rows ->
                rows.size() > 0
                    ? Uni.createFrom().item(rows)
                    : pool.preparedQuery(SELECT).execute(Tuple.of(tenant.id())))
        .map(rows -> single(rows, tenant));
  }

  Uni<Optional<dev.corral.proto.v1.Tenant>> find(Tenant tenant) {
    return pool.preparedQuery(SELECT)
        .execute(Tuple.of(tenant.id()))
        .map(
            rows ->
                rows.size() == 0 ? Optional.empty() : Optional.of(fromRow(rows.iterator().next())));
  }

  Uni<List<dev.corral.proto.v1.Tenant>> list(String afterId, int limit) {
    return pool.preparedQuery(LIST.after(afterId))
        .execute(Tuple.of(afterId, limit))
        .map(
            rows -> {
              List<dev.corral.proto.v1.Tenant> tenants = new ArrayList<>(rows.size());
              rows.forEach(row -> tenants.add(fromRow(row)));
              return tenants;
            });
  }

  Uni<dev.corral.proto.v1.Tenant> setDisabled(Tenant tenant, boolean disabled) {
    return pool.preparedQuery(SET_DISABLED)
        .execute(Tuple.of(tenant.id(), disabled))
        .map(rows -> single(rows, tenant));
  }

  private static dev.corral.proto.v1.Tenant single(RowSet<Row> rows, Tenant tenant) {
    if (rows.size() == 0) {
      throw new NotFoundException("tenant", tenant.id());
    }
    return fromRow(rows.iterator().next());
  }

  static dev.corral.proto.v1.Tenant fromRow(Row row) {
    dev.corral.proto.v1.Tenant.Builder tenant =
        dev.corral.proto.v1.Tenant.newBuilder()
            .setId(row.getString("id"))
            .setCreatedAt(ProtoTime.of(row.getOffsetDateTime("created_at")));
    OffsetDateTime disabledAt = row.getOffsetDateTime("disabled_at");
    if (disabledAt != null) {
      tenant.setDisabledAt(ProtoTime.of(disabledAt));
    }
    return tenant.build();
  }
}
