package dev.corral.agent;

import com.google.protobuf.InvalidProtocolBufferException;
import dev.corral.common.NotFoundException;
import dev.corral.common.Page;
import dev.corral.common.Paging;
import dev.corral.common.ProtoTime;
import dev.corral.common.ResourceExhaustedException;
import dev.corral.common.Tenant;
import dev.corral.db.TenantCaps;
import dev.corral.db.TenantLimits;
import dev.corral.proto.v1.Agent;
import io.smallrye.mutiny.Uni;
import io.vertx.mutiny.sqlclient.Pool;
import io.vertx.mutiny.sqlclient.Row;
import io.vertx.mutiny.sqlclient.RowSet;
import io.vertx.mutiny.sqlclient.SqlClient;
import io.vertx.mutiny.sqlclient.Tuple;
import jakarta.enterprise.context.ApplicationScoped;
import java.time.OffsetDateTime;
import java.util.ArrayList;
import java.util.List;

/** Agents and their immutable versions in PostgreSQL. */
@ApplicationScoped
public class AgentRepository {

  private static final String COLUMNS =
      "a.id, a.created_at, a.archived_at, v.version, v.created_at AS version_created_at, v.spec";

  static final String INSERT_AGENT =
      "INSERT INTO agents (id, tenant_id, latest_version) VALUES ($1, $2, 1)";

  static final String INSERT_VERSION =
      "INSERT INTO agent_versions (agent_id, version, spec) VALUES ($1, $2, $3)";

  static final String SELECT_VERSION =
      "SELECT "
          + COLUMNS
          + """
       FROM agents a
      LEFT JOIN agent_versions v ON v.agent_id = a.id AND v.version = coalesce($2, a.latest_version)
      WHERE a.id = $1 AND a.tenant_id = $3
      """;

  /**
   * Locks the agent's row alone: a lock taken in the join would, after waiting for a concurrent
   * update, re-check the join against the version row it first read and find none.
   */
  static final String LOCK = "SELECT 1 FROM agents WHERE id = $1 AND tenant_id = $2 FOR UPDATE";

  static final String SET_LATEST =
      "UPDATE agents SET latest_version = $2, updated_at = clock_timestamp() WHERE id = $1";

  static final Paging.Listing LIST =
      Paging.listing(
          Page.bounded(
              "SELECT "
                  + COLUMNS
                  + """
               FROM agents a
              JOIN agent_versions v ON v.agent_id = a.id AND v.version = a.latest_version
              WHERE a.tenant_id = $4 AND ($1::text IS NULL OR a.id < $1)
                AND ($2 OR a.archived_at IS NULL)
              ORDER BY a.id DESC
              LIMIT $3
              """,
              "octet_length(spec)",
              "ORDER BY id DESC"));

  static final Paging.Listing LIST_VERSIONS =
      Paging.listing(
          Page.bounded(
              "SELECT "
                  + COLUMNS
                  + """
               FROM agents a
              JOIN agent_versions v ON v.agent_id = a.id
              WHERE a.id = $1 AND a.tenant_id = $4 AND ($2::integer IS NULL OR v.version < $2)
              ORDER BY v.version DESC
              LIMIT $3
              """,
              "octet_length(spec)",
              "ORDER BY version DESC"));

  static final String ARCHIVE =
      "UPDATE agents SET archived_at = coalesce(archived_at, clock_timestamp())"
          + " WHERE id = $1 AND tenant_id = $2 RETURNING id";

  static final String EXISTS = "SELECT 1 FROM agents WHERE id = $1 AND tenant_id = $2";

  private final Pool pool;

  private final TenantCaps caps;

  private final TenantLimits limits;

  AgentRepository(Pool pool, TenantCaps caps, TenantLimits limits) {
    this.pool = pool;
    this.caps = caps;
    this.limits = limits;
  }

  /** Stores {@code definition} as version 1 of a new agent of {@code tenant} with id {@code id}. */
  Uni<Agent> create(Tenant tenant, String id, Agent definition) {
    return limits.capped(
        TenantLimits.Capped.AGENTS,
        tenant.id(),
        caps.maxAgents(),
        connection ->
            connection
                .preparedQuery(INSERT_AGENT)
                .execute(Tuple.of(id, tenant.id()))
                .flatMap(ignored -> insertVersion(connection, id, 1, definition))
                .flatMap(ignored -> find(connection, tenant, id, 1)));
  }

  /** The given version (or the latest when {@code version} is 0) of {@code tenant}'s agent. */
  public Uni<Agent> find(Tenant tenant, String id, int version) {
    return find(pool, tenant, id, version);
  }

  /**
   * Runs {@code change} on the latest version while holding the agent's row lock, and stores its
   * result as the next version unless it returns the latest unchanged.
   */
  Uni<Agent> update(Tenant tenant, String id, java.util.function.Function<Agent, Agent> change) {
    return pool.withTransaction(
        connection ->
            connection
                .preparedQuery(LOCK)
                .execute(Tuple.of(id, tenant.id()))
                .flatMap(
                    locked -> {
                      if (locked.size() == 0) {
                        return Uni.createFrom().failure(new NotFoundException("agent", id));
                      }
                      // A new statement sees what the update this one waited for committed.
                      return find(connection, tenant, id, 0);
                    })
                .flatMap(
                    latest -> storeIfChanged(connection, tenant, latest, change.apply(latest))));
  }

