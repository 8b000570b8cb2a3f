package dev.corral.vault;

import com.google.protobuf.InvalidProtocolBufferException;
import dev.corral.common.AlreadyExistsException;
import dev.corral.common.NotFoundException;
import dev.corral.common.Paging;
import dev.corral.common.ProtoTime;
import dev.corral.common.ResourceExhaustedException;
import dev.corral.common.Tenant;
import dev.corral.db.TenantLimits;
import dev.corral.proto.v1.Credential;
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
import java.util.function.Function;

/** Credentials in PostgreSQL: their public part, and their secrets only sealed. */
@ApplicationScoped
public class CredentialRepository {

  /** Credentials one tenant may hold. */
  static final int MAX_PER_TENANT = 500;

  /** Credentials one vault may hold (as Claude Managed Agents' vaults). */
  static final int MAX_PER_VAULT = 20;

  private static final String COLUMNS =
      "id, tenant_id, kind, created_at, updated_at, rotated_at, last_used_at, key_id, info";

  private static final String SEALED = COLUMNS + ", wrapped_key, secret";

  /**
   * Inserts unless the tenant already holds {@link #MAX_PER_TENANT}, or its vault ({@code $9}, if
   * any) is gone or archived; the vault's row is held shared until commit, so that it is neither
   * deleted nor archived under the new credential.
   */
  static final String INSERT =
      "INSERT INTO credentials (id, tenant_id, kind, key_id, wrapped_key, secret, info, vault_id)"
          + " SELECT $1, $2, $3, $4, $5, $6, $7, $9"
          + " WHERE (SELECT count(*) FROM credentials WHERE tenant_id = $2) < $8"
          + " AND ($9::text IS NULL OR EXISTS (SELECT 1 FROM vaults"
          + " WHERE id = $9 AND tenant_id = $2 AND archived_at IS NULL FOR SHARE))"
          + " RETURNING "
          + COLUMNS;

  /**
   * The credentials a vault holds ($1 the tenant, $2 the vault): read under the tenant's insert
   * lock, so that no other insert of the tenant runs between this and the new credential's.
   */
  static final String IN_VAULT =
      "SELECT id, info FROM credentials WHERE tenant_id = $1 AND vault_id = $2 LIMIT "
          + (MAX_PER_VAULT + 1);

  /** One credential, and whether its vault is archived (then no session may use it). */
  static final String SELECT =
      "SELECT "
          + SEALED
          + ", EXISTS (SELECT 1 FROM vaults v WHERE v.id = credentials.vault_id"
          + " AND v.archived_at IS NOT NULL) AS vault_archived"
          + " FROM credentials WHERE id = $1 AND tenant_id = $2";

  static final String LOCK = SELECT + " FOR UPDATE";

  static final Paging.Listing LIST =
      Paging.listing(
          "SELECT "
              + COLUMNS
              + """
           FROM credentials
          WHERE tenant_id = $1 AND ($2::text IS NULL OR id < $2)
            AND ($4::text IS NULL OR vault_id = $4)
          ORDER BY id DESC
          LIMIT $3
          """);

  /** Credentials of usable vaults that an MCP server may be bound to, newest first. */
  static final String FOR_MCP =
      "SELECT "
          + COLUMNS
          + """
           FROM credentials
          WHERE tenant_id = $1 AND vault_id = ANY ($2) AND kind IN ('static_header', 'oauth2')
            AND vault_id IN (SELECT id FROM vaults WHERE tenant_id = $1 AND archived_at IS NULL)
          ORDER BY id DESC
          LIMIT 500
          """;

  static final String UPDATE =
      """
      UPDATE credentials
      SET info = $3, key_id = $4, wrapped_key = $5, secret = $6, updated_at = clock_timestamp(),
          rotated_at = CASE WHEN $7 THEN clock_timestamp() ELSE rotated_at END
      WHERE id = $1 AND tenant_id = $2
      RETURNING
      """
          + COLUMNS;

  static final String DELETE = "DELETE FROM credentials WHERE id = $1 AND tenant_id = $2";

  static final String USED =
      "UPDATE credentials SET last_used_at = clock_timestamp() WHERE id = $1 AND tenant_id = $2";

  /**
   * Data keys wrapped by another key than the active one (for re-wrapping), a batch at a time. A
   * row that another transaction holds (a change of its name, a refresh) is waited for, not
   * skipped: a skipped row would stay under the old key while the re-wrap said it was done.
   */
  static final String NOT_UNDER =
      "SELECT " + SEALED + " FROM credentials WHERE key_id <> $1 ORDER BY id LIMIT $2 FOR UPDATE";

  static final String REWRAP =
      "UPDATE credentials SET key_id = $2, wrapped_key = $3 WHERE id = $1 AND key_id = $4";

