package dev.corral.session;

import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.Message;
import com.google.protobuf.Parser;
import dev.corral.common.NotFoundException;
import dev.corral.common.Page;
import dev.corral.common.Paging;
import dev.corral.common.ProtoTime;
import dev.corral.common.Tenant;
import dev.corral.proto.v1.Agent;
import dev.corral.proto.v1.Lease;
import dev.corral.proto.v1.Session;
import dev.corral.proto.v1.SessionBudget;
import dev.corral.proto.v1.SessionStatus;
import dev.corral.proto.v1.SessionUsage;
import dev.corral.proto.v1.StopReason;
import io.smallrye.mutiny.Uni;
import io.vertx.core.json.JsonObject;
import io.vertx.mutiny.core.buffer.Buffer;
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
import java.util.Map;

/** Session rows (the head of each log) in PostgreSQL. Events are {@link EventLog}'s. */
@ApplicationScoped
public class SessionRepository {

  private static final String COLUMNS =
      """
      id, status, last_seq, lease_holder, lease_epoch, lease_expires_at, input_tokens, output_tokens,
      cache_creation_input_tokens, cache_read_input_tokens, created_at, updated_at, archived_at, title,
      metadata, stop_reason, agent_snapshot, budget_max_tokens, budget_max_model_requests,
      environment_id, tenant_id, resources, vault_ids
      """;

  static final String INSERT =
      """
      INSERT INTO sessions (id, agent_id, agent_version, title, metadata, agent_snapshot,
                            budget_max_tokens, budget_max_model_requests, environment_id, tenant_id,
                            resources, vault_ids)
      VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
      """;

  static final String SELECT =
      "SELECT " + COLUMNS + " FROM sessions WHERE id = $1 AND tenant_id = $2";

  /** A session whatever its tenant: for the harness and the sandboxes of a session it works. */
  static final String SELECT_ANY_TENANT = "SELECT " + COLUMNS + " FROM sessions WHERE id = $1";

  static final Paging.Listing LIST =
      Paging.listing(
          Page.bounded(
              "SELECT "
                  + COLUMNS
                  + """
               FROM sessions
              WHERE tenant_id = $6
                AND ($1::text IS NULL OR id < $1)
                AND ($2::text IS NULL OR agent_id = $2)
                AND ($3::text[] IS NULL OR status = ANY ($3))
                AND ($4 OR archived_at IS NULL)
              ORDER BY id DESC
              LIMIT $5
              """,
              "octet_length(agent_snapshot)",
              "ORDER BY id DESC"));

  static final String ARCHIVE =
      """
      UPDATE sessions
      SET archived_at = clock_timestamp(), updated_at = clock_timestamp()
      WHERE id = $1 AND tenant_id = $2 AND archived_at IS NULL
      RETURNING id
      """;

  static final String DELETE = "DELETE FROM sessions WHERE id = $1 AND tenant_id = $2";

  /**
   * A session's log, deleted before its row so that the row's lock is held only at the end: an
   * append of another session batched with one of this session waits for that lock, and a long log
   * took as long to delete as the whole statement may run. Events appended meanwhile go with the
   * row ({@code ON DELETE CASCADE}).
   */
  static final String DELETE_LOG =
      "DELETE FROM events WHERE session_id = $1"
          + " AND EXISTS (SELECT 1 FROM sessions WHERE id = $1 AND tenant_id = $2)";

  static final String DELETE_TIMEOUT = "SET LOCAL statement_timeout = '15min'";

  static final String LOCK_RESOURCES =
      "SELECT archived_at IS NOT NULL AS archived, status, resources FROM sessions"
          + " WHERE id = $1 AND tenant_id = $2 FOR UPDATE";

  static final String SET_RESOURCES =
      "UPDATE sessions SET resources = $3, updated_at = clock_timestamp()"
          + " WHERE id = $1 AND tenant_id = $2";

  private final Pool pool;

  SessionRepository(Pool pool) {
    this.pool = pool;
  }

  Uni<Void> insert(
      SqlClient client,
      Tenant tenant,
      String id,
      Agent agent,
      String title,
      Map<String, String> metadata,
      SessionBudget budget,
      String environmentId,
      List<dev.corral.proto.v1.SessionResource> resources,
      List<String> vaultIds) {
    return client
        .preparedQuery(INSERT)
        .execute(
            Tuple.from(
                Arrays.asList(
                    id,
                    agent.getId(),
                    agent.getVersion(),
                    title,
                    new JsonObject(Map.copyOf(metadata)),
                    io.vertx.core.buffer.Buffer.buffer(agent.toByteArray()),
                    budget.getMaxTokens() == 0 ? null : budget.getMaxTokens(),
                    budget.getMaxModelRequests() == 0 ? null : budget.getMaxModelRequests(),
                    environmentId.isEmpty() ? null : environmentId,
                    tenant.id(),
                    resources.isEmpty() ? null : resourcesColumn(resources),
                    vaultIds.toArray(new String[0]))))
        .replaceWithVoid();
  }

