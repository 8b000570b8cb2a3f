package dev.corral.agent;

import dev.corral.common.ConflictException;
import dev.corral.common.FailedPreconditionException;
import dev.corral.common.IdKind;
import dev.corral.common.InputRules;
import dev.corral.common.InvalidArgumentException;
import dev.corral.common.Page;
import dev.corral.common.Paging;
import dev.corral.common.Tenant;
import dev.corral.proto.v1.Agent;
import dev.corral.proto.v1.Tool;
import io.smallrye.mutiny.Uni;
import jakarta.enterprise.context.ApplicationScoped;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/** Creates, versions, lists and archives agents. */
@ApplicationScoped
public class Agents {

  public static final int DEFAULT_PAGE_SIZE = 20;
  public static final int MAX_PAGE_SIZE = 100;

  private final AgentRepository repository;

  private final dev.corral.common.CredentialBindings credentials;

  Agents(AgentRepository repository, dev.corral.common.CredentialBindings credentials) {
    this.credentials = credentials;
    this.repository = repository;
  }

  /** Creates an agent at version 1 from the definition fields of {@code definition}. */
  public Uni<Agent> create(Tenant tenant, Agent definition) {
    return Uni.createFrom()
        .item(() -> AgentRules.check(AgentRepository.definitionOf(definition)))
        .call(checked -> credentialsBound(tenant, List.of(), checked.getMcpServersList()))
        .flatMap(checked -> repository.create(tenant, IdKind.AGENT.next(), checked));
  }

  /** The given version of an agent; 0 means the latest. */
  public Uni<Agent> get(Tenant tenant, String agentId, int version) {
    return Uni.createFrom()
        .item(() -> checkVersion(IdKind.AGENT.require("agent_id", agentId), "version", version))
        .flatMap(id -> repository.find(tenant, id, version));
  }

  /** Makes a new version with the changes applied, unless they change nothing. */
  public Uni<Agent> update(
      Tenant tenant, String agentId, int expectedVersion, AgentChanges changes) {
    return Uni.createFrom()
        .item(
            () -> {
              String id =
                  checkVersion(
                      IdKind.AGENT.require("agent_id", agentId),
                      "expected_version",
                      expectedVersion);
              // what a field holds is checked before the agent is looked up (its state, its
              // version); what depends on the other fields, with them, once it is
              changes.checkFields();
              return id;
            })
        .call(
            id ->
                changes.mcpServers().isEmpty()
                    ? Uni.createFrom().voidItem()
                    : repository
                        .find(tenant, id, 0)
                        .flatMap(
                            latest ->
                                credentialsBound(
                                    tenant,
                                    latest.getMcpServersList(),
                                    changes.mcpServers().get())))
        .flatMap(
            id -> repository.update(tenant, id, latest -> apply(latest, expectedVersion, changes)));
  }

  /**
   * Each credential {@code servers} name that {@code previous} did not already pair with the same
   * URL exists in {@code tenant} and is bound to its server; the first that is not fails the call.
   * The list is checked on its own first (at most {@link AgentRules#MAX_MCP_SERVERS}), so no
   * request makes more lookups than that.
   */
  private Uni<Void> credentialsBound(
      Tenant tenant,
      List<dev.corral.proto.v1.McpServer> previous,
      List<dev.corral.proto.v1.McpServer> servers) {
    AgentRules.mcpServerList(servers);
    java.util.Set<String> known = new java.util.HashSet<>();
    previous.forEach(server -> known.add(server.getCredentialId() + " " + server.getUrl()));
    java.util.Map<String, dev.corral.proto.v1.McpServer> checks = new java.util.LinkedHashMap<>();
    for (int i = 0; i < servers.size(); i++) {
      dev.corral.proto.v1.McpServer server = servers.get(i);
      String pair = server.getCredentialId() + " " + server.getUrl();
      if (!server.getCredentialId().isEmpty() && !known.contains(pair)) {
        checks.putIfAbsent("mcp_servers[" + i + "].credential_id", server);
        known.add(pair);
      }
    }
    return io.smallrye.mutiny.Multi.createFrom()
        .iterable(checks.entrySet())
        .onItem()
        .transformToUniAndConcatenate(
            check ->
                credentials.requireBound(
                    tenant,
                    check.getKey(),
                    check.getValue().getCredentialId(),
                    check.getValue().getUrl(),
                    dev.corral.common.CredentialUse.MCP_SERVER))
        .collect()
        .last()
        .replaceWithVoid();
  }

