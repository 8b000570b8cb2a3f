package dev.corral.agent;

import com.google.protobuf.InvalidProtocolBufferException;
import dev.corral.common.NotFoundException;
import dev.corral.common.Paging;
import dev.corral.common.ProtoTime;
import dev.corral.common.Tenant;
import dev.corral.db.TenantCaps;
import dev.corral.db.TenantLimits;
import dev.corral.proto.v1.Environment;
import io.smallrye.mutiny.Uni;
import io.vertx.core.buffer.Buffer;
import io.vertx.mutiny.sqlclient.Pool;
import io.vertx.mutiny.sqlclient.Row;
import io.vertx.mutiny.sqlclient.RowSet;
import io.vertx.mutiny.sqlclient.Tuple;
import jakarta.enterprise.context.ApplicationScoped;
import java.time.OffsetDateTime;
import java.util.ArrayList;
import java.util.List;
import java.util.function.UnaryOperator;

/** Environments in PostgreSQL. */
@ApplicationScoped
public class EnvironmentRepository {

  private static final String COLUMNS = "id, created_at, updated_at, archived_at, version, spec";

  static final String INSERT =
      "INSERT INTO environments (id, tenant_id, spec) VALUES ($1, $3, $2) RETURNING " + COLUMNS;

  static final String SELECT =
      "SELECT " + COLUMNS + " FROM environments WHERE id = $1 AND tenant_id = $2";

  static final String LOCK = SELECT + " FOR UPDATE";

  static final String UPDATE =
      "UPDATE environments SET spec = $2, version = version + 1, updated_at = clock_timestamp()"
          + " WHERE id = $1 AND tenant_id = $3 RETURNING "
          + COLUMNS;

  static final Paging.Listing LIST =
      Paging.listing(
          dev.corral.common.Page.bounded(
              "SELECT "
                  + COLUMNS
                  + """
               FROM environments
              WHERE tenant_id = $4 AND ($1::text IS NULL OR id < $1) AND ($2 OR archived_at IS NULL)
              ORDER BY id DESC
              LIMIT $3
              """,
              "octet_length(spec)",
              "ORDER BY id DESC"));

  static final String ACTIVE =
      "SELECT tenant_id, "
          + COLUMNS
          + " FROM environments e WHERE archived_at IS NULL AND NOT EXISTS"
          + " (SELECT 1 FROM tenants t WHERE t.id = e.tenant_id AND t.disabled_at IS NOT NULL)"
          + " ORDER BY created_at, id";

  static final String ARCHIVE =
      "UPDATE environments SET archived_at = coalesce(archived_at, clock_timestamp())"
          + " WHERE id = $1 AND tenant_id = $2 RETURNING "
          + COLUMNS;

  private final Pool pool;

  private final TenantCaps caps;

  private final TenantLimits limits;

  EnvironmentRepository(Pool pool, TenantCaps caps, TenantLimits limits) {
    this.pool = pool;
    this.caps = caps;
    this.limits = limits;
  }

  Uni<Environment> create(Tenant tenant, String id, Environment definition) {
    return limits.capped(
        TenantLimits.Capped.ENVIRONMENTS,
        tenant.id(),
        caps.maxEnvironments(),
        connection ->
            connection
                .preparedQuery(INSERT)
                .execute(Tuple.of(id, bytes(definition), tenant.id()))
                .map(rows -> single(rows, id)));
  }

  Uni<Environment> find(Tenant tenant, String id) {
    return pool.preparedQuery(SELECT)
        .execute(Tuple.of(id, tenant.id()))
        .map(rows -> single(rows, id));
  }

  /** Applies {@code change} to the stored environment under its row lock. */
  Uni<Environment> update(Tenant tenant, String id, UnaryOperator<Environment> change) {
    return pool.withTransaction(
        connection ->
            connection
                .preparedQuery(LOCK)
                .execute(Tuple.of(id, tenant.id()))
                .map(rows -> single(rows, id))
                .flatMap(
                    current -> {
                      Environment next = change.apply(current);
                      if (definitionOf(next).equals(definitionOf(current))) {
                        return Uni.createFrom().item(current); // no change, no version
                      }
                      return connection
                          .preparedQuery(UPDATE)
                          .execute(Tuple.of(id, bytes(next), tenant.id()))
                          .map(rows -> single(rows, id));
                    }));
  }

  Uni<List<Environment>> list(Tenant tenant, String afterId, boolean includeArchived, int limit) {
    return pool.preparedQuery(LIST.after(afterId))
        .execute(Tuple.of(afterId, includeArchived, limit, tenant.id()))
        .map(EnvironmentRepository::fromRows);
  }

  /** An environment with the tenant that owns it. */
  public record Owned(String tenantId, Environment environment) {}

  /**
   * Every environment that is not archived, of a tenant that is not disabled, oldest first (for
   * warm pools: a disabled tenant's pools are emptied).
   */
  public Uni<List<Owned>> active() {
    return pool.preparedQuery(ACTIVE)
        .execute()
        .map(
            rows -> {
              List<Owned> active = new ArrayList<>();
              rows.forEach(row -> active.add(new Owned(row.getString("tenant_id"), fromRow(row))));
              return active;
            });
  }

  Uni<Environment> archive(Tenant tenant, String id) {
    return pool.preparedQuery(ARCHIVE)
        .execute(Tuple.of(id, tenant.id()))
        .map(rows -> single(rows, id));
  }

  static Environment definitionOf(Environment environment) {
    return environment.toBuilder()
        .clearId()
        .clearCreatedAt()
        .clearUpdatedAt()
        .clearArchivedAt()
        .clearVersion()
        .build();
  }

  private static Buffer bytes(Environment environment) {
    return Buffer.buffer(definitionOf(environment).toByteArray());
  }

  private static Environment single(RowSet<Row> rows, String id) {
    if (rows.size() == 0) {
      throw new NotFoundException("environment", id);
    }
    return fromRow(rows.iterator().next());
  }

  private static List<Environment> fromRows(RowSet<Row> rows) {
    List<Environment> environments = new ArrayList<>();
    rows.forEach(row -> environments.add(fromRow(row)));
    return environments;
  }

  private static Environment fromRow(Row row) {
    Environment.Builder environment;
    try {
      environment = Environment.parseFrom(row.getBuffer("spec").getBytes()).toBuilder();
    } catch (InvalidProtocolBufferException e) {
      throw new IllegalStateException(
          "stored environment " + row.getString("id") + " is not readable", e);
    }
    environment
        .setId(row.getString("id"))
        .setVersion(row.getInteger("version"))
        .setCreatedAt(ProtoTime.of(row.getOffsetDateTime("created_at")))
        .setUpdatedAt(ProtoTime.of(row.getOffsetDateTime("updated_at")));
    OffsetDateTime archivedAt = row.getOffsetDateTime("archived_at");
    if (archivedAt != null) {
      environment.setArchivedAt(ProtoTime.of(archivedAt));
    }
    return environment.build();
  }
}