  Uni<Session> find(Tenant tenant, String id) {
    return find(pool, tenant, id);
  }

  Uni<Session> find(SqlClient client, Tenant tenant, String id) {
    return client
        .preparedQuery(SELECT)
        .execute(Tuple.of(id, tenant.id()))
        .map(rows -> single(rows, id));
  }

  /** The session {@code id} whatever its tenant (never for a client's request). */
  Uni<Session> findAnyTenant(String id) {
    return pool.preparedQuery(SELECT_ANY_TENANT)
        .execute(Tuple.of(id))
        .map(rows -> single(rows, id));
  }

  Uni<List<Session>> list(
      Tenant tenant,
      String beforeId,
      String agentId,
      List<String> statuses,
      boolean includeArchived,
      int limit) {
    String[] statusFilter = statuses.isEmpty() ? null : statuses.toArray(String[]::new);
    return pool.preparedQuery(LIST.after(beforeId))
        .execute(
            Tuple.from(
                Arrays.asList(
                    beforeId, agentId, statusFilter, includeArchived, limit, tenant.id())))
        .map(
            rows -> {
              List<Session> sessions = new ArrayList<>(rows.size());
              rows.forEach(row -> sessions.add(fromRow(row)));
              return sessions;
            });
  }

  Uni<Session> archive(Tenant tenant, String id) {
    // No row: archived meanwhile (left as it is) or deleted (the find says NOT_FOUND)
    return pool.preparedQuery(ARCHIVE)
        .execute(Tuple.of(id, tenant.id()))
        .flatMap(rows -> find(tenant, id));
  }

  /**
   * Deletes the session and its log, in one transaction; fails with {@link NotFoundException} if
   * there is none. The log goes first ({@link #DELETE_LOG}); a long log may take longer than the
   * pool's statement timeout, so these statements get {@link #DELETE_TIMEOUT} instead.
   */
  Uni<Void> delete(Tenant tenant, String id) {
    return pool.withTransaction(
        connection ->
            connection
                .query(DELETE_TIMEOUT)
                .execute()
                .flatMap(
                    ignored ->
                        connection.preparedQuery(DELETE_LOG).execute(Tuple.of(id, tenant.id())))
                .flatMap(
                    ignored -> connection.preparedQuery(DELETE).execute(Tuple.of(id, tenant.id())))
                .flatMap(
                    rows -> {
                      if (rows.rowCount() == 0) {
                        return Uni.createFrom().failure(new NotFoundException("session", id));
                      }
                      return connection
                          .preparedQuery(dev.corral.db.TenantLimits.SESSION_DELETED)
                          .execute(Tuple.of(tenant.id()))
                          .replaceWithVoid();
                    }));
  }

  /**
   * Runs {@code change} on the session's resources under its row lock and stores the result; for a
   * session that is neither archived nor terminated unless {@code closedToo}.
   */
  <T> Uni<T> changeResources(
      Tenant tenant,
      String id,
      boolean closedToo,
      java.util.function.Function<List<dev.corral.proto.v1.SessionResource>, ResourceChange<T>>
          change) {
    return pool.withTransaction(
        connection ->
            connection
                .preparedQuery(LOCK_RESOURCES)
                .execute(Tuple.of(id, tenant.id()))
                .flatMap(
                    rows -> {
                      if (rows.size() == 0) {
                        return Uni.createFrom().failure(new NotFoundException("session", id));
                      }
                      Row row = rows.iterator().next();
                      if (!closedToo
                          && (row.getBoolean("archived")
                              || "terminated".equals(row.getString("status")))) {
                        return Uni.createFrom()
                            .failure(
                                new SessionClosedException(
                                    id, row.getBoolean("archived") ? "archived" : "terminated"));
                      }
                      ResourceChange<T> changed = change.apply(resources(row));
                      return connection
                          .preparedQuery(SET_RESOURCES)
                          .execute(Tuple.of(id, tenant.id(), resourcesColumn(changed.resources())))
                          .replaceWith(changed.result());
                    }));
  }

  /** A session's resources after a change, and what the change returns. */
  record ResourceChange<T>(List<dev.corral.proto.v1.SessionResource> resources, T result) {}