  public Uni<Page<Agent>> list(
      Tenant tenant, int pageSize, String pageToken, boolean includeArchived) {
    int size = Paging.pageSize("page_size", pageSize, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE);
    String after = Paging.keyOf("page_token", pageToken, IdKind.AGENT::isValid);
    return repository
        .list(tenant, after, includeArchived, size + 1)
        .map(agents -> Page.of(agents, size, agent -> agent.getId()));
  }

  public Uni<Page<Agent>> versions(Tenant tenant, String agentId, int pageSize, String pageToken) {
    String id = IdKind.AGENT.require("agent_id", agentId);
    int size = Paging.pageSize("page_size", pageSize, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE);
    String before = Paging.keyOf("page_token", pageToken, key -> key.matches("[1-9][0-9]{0,8}"));
    return repository
        .versions(tenant, id, before == null ? null : Integer.valueOf(before), size + 1)
        .map(versions -> Page.of(versions, size, agent -> Integer.toString(agent.getVersion())));
  }

  public Uni<Agent> archive(Tenant tenant, String agentId) {
    return Uni.createFrom()
        .item(() -> IdKind.AGENT.require("agent_id", agentId))
        .flatMap(id -> repository.archive(tenant, id));
  }

  private static String checkVersion(String id, String field, int version) {
    if (version < 0) {
      throw new InvalidArgumentException(field, "must not be negative");
    }
    return id;
  }

  private static Agent apply(Agent latest, int expectedVersion, AgentChanges changes) {
    if (latest.hasArchivedAt()) {
      throw new FailedPreconditionException(
          "agent " + latest.getId() + " is archived and cannot change");
    }
    if (expectedVersion != 0 && expectedVersion != latest.getVersion()) {
      throw new ConflictException(
          "agent "
              + latest.getId()
              + " is at version "
              + latest.getVersion()
              + ", not the expected "
              + expectedVersion);
    }
    Agent.Builder next = latest.toBuilder();
    changes.name().ifPresent(next::setName);
    changes.description().ifPresent(next::setDescription);
    changes.model().ifPresent(next::setModel);
    changes.system().ifPresent(next::setSystem);
    changes.tools().ifPresent(tools -> next.clearTools().addAllTools(tools));
    changes.mcpServers().ifPresent(servers -> next.clearMcpServers().addAllMcpServers(servers));
    changes.metadata().ifPresent(metadata -> next.clearMetadata().putAllMetadata(metadata));
    return AgentRules.check(next.build());
  }

  /** The fields an update sets; an empty optional keeps the field. */
  public record AgentChanges(
      Optional<String> name,
      Optional<String> description,
      Optional<String> model,
      Optional<String> system,
      Optional<List<Tool>> tools,
      Optional<Map<String, String>> metadata,
      Optional<List<dev.corral.proto.v1.McpServer>> mcpServers) {

    /**
     * Checks what each field holds on its own (not what depends on the agent or the other fields).
     *
     * @throws InvalidArgumentException naming the first field that is not right
     */
    public void checkFields() {
      name.ifPresent(AgentRules::name);
      description.ifPresent(AgentRules::description);
      model.ifPresent(AgentRules::model);
      system.ifPresent(AgentRules::system);
      metadata.ifPresent(entries -> InputRules.metadata("metadata", entries));
    }
  }
}