  Uni<List<Agent>> list(Tenant tenant, String afterId, boolean includeArchived, int limit) {
    return pool.preparedQuery(LIST.after(afterId))
        .execute(Tuple.of(afterId, includeArchived, limit, tenant.id()))
        .map(AgentRepository::fromRows);
  }

  Uni<List<Agent>> versions(Tenant tenant, String id, Integer beforeVersion, int limit) {
    return pool.preparedQuery(LIST_VERSIONS.after(beforeVersion))
        .execute(Tuple.of(id, beforeVersion, limit, tenant.id()))
        .flatMap(
            rows ->
                rows.size() > 0 // an empty page, past the first too, is of an agent that exists
                    ? Uni.createFrom().item(fromRows(rows))
                    : requireExists(tenant, id).map(ignored -> List.<Agent>of()));
  }

  Uni<Agent> archive(Tenant tenant, String id) {
    return pool.preparedQuery(ARCHIVE)
        .execute(Tuple.of(id, tenant.id()))
        .flatMap(
            rows -> {
              if (rows.rowCount() == 0) {
                return Uni.createFrom().failure(new NotFoundException("agent", id));
              }
              return find(tenant, id, 0);
            });
  }

  private Uni<Agent> storeIfChanged(SqlClient connection, Tenant tenant, Agent latest, Agent next) {
    if (definitionOf(next).equals(definitionOf(latest))) {
      return Uni.createFrom().item(latest);
    }
    if (latest.getVersion() >= caps.maxAgentVersions()) {
      // The agent's row lock is held: no other update can pass the limit meanwhile.
      return Uni.createFrom()
          .failure(
              new ResourceExhaustedException(
                  "agent "
                      + latest.getId()
                      + " has "
                      + latest.getVersion()
                      + " versions, the most one may (corral.tenant.max-agent-versions);"
                      + " create a new agent for further changes"));
    }
    int version = latest.getVersion() + 1;
    return insertVersion(connection, latest.getId(), version, next)
        .flatMap(
            ignored ->
                connection.preparedQuery(SET_LATEST).execute(Tuple.of(latest.getId(), version)))
        .flatMap(ignored -> find(connection, tenant, latest.getId(), version));
  }

  private Uni<Void> requireExists(Tenant tenant, String id) {
    return pool.preparedQuery(EXISTS)
        .execute(Tuple.of(id, tenant.id()))
        .map(
            rows -> {
              if (rows.size() == 0) {
                throw new NotFoundException("agent", id);
              }
              return null;
            });
  }

  private static Uni<RowSet<Row>> insertVersion(
      SqlClient client, String id, int version, Agent definition) {
    return client
        .preparedQuery(INSERT_VERSION)
        .execute(
            Tuple.of(
                id,
                version,
                io.vertx.core.buffer.Buffer.buffer(definitionOf(definition).toByteArray())));
  }

  private static Uni<Agent> find(SqlClient client, Tenant tenant, String id, int version) {
    return client
        .preparedQuery(SELECT_VERSION)
        .execute(Tuple.of(id, version == 0 ? null : version, tenant.id()))
        .map(rows -> fromSingleRow(rows, id, version));
  }

  /** The fields a version stores; identity and timestamps come from the rows. */
  static Agent definitionOf(Agent agent) {
    return agent.toBuilder()
        .clearId()
        .clearVersion()
        .clearCreatedAt()
        .clearUpdatedAt()
        .clearArchivedAt()
        .build();
  }

  private static Agent fromSingleRow(RowSet<Row> rows, String id, int version) {
    if (rows.size() == 0) {
      throw new NotFoundException("agent", id);
    }
    Row row = rows.iterator().next();
    if (row.getInteger("version") == null) {
      throw new NotFoundException("agent version", id + "@" + version);
    }
    return fromRow(row);
  }

  private static List<Agent> fromRows(RowSet<Row> rows) {
    List<Agent> agents = new ArrayList<>(rows.size());
    rows.forEach(row -> agents.add(fromRow(row)));
    return agents;
  }

  static Agent fromRow(Row row) {
    Agent.Builder agent;
    try {
      agent = Agent.parseFrom(row.getBuffer("spec").getBytes()).toBuilder();
    } catch (InvalidProtocolBufferException e) {
      throw new IllegalStateException(
          "stored agent " + row.getString("id") + " is not readable", e);
    }
    agent
        .setId(row.getString("id"))
        .setVersion(row.getInteger("version"))
        .setCreatedAt(ProtoTime.of(row.getOffsetDateTime("created_at")))
        .setUpdatedAt(ProtoTime.of(row.getOffsetDateTime("version_created_at")));
    OffsetDateTime archivedAt = row.getOffsetDateTime("archived_at");
    if (archivedAt != null) {
      agent.setArchivedAt(ProtoTime.of(archivedAt));
    }
    return agent.build();
  }
}
