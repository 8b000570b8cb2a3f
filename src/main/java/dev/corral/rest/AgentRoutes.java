package dev.corral.rest;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.corral.agent.Agents;
import dev.corral.common.IdKind;
import dev.corral.common.InvalidArgumentException;
import dev.corral.proto.v1.Agent;
import dev.corral.proto.v1.AgentServiceGrpc;
import io.smallrye.mutiny.Uni;
import io.vertx.ext.web.Router;
import jakarta.enterprise.context.ApplicationScoped;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.regex.Pattern;

/** {@code /v1/agents}: agents and their versions, on {@link Agents}. */
@ApplicationScoped
class AgentRoutes {

  private final Agents agents;

  AgentRoutes(Agents agents) {
    this.agents = agents;
  }

  void install(Router router) {
    router
        .post("/v1/agents")
        .handler(RestCall.json(AgentServiceGrpc.getCreateAgentMethod(), this::create));
    router
        .get("/v1/agents")
        .handler(RestCall.json(AgentServiceGrpc.getListAgentsMethod(), this::list));
    router
        .get("/v1/agents/:agent_id")
        .handler(RestCall.json(AgentServiceGrpc.getGetAgentMethod(), this::retrieve));
    router
        .post("/v1/agents/:agent_id")
        .handler(RestCall.json(AgentServiceGrpc.getUpdateAgentMethod(), this::update));
    router
        .post("/v1/agents/:agent_id/archive")
        .handler(RestCall.json(AgentServiceGrpc.getArchiveAgentMethod(), this::archive));
    router
        .get("/v1/agents/:agent_id/versions")
        .handler(RestCall.json(AgentServiceGrpc.getListAgentVersionsMethod(), this::versions));
  }

  private Uni<ObjectNode> create(RestCall call) {
    Agent definition = AgentShapes.definition(call.body());
    return restNamed(Uni.createFrom().deferred(() -> agents.create(call.tenant(), definition)))
        .map(AgentShapes::agent);
  }

  /**
   * A tool's kind is a message of its own in gRPC ({@code tools[0].custom.input_schema_json}) and a
   * {@code type} beside its fields over REST ({@code tools[0].input_schema}).
   */
  private static final Pattern TOOL_KIND =
      Pattern.compile("^(tools\\[\\d+\\])\\.(?:custom|toolset|mcp_toolset)(?=$|[.\\[])");

  /** {@code call}, its INVALID_ARGUMENT naming the field as a REST client sent it. */
  static <T> Uni<T> restNamed(Uni<T> call) {
    return call.onFailure(InvalidArgumentException.class)
        .transform(
            failure -> {
              InvalidArgumentException invalid = (InvalidArgumentException) failure;
              String field =
                  TOOL_KIND
                      .matcher(invalid.field())
                      .replaceFirst("$1")
                      .replace(".input_schema_json", ".input_schema");
              return field.equals(invalid.field())
                  ? failure
                  : new InvalidArgumentException(field, invalid.problem());
            });
  }

  private Uni<ObjectNode> list(RestCall call) {
    call.refuseFilters("created_at");
    return RestCall.listing(
            () ->
                agents.list(
                    call.tenant(),
                    call.limit(Agents.MAX_PAGE_SIZE),
                    call.page(),
                    call.flag("include_archived")))
        .map(page -> Shapes.page(page, AgentShapes::agent));
  }

  private Uni<ObjectNode> retrieve(RestCall call) {
    String version = call.query("version");
    int number;
    try {
      number = version == null || version.isEmpty() ? 0 : Integer.parseInt(version);
    } catch (NumberFormatException e) {
      throw new InvalidArgumentException("version", "must be an integer");
    }
    return agents.get(call.tenant(), call.path("agent_id"), number).map(AgentShapes::agent);
  }

  /**
   * An update: fields left out are kept, {@code null} clears {@code description}, {@code system},
   * {@code tools} and {@code mcp_servers} (and is refused for {@code name} and {@code model}, which
   * an agent cannot be without), {@code metadata} is a patch (a null value deletes its key), {@code
   * version} is the version the caller expects to change (409 if it moved on).
   */
  private Uni<ObjectNode> update(RestCall call) {
    ObjectNode body = call.body();
    AgentShapes.refuseUnsupported(body);
    for (String required : List.of("name", "model")) {
      if (body.has(required) && body.get(required).isNull()) {
        throw new InvalidArgumentException(
            required, "cannot be cleared: an agent needs one (leave it out to keep it)");
      }
    }
    String id = call.path("agent_id");
    int expected = Fields.optionalInt(body, "version", "version").orElse(0);
    if (Fields.has(body, "version") && expected < 1) {
      throw new InvalidArgumentException("version", "must be 1 or more");
    }
    Optional<Map<String, String>> patch = Fields.metadata(body, "metadata", "metadata");
    // what a field holds is checked before the agent is looked up, as gRPC's UpdateAgent does
    Agents.AgentChanges scalars =
        new Agents.AgentChanges(
            Fields.optionalString(body, "name", "name"),
            Fields.cleared(body, "description"),
            AgentShapes.model(body),
            Fields.cleared(body, "system"),
            Optional.empty(),
            Optional.empty(),
            Optional.empty());
    return restNamed(
            Uni.createFrom()
                .item(() -> IdKind.AGENT.require("agent_id", id))
                .invoke(scalars::checkFields))
        .flatMap(ignored -> agents.get(call.tenant(), id, 0))
        .flatMap(
            latest ->
                restNamed(
                    Uni.createFrom()
                        .deferred(
                            () ->
                                agents.update(
                                    call.tenant(),
                                    id,
                                    expected != 0 || patch.isEmpty()
                                        ? expected
                                        : latest.getVersion(),
                                    new Agents.AgentChanges(
                                        Fields.optionalString(body, "name", "name"),
                                        Fields.cleared(body, "description"),
                                        AgentShapes.model(body),
                                        Fields.cleared(body, "system"),
                                        body.has("tools")
                                            ? Optional.of(AgentShapes.tools(body))
                                            : Optional.empty(),
                                        patch.map(
                                            entries ->
                                                AgentShapes.patched(
                                                    latest.getMetadataMap(), entries)),
                                        body.has("mcp_servers")
                                            ? Optional.of(AgentShapes.mcpServers(body))
                                            : Optional.empty())))))
        .map(AgentShapes::agent);
  }

  private Uni<ObjectNode> archive(RestCall call) {
    return agents.archive(call.tenant(), call.path("agent_id")).map(AgentShapes::agent);
  }

  private Uni<ObjectNode> versions(RestCall call) {
    return RestCall.listing(
            () ->
                agents.versions(
                    call.tenant(),
                    call.path("agent_id"),
                    call.limit(Agents.MAX_PAGE_SIZE),
                    call.page()))
        .map(page -> Shapes.page(page, AgentShapes::agent));
  }
}
