package dev.corral.vault;

import com.google.protobuf.InvalidProtocolBufferException;
import dev.corral.common.NotFoundException;
import dev.corral.common.Paging;
import dev.corral.common.ProtoTime;
import dev.corral.common.ResourceExhaustedException;
import dev.corral.common.Tenant;
import dev.corral.db.TenantLimits;
import dev.corral.proto.v1.Vault;
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

/** Vaults in PostgreSQL; deleting one deletes its credentials in the same transaction. */
@ApplicationScoped
class VaultRepository {

  /** Vaults one tenant may hold. */
  static final int MAX_PER_TENANT = 100;

  private static final String COLUMNS = "id, tenant_id, created_at, updated_at, archived_at, info";

  static final String INSERT =
      "INSERT INTO vaults (id, tenant_id, info) SELECT $1, $2, $3"
          + " WHERE (SELECT count(*) FROM vaults WHERE tenant_id = $2) < $4 RETURNING "
          + COLUMNS;

  static final String SELECT =
      "SELECT " + COLUMNS + " FROM vaults WHERE id = $1 AND tenant_id = $2";

  static final String LOCK = SELECT + " FOR UPDATE";

  static final Paging.Listing LIST =
      Paging.listing(
          "SELECT "
              + COLUMNS
              + """
           FROM vaults
          WHERE tenant_id = $1 AND ($2::text IS NULL OR id < $2) AND ($3 OR archived_at IS NULL)
          ORDER BY id DESC
          LIMIT $4
          """);

  static final String UPDATE =
      "UPDATE vaults SET info = $3, updated_at = clock_timestamp()"
          + " WHERE id = $1 AND tenant_id = $2 RETURNING "
          + COLUMNS;

  static final String ARCHIVE =
      """
      UPDATE vaults
      SET archived_at = coalesce(archived_at, clock_timestamp()),
          updated_at = CASE WHEN archived_at IS NULL THEN clock_timestamp() ELSE updated_at END
      WHERE id = $1 AND tenant_id = $2
      RETURNING
      """
          + COLUMNS;

  static final String DELETE_CREDENTIALS =
      "DELETE FROM credentials WHERE vault_id = $1 AND tenant_id = $2";

  static final String DELETE = "DELETE FROM vaults WHERE id = $1 AND tenant_id = $2";

  /** Which of the ids are vaults of the tenant, and whether each is archived. */
  static final String ARCHIVED_OF =
      "SELECT id, archived_at IS NOT NULL AS archived FROM vaults"
          + " WHERE tenant_id = $1 AND id = ANY ($2)";

  private final Pool pool;

  private final TenantLimits limits;

  VaultRepository(Pool pool, TenantLimits limits) {
    this.pool = pool;
    this.limits = limits;
  }

  Uni<Vault> insert(Tenant tenant, Vault vault) {
    return limits
        .insert(
            "vaults",
            tenant.id(),
            connection ->
                connection
                    .preparedQuery(INSERT)
                    .execute(
                        Tuple.of(
                            vault.getId(),
                            tenant.id(),
                            Buffer.buffer(vault.toByteArray()),
                            MAX_PER_TENANT)))
        .map(
            rows -> {
              if (rows.size() == 0) {
                throw new ResourceExhaustedException(
                    "tenant "
                        + tenant.id()
                        + " holds "
                        + MAX_PER_TENANT
                        + " vaults, the most it may; delete one first");
              }
              return fromRow(rows.iterator().next());
            });
  }

  Uni<Vault> find(Tenant tenant, String id) {
    return pool.preparedQuery(SELECT)
        .execute(Tuple.of(id, tenant.id()))
        .map(rows -> single(rows, id));
  }

  Uni<List<Vault>> list(Tenant tenant, String beforeId, boolean includeArchived, int limit) {
    return pool.preparedQuery(LIST.after(beforeId))
        .execute(Tuple.of(tenant.id(), beforeId, includeArchived, limit))
        .map(
            rows -> {
              List<Vault> vaults = new ArrayList<>(rows.size());
              rows.forEach(row -> vaults.add(fromRow(row)));
              return vaults;
            });
  }

