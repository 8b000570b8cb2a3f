package dev.corral.rest;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.corral.agent.Agents;
import dev.corral.agent.Environments;
import dev.corral.common.InvalidArgumentException;
import dev.corral.proto.v1.EnvironmentServiceGrpc;
import io.smallrye.mutiny.Uni;
import io.vertx.ext.web.Router;
import jakarta.enterprise.context.ApplicationScoped;

/** {@code /v1/environments}, on {@link Environments}. */
@ApplicationScoped
class EnvironmentRoutes {

  private final Environments environments;

  EnvironmentRoutes(Environments environments) {
    this.environments = environments;
  }

  void install(Router router) {
    router
        .post("/v1/environments")
        .handler(RestCall.json(EnvironmentServiceGrpc.getCreateEnvironmentMethod(), this::create));
    router
        .get("/v1/environments")
        .handler(RestCall.json(EnvironmentServiceGrpc.getListEnvironmentsMethod(), this::list));
    router
        .get("/v1/environments/:environment_id")
        .handler(RestCall.json(EnvironmentServiceGrpc.getGetEnvironmentMethod(), this::retrieve));
    router
        .post("/v1/environments/:environment_id")
        .handler(RestCall.json(EnvironmentServiceGrpc.getUpdateEnvironmentMethod(), this::update));
    router
        .post("/v1/environments/:environment_id/archive")
        .handler(
            RestCall.json(EnvironmentServiceGrpc.getArchiveEnvironmentMethod(), this::archive));
  }

  /** What the environment rules call the fields of a REST environment's {@code config}. */
  private static final FieldNames NAMES =
      FieldNames.of(
          "driver", "config.driver",
          "image", "config.image",
          "resources", "config.resources",
          "networking", "config.networking",
          "setup_commands", "config.setup_commands");

  private Uni<ObjectNode> create(RestCall call) {
    return NAMES
        .on(environments.create(call.tenant(), EnvironmentShapes.definition(call.body())))
        .map(EnvironmentShapes::environment);
  }

  private Uni<ObjectNode> list(RestCall call) {
    return RestCall.listing(
            () ->
                environments.list(
                    call.tenant(),
                    call.limit(Agents.MAX_PAGE_SIZE),
                    call.page(),
                    call.flag("include_archived")))
        .map(page -> Shapes.page(page, EnvironmentShapes::environment));
  }

  private Uni<ObjectNode> retrieve(RestCall call) {
    return environments
        .get(call.tenant(), call.path("environment_id"))
        .map(EnvironmentShapes::environment);
  }

  private Uni<ObjectNode> update(RestCall call) {
    ObjectNode body = call.body();
    int expected = Fields.optionalInt(body, "version", "version").orElse(0);
    if (Fields.has(body, "version") && expected < 1) {
      throw new InvalidArgumentException("version", "must be 1 or more");
    }
    return NAMES
        .on(
            environments.update(
                call.tenant(),
                call.path("environment_id"),
                expected,
                current -> EnvironmentShapes.updated(current, body)))
        .map(EnvironmentShapes::environment);
  }

  private Uni<ObjectNode> archive(RestCall call) {
    return environments
        .archive(call.tenant(), call.path("environment_id"))
        .map(EnvironmentShapes::environment);
  }
}