  private final Pool pool;

  private final TenantLimits limits;

  CredentialRepository(Pool pool, TenantLimits limits) {
    this.pool = pool;
    this.limits = limits;
  }

  /**
   * A credential row: its public record, its sealed secret, and whether its vault is archived
   * (false where the statement did not ask).
   */
  record Stored(Credential credential, Envelope.Box box, boolean vaultArchived) {}

  /**
   * Inserts the credential; empty if the tenant holds {@link #MAX_PER_TENANT} already, or its vault
   * is gone or archived. In a vault, fails if the vault holds {@link #MAX_PER_VAULT} already, or
   * one for the same MCP server ({@code mcpServerUrl}, normalized; null for none).
   */
  Uni<Optional<Credential>> insert(
      Tenant tenant,
      String id,
      String kind,
      Credential info,
      Envelope.Box box,
      Function<Credential, String> mcpServerUrl) {
    String vaultId = info.getVaultId().isEmpty() ? null : info.getVaultId();
    Tuple values =
        Tuple.from(
            Arrays.asList(
                id,
                tenant.id(),
                kind,
                box.keyId(),
                Buffer.buffer(box.wrappedKey()),
                Buffer.buffer(box.secret()),
                Buffer.buffer(info.toByteArray()),
                MAX_PER_TENANT,
                vaultId));
    return limits
        .insert(
            "credentials",
            tenant.id(),
            connection ->
                vaultId == null
                    ? connection.preparedQuery(INSERT).execute(values)
                    : connection
                        .preparedQuery(IN_VAULT)
                        .execute(Tuple.of(tenant.id(), vaultId))
                        .invoke(held -> requireRoom(vaultId, info, held, mcpServerUrl))
                        .flatMap(room -> connection.preparedQuery(INSERT).execute(values)))
        .map(
            rows ->
                rows.size() == 0
                    ? Optional.<Credential>empty()
                    : Optional.of(fromRow(rows.iterator().next())));
  }

  /** Throws unless {@code vaultId}, which holds {@code held}, may take {@code next}. */
  private static void requireRoom(
      String vaultId,
      Credential next,
      RowSet<Row> held,
      Function<Credential, String> mcpServerUrl) {
    String url = mcpServerUrl.apply(next);
    for (Row row : held) {
      if (url != null && url.equals(mcpServerUrl.apply(info(row)))) {
        throw new AlreadyExistsException(
            "vault "
                + vaultId
                + " already holds credential "
                + row.getString("id")
                + " for MCP server "
                + url
                + "; a vault holds one credential per MCP server: delete that one, or update its"
                + " secret");
      }
    }
    if (held.size() >= MAX_PER_VAULT) {
      throw new ResourceExhaustedException(
          "vault "
              + vaultId
              + " holds "
              + MAX_PER_VAULT
              + " credentials, the most one vault may; delete one first");
    }
  }

  Uni<Stored> find(Tenant tenant, String id) {
    return find(pool, SELECT, tenant, id);
  }

  Uni<List<Credential>> list(Tenant tenant, String beforeId, int limit, String vaultId) {
    return pool.preparedQuery(LIST.after(beforeId))
        .execute(Tuple.of(tenant.id(), beforeId, limit, vaultId))
        .map(
            rows -> {
              List<Credential> credentials = new ArrayList<>(rows.size());
              rows.forEach(row -> credentials.add(fromRow(row)));
              return credentials;
            });
  }

  /** The MCP credentials of the tenant's usable vaults among {@code vaultIds}, newest first. */
  Uni<List<Credential>> forMcp(Tenant tenant, List<String> vaultIds) {
    return pool.preparedQuery(FOR_MCP)
        .execute(Tuple.of(tenant.id(), vaultIds.toArray(new String[0])))
        .map(
            rows -> {
              List<Credential> credentials = new ArrayList<>(rows.size());
              rows.forEach(row -> credentials.add(fromRow(row)));
              return credentials;
            });
  }

  /**
   * Runs {@code change} on the credential under its row lock and stores what it returns, in one
   * transaction (so that two replicas refreshing one OAuth token do not both spend its refresh
   * token).
   */
  <T> Uni<T> underLock(Tenant tenant, String id, Function<Stored, Uni<Change<T>>> change) {
    return pool.withTransaction(
        connection ->
            find(connection, LOCK, tenant, id)
                .flatMap(
                    stored ->
                        change
                            .apply(stored)
                            .flatMap(
                                decided ->
                                    decided.update() == null
                                        ? Uni.createFrom()
                                            .item(decided.result().apply(stored.credential()))
                                        : store(connection, tenant, id, decided.update())
                                            .map(decided.result()))));
  }