  private static io.vertx.core.buffer.Buffer resourcesColumn(
      List<dev.corral.proto.v1.SessionResource> resources) {
    return io.vertx.core.buffer.Buffer.buffer(
        dev.corral.proto.v1.ListSessionResourcesResponse.newBuilder()
            .addAllResources(resources)
            .build()
            .toByteArray());
  }

  private static List<dev.corral.proto.v1.SessionResource> resources(Row row) {
    Buffer bytes = row.getBuffer("resources");
    return bytes == null
        ? List.of()
        : parse(dev.corral.proto.v1.ListSessionResourcesResponse.parser(), bytes)
            .getResourcesList();
  }

  private static Session single(RowSet<Row> rows, String id) {
    if (rows.size() == 0) {
      throw new NotFoundException("session", id);
    }
    return fromRow(rows.iterator().next());
  }

  static Session fromRow(Row row) {
    Session.Builder session =
        Session.newBuilder()
            .setId(row.getString("id"))
            .setTenantId(row.getString("tenant_id"))
            .setAgent(parse(Agent.parser(), row.getBuffer("agent_snapshot")))
            .setStatus(status(row.getString("status")))
            .setLastSeq(row.getLong("last_seq"))
            .setUsage(
                SessionUsage.newBuilder()
                    .setInputTokens(row.getLong("input_tokens"))
                    .setOutputTokens(row.getLong("output_tokens"))
                    .setCacheCreationInputTokens(row.getLong("cache_creation_input_tokens"))
                    .setCacheReadInputTokens(row.getLong("cache_read_input_tokens")))
            .setTitle(row.getString("title"))
            .setCreatedAt(ProtoTime.of(row.getOffsetDateTime("created_at")))
            .setUpdatedAt(ProtoTime.of(row.getOffsetDateTime("updated_at")));
    JsonObject metadata = row.getJsonObject("metadata");
    metadata.forEach(
        entry -> session.putMetadata(entry.getKey(), String.valueOf(entry.getValue())));
    Buffer stopReason = row.getBuffer("stop_reason");
    if (stopReason != null) {
      session.setStopReason(parse(StopReason.parser(), stopReason));
    }
    OffsetDateTime archivedAt = row.getOffsetDateTime("archived_at");
    if (archivedAt != null) {
      session.setArchivedAt(ProtoTime.of(archivedAt));
    }
    if (row.getString("environment_id") != null) {
      session.setEnvironmentId(row.getString("environment_id"));
    }
    session.addAllResources(resources(row));
    String[] vaultIds = row.getArrayOfStrings("vault_ids");
    if (vaultIds != null) {
      session.addAllVaultIds(java.util.Arrays.asList(vaultIds));
    }
    Long maxTokens = row.getLong("budget_max_tokens");
    Integer maxModelRequests = row.getInteger("budget_max_model_requests");
    if (maxTokens != null || maxModelRequests != null) {
      session.setBudget(
          SessionBudget.newBuilder()
              .setMaxTokens(maxTokens == null ? 0 : maxTokens)
              .setMaxModelRequests(maxModelRequests == null ? 0 : maxModelRequests));
    }
    if (row.getLong("lease_epoch") > 0) {
      Lease.Builder lease = Lease.newBuilder().setEpoch(row.getLong("lease_epoch"));
      if (row.getString("lease_holder") != null) {
        lease.setHolder(row.getString("lease_holder"));
      }
      OffsetDateTime expiresAt = row.getOffsetDateTime("lease_expires_at");
      if (expiresAt != null) {
        lease.setExpiresAt(ProtoTime.of(expiresAt));
      }
      session.setLease(lease);
    }
    return session.build();
  }

  static SessionStatus status(String column) {
    return switch (column) {
      case "idle" -> SessionStatus.SESSION_STATUS_IDLE;
      case "running" -> SessionStatus.SESSION_STATUS_RUNNING;
      case "rescheduling" -> SessionStatus.SESSION_STATUS_RESCHEDULING;
      case "terminated" -> SessionStatus.SESSION_STATUS_TERMINATED;
      default -> throw new IllegalStateException("unknown session status " + column);
    };
  }

  static String column(SessionStatus status) {
    return switch (status) {
      case SESSION_STATUS_IDLE -> "idle";
      case SESSION_STATUS_RUNNING -> "running";
      case SESSION_STATUS_RESCHEDULING -> "rescheduling";
      case SESSION_STATUS_TERMINATED -> "terminated";
      default -> throw new IllegalArgumentException("no column value for " + status);
    };
  }

  private static <T extends Message> T parse(Parser<T> parser, Buffer bytes) {
    try {
      return parser.parseFrom(bytes.getBytes());
    } catch (InvalidProtocolBufferException e) {
      throw new IllegalStateException("stored session data is not readable", e);
    }
  }
}