  /**
   * Applies {@code change} to the vault under its row lock; a change that changes nothing writes
   * nothing (its {@code updated_at} stays).
   */
  Uni<Vault> update(Tenant tenant, String id, UnaryOperator<Vault> change) {
    return pool.withTransaction(
        connection ->
            connection
                .preparedQuery(LOCK)
                .execute(Tuple.of(id, tenant.id()))
                .map(rows -> single(rows, id))
                .flatMap(
                    stored -> {
                      Vault changed = change.apply(stored);
                      if (changed.equals(stored)) {
                        return Uni.createFrom().item(stored);
                      }
                      return connection
                          .preparedQuery(UPDATE)
                          .execute(Tuple.of(id, tenant.id(), Buffer.buffer(changed.toByteArray())))
                          .map(rows -> single(rows, id));
                    }));
  }

  Uni<Vault> archive(Tenant tenant, String id) {
    return pool.preparedQuery(ARCHIVE)
        .execute(Tuple.of(id, tenant.id()))
        .map(rows -> single(rows, id));
  }

  /**
   * Deletes the vault and its credentials. The vault's row is locked first, so that a credential
   * being created in it (which holds the row shared) is either in before the delete, and deleted
   * with the rest, or finds the vault gone.
   */
  Uni<Void> delete(Tenant tenant, String id) {
    return pool.withTransaction(
        connection ->
            connection
                .preparedQuery(LOCK)
                .execute(Tuple.of(id, tenant.id()))
                .flatMap(
                    locked ->
                        connection
                            .preparedQuery(DELETE_CREDENTIALS)
                            .execute(Tuple.of(id, tenant.id())))
                .flatMap(
                    ignored -> connection.preparedQuery(DELETE).execute(Tuple.of(id, tenant.id())))
                .map(
                    rows -> {
                      if (rows.rowCount() == 0) {
                        throw new NotFoundException("vault", id);
                      }
                      return null;
                    }));
  }

  /**
   * Completes if every one of {@code ids} is a vault of {@code tenant} that is not archived; fails
   * with NOT_FOUND for one that is not the tenant's, FAILED_PRECONDITION for an archived one.
   */
  Uni<Void> requireUsable(Tenant tenant, List<String> ids) {
    return pool.preparedQuery(ARCHIVED_OF)
        .execute(Tuple.of(tenant.id(), ids.toArray(new String[0])))
        .map(
            rows -> {
              java.util.Map<String, Boolean> archived = new java.util.HashMap<>();
              rows.forEach(row -> archived.put(row.getString("id"), row.getBoolean("archived")));
              for (String id : ids) {
                if (!archived.containsKey(id)) {
                  throw new NotFoundException("vault", id);
                }
                if (archived.get(id)) {
                  throw new dev.corral.common.FailedPreconditionException(
                      "vault " + id + " is archived; it takes no new credentials or sessions");
                }
              }
              return null;
            });
  }

  private static Vault single(RowSet<Row> rows, String id) {
    if (rows.size() == 0) {
      throw new NotFoundException("vault", id);
    }
    return fromRow(rows.iterator().next());
  }

  private static Vault fromRow(Row row) {
    Vault.Builder vault;
    try {
      vault = Vault.parseFrom(row.getBuffer("info").getBytes()).toBuilder();
    } catch (InvalidProtocolBufferException e) {
      throw new IllegalStateException("vault " + row.getString("id") + " has a corrupt record", e);
    }
    vault
        .setId(row.getString("id"))
        .setTenantId(row.getString("tenant_id"))
        .setCreatedAt(ProtoTime.of(row.getOffsetDateTime("created_at")))
        .setUpdatedAt(ProtoTime.of(row.getOffsetDateTime("updated_at")));
    OffsetDateTime archived = row.getOffsetDateTime("archived_at");
    if (archived != null) {
      vault.setArchivedAt(ProtoTime.of(archived));
    } else {
      vault.clearArchivedAt();
    }
    return vault.build();
  }
}
