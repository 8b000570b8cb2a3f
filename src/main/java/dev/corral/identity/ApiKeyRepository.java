package dev.corral.identity;

import dev.corral.common.NotFoundException;
import dev.corral.common.Paging;
import dev.corral.common.ProtoTime;
import dev.corral.common.Tenant;
import dev.corral.proto.v1.ApiKey;
import io.smallrye.mutiny.Uni;
import io.vertx.core.buffer.Buffer;
import io.vertx.mutiny.sqlclient.Pool;
import io.vertx.mutiny.sqlclient.Row;
import io.vertx.mutiny.sqlclient.RowSet;
import io.vertx.mutiny.sqlclient.SqlClient;
import io.vertx.mutiny.sqlclient.Tuple;
import jakarta.enterprise.context.ApplicationScoped;
import java.time.OffsetDateTime;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;

/** API keys in PostgreSQL: their hashes and records, never the keys. */
@ApplicationScoped
public class ApiKeyRepository {

  private static final String COLUMNS =
      "id, tenant_id, name, role, prefix, created_by, created_at, last_used_at, revoked_at";

  static final String INSERT =
      "INSERT INTO api_keys (id, tenant_id, secret_hash, name, role, prefix, created_by, bootstrap)"
          + " VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING "
          + COLUMNS;

  /**
   * The live key with this hash, with its tenant's state; records the use. A revoked key and an
   * unknown one both return nothing.
   */
  static final String AUTHENTICATE =
      """
      UPDATE api_keys k SET last_used_at = clock_timestamp()
      FROM tenants t
      WHERE k.secret_hash = $1 AND k.revoked_at IS NULL AND t.id = k.tenant_id
      RETURNING k.id, k.tenant_id, k.role, t.disabled_at IS NOT NULL AS tenant_disabled
      """;

  static final String SELECT =
      "SELECT " + COLUMNS + " FROM api_keys WHERE tenant_id = $1 AND id = $2";

  static final Paging.Listing LIST =
      Paging.listing(
          "SELECT "
              + COLUMNS
              + """
           FROM api_keys
          WHERE tenant_id = $1 AND ($2::text IS NULL OR id < $2) AND ($3 OR revoked_at IS NULL)
          ORDER BY id DESC
          LIMIT $4
          """);

  /** Revokes a key that is live: no row for a key revoked already (or unknown). */
  static final String REVOKE =
      "UPDATE api_keys SET revoked_at = clock_timestamp()"
          + " WHERE tenant_id = $1 AND id = $2 AND revoked_at IS NULL RETURNING "
          + COLUMNS;

  /** Whether any key was ever made (the first start makes the admin key only if none was). */
  static final String ANY = "SELECT EXISTS (SELECT 1 FROM api_keys) AS any";

  /** Serializes the first-start check across replicas starting together. */
  static final String BOOTSTRAP_LOCK = "SELECT pg_advisory_xact_lock(hashtext('corral-bootstrap'))";

  static final String BY_HASH = "SELECT " + COLUMNS + " FROM api_keys WHERE secret_hash = $1";

  private final Pool pool;

  ApiKeyRepository(Pool pool) {
    this.pool = pool;
  }

  /** A key that authenticates: its id, tenant and role, and whether its tenant is disabled. */
  record Live(String id, Tenant tenant, Role role, boolean tenantDisabled) {}

  Uni<ApiKey> insert(
      SqlClient client,
      String id,
      Tenant tenant,
      ApiKeySecret secret,
      String name,
      Role role,
      String createdBy,
      boolean bootstrap) {
    return client
        .preparedQuery(INSERT)
        .execute(
            Tuple.from(
                Arrays.asList(
                    id,
                    tenant.id(),
                    Buffer.buffer(secret.hash()),
                    name,
                    role.wireName(),
                    secret.shownPrefix(),
                    createdBy,
                    bootstrap)))
        .map(rows -> fromRow(rows.iterator().next()));
  }

  Uni<Optional<Live>> authenticate(byte[] hash) {
    return pool.preparedQuery(AUTHENTICATE)
        .execute(Tuple.of(Buffer.buffer(hash)))
        .map(
            rows -> {
              if (rows.size() == 0) {
                return Optional.empty();
              }
              Row row = rows.iterator().next();
              return Optional.of(
                  new Live(
                      row.getString("id"),
                      new Tenant(row.getString("tenant_id")),
                      Role.fromWireName(row.getString("role")).orElseThrow(),
                      row.getBoolean("tenant_disabled")));
            });
  }

  /** The key with this hash, live or revoked, if any (without recording a use). */
  Uni<Optional<ApiKey>> findByHash(SqlClient client, byte[] hash) {
    return client
        .preparedQuery(BY_HASH)
        .execute(Tuple.of(Buffer.buffer(hash)))
        .map(
            rows ->
                rows.size() == 0
                    ? Optional.<ApiKey>empty()
                    : Optional.of(fromRow(rows.iterator().next())));
  }

  Uni<ApiKey> find(Tenant tenant, String id) {
    return pool.preparedQuery(SELECT)
        .execute(Tuple.of(tenant.id(), id))
        .map(rows -> single(rows, id));
  }

  Uni<List<ApiKey>> list(Tenant tenant, String beforeId, boolean includeRevoked, int limit) {
    return pool.preparedQuery(LIST.after(beforeId))
        .execute(Tuple.of(tenant.id(), beforeId, includeRevoked, limit))
        .map(
            rows -> {
              List<ApiKey> keys = new ArrayList<>(rows.size());
              rows.forEach(row -> keys.add(fromRow(row)));
              return keys;
            });
  }

  /** The key, revoked by this call; empty if it was revoked already or is unknown. */
  Uni<java.util.Optional<ApiKey>> revoke(Tenant tenant, String id) {
    return pool.preparedQuery(REVOKE)
        .execute(Tuple.of(tenant.id(), id))
        .map(
            rows ->
                rows.size() == 0
                    ? java.util.Optional.<ApiKey>empty()
                    : java.util.Optional.of(single(rows, id)));
  }

  /** Runs {@code work} in a transaction that holds the first-start lock. */
  <T> Uni<T> underBootstrapLock(java.util.function.Function<SqlClient, Uni<T>> work) {
    return pool.withTransaction(
        connection ->
            connection.query(BOOTSTRAP_LOCK).execute().flatMap(ignored -> work.apply(connection)));
  }

  Uni<Boolean> anyKey(SqlClient client) {
    return client.query(ANY).execute().map(rows -> rows.iterator().next().getBoolean("any"));
  }

  private static ApiKey single(RowSet<Row> rows, String id) {
    if (rows.size() == 0) {
      throw new NotFoundException("api key", id);
    }
    return fromRow(rows.iterator().next());
  }

  static ApiKey fromRow(Row row) {
    ApiKey.Builder key =
        ApiKey.newBuilder()
            .setId(row.getString("id"))
            .setTenantId(row.getString("tenant_id"))
            .setName(row.getString("name"))
            .setRole(Roles.toProto(Role.fromWireName(row.getString("role")).orElseThrow()))
            .setPrefix(row.getString("prefix"))
            .setCreatedBy(row.getString("created_by"))
            .setCreatedAt(ProtoTime.of(row.getOffsetDateTime("created_at")));
    OffsetDateTime lastUsed = row.getOffsetDateTime("last_used_at");
    if (lastUsed != null) {
      key.setLastUsedAt(ProtoTime.of(lastUsed));
    }
    OffsetDateTime revoked = row.getOffsetDateTime("revoked_at");
    if (revoked != null) {
      key.setRevokedAt(ProtoTime.of(revoked));
    }
    return key.build();
  }
}