  /**
   * What {@link #underLock} stores (null: nothing), and what it returns given the credential as
   * stored.
   */
  record Change<T>(Update update, Function<Credential, T> result) {}

  /** A credential's new public record and sealed secret. */
  record Update(Credential info, Envelope.Box box, boolean rotated) {}

  Uni<Credential> update(Tenant tenant, String id, Update update) {
    return store(pool, tenant, id, update);
  }

  private Uni<Credential> store(SqlClient client, Tenant tenant, String id, Update update) {
    return client
        .preparedQuery(UPDATE)
        .execute(
            Tuple.from(
                Arrays.asList(
                    id,
                    tenant.id(),
                    Buffer.buffer(update.info().toByteArray()),
                    update.box().keyId(),
                    Buffer.buffer(update.box().wrappedKey()),
                    Buffer.buffer(update.box().secret()),
                    update.rotated())))
        .map(rows -> single(rows, id).credential());
  }

  Uni<Void> delete(Tenant tenant, String id) {
    return pool.preparedQuery(DELETE)
        .execute(Tuple.of(id, tenant.id()))
        .map(
            rows -> {
              if (rows.rowCount() == 0) {
                throw new NotFoundException("credential", id);
              }
              return null;
            });
  }

  Uni<Void> used(Tenant tenant, String id) {
    return pool.preparedQuery(USED).execute(Tuple.of(id, tenant.id())).replaceWithVoid();
  }

  /**
   * Re-wraps, in one transaction, up to {@code batch} data keys not under {@code activeKeyId}, with
   * {@code rewrap}; returns how many.
   */
  Uni<Integer> rewrapBatch(
      String activeKeyId,
      int batch,
      java.util.function.BiFunction<String, Envelope.Box, Envelope.Box> rewrap) {
    return pool.withTransaction(
        connection ->
            connection
                .preparedQuery(NOT_UNDER)
                .execute(Tuple.of(activeKeyId, batch))
                .flatMap(
                    rows -> {
                      List<Uni<Void>> updates = new ArrayList<>();
                      for (Row row : rows) {
                        Stored stored = storedFromRow(row);
                        Envelope.Box rewrapped =
                            rewrap.apply(stored.credential().getId(), stored.box());
                        updates.add(
                            connection
                                .preparedQuery(REWRAP)
                                .execute(
                                    Tuple.of(
                                        stored.credential().getId(),
                                        rewrapped.keyId(),
                                        Buffer.buffer(rewrapped.wrappedKey()),
                                        stored.box().keyId()))
                                .replaceWithVoid());
                      }
                      int count = rows.size();
                      return updates.isEmpty()
                          ? Uni.createFrom().item(0)
                          : Uni.join().all(updates).andFailFast().replaceWith(count);
                    }));
  }

  private static Uni<Stored> find(SqlClient client, String query, Tenant tenant, String id) {
    return client
        .preparedQuery(query)
        .execute(Tuple.of(id, tenant.id()))
        .map(rows -> single(rows, id));
  }

  private static Stored single(RowSet<Row> rows, String id) {
    if (rows.size() == 0) {
      throw new NotFoundException("credential", id);
    }
    return storedFromRow(rows.iterator().next());
  }

  private static Stored storedFromRow(Row row) {
    io.vertx.mutiny.core.buffer.Buffer wrapped =
        row.getColumnIndex("wrapped_key") < 0 ? null : row.getBuffer("wrapped_key");
    Envelope.Box box =
        wrapped == null
            ? null
            : new Envelope.Box(
                row.getString("key_id"), wrapped.getBytes(), row.getBuffer("secret").getBytes());
    boolean vaultArchived =
        row.getColumnIndex("vault_archived") >= 0 && row.getBoolean("vault_archived");
    return new Stored(fromRow(row), box, vaultArchived);
  }

  /** A row's {@code info}: its public record, without the columns' fields. */
  private static Credential info(Row row) {
    try {
      return Credential.parseFrom(row.getBuffer("info").getBytes());
    } catch (InvalidProtocolBufferException e) {
      throw new IllegalStateException(
          "stored credential " + row.getString("id") + " is not readable", e);
    }
  }

  static Credential fromRow(Row row) {
    Credential.Builder credential = info(row).toBuilder();
    credential
        .setId(row.getString("id"))
        .setTenantId(row.getString("tenant_id"))
        .setKeyId(row.getString("key_id"))
        .setCreatedAt(ProtoTime.of(row.getOffsetDateTime("created_at")))
        .setRotatedAt(ProtoTime.of(row.getOffsetDateTime("rotated_at")));
    OffsetDateTime lastUsed = row.getOffsetDateTime("last_used_at");
    if (lastUsed != null) {
      credential.setLastUsedAt(ProtoTime.of(lastUsed));
    }
    return credential.build();
  }
}
