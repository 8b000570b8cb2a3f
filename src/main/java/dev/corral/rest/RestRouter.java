package dev.corral.rest;

import io.grpc.Status;
import io.vertx.ext.web.Router;
import io.vertx.ext.web.handler.BodyHandler;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Observes;
import java.util.Locale;

/**
 * Installs the facade on corral's HTTP port: a bounded body reader for {@code /v1}, every route,
 * and for any other {@code /v1} request an answer in the API's error shape that names it (never an
 * HTML page or a bare 404). Requests were authenticated before they get here.
 */
@ApplicationScoped
class RestRouter {

  /** The largest request body: what gRPC takes too. */
  static final long MAX_BODY = 4L << 20;

  private final AgentRoutes agents;
  private final EnvironmentRoutes environments;
  private final SessionRoutes sessions;
  private final EventRoutes events;
  private final VaultRoutes vaults;

  RestRouter(
      AgentRoutes agents,
      EnvironmentRoutes environments,
      SessionRoutes sessions,
      EventRoutes events,
      VaultRoutes vaults) {
    this.agents = agents;
    this.environments = environments;
    this.sessions = sessions;
    this.events = events;
    this.vaults = vaults;
  }

  void install(@Observes Router router) {
    router.route("/v1/*").handler(BodyHandler.create(false).setBodyLimit(MAX_BODY));
    agents.install(router);
    environments.install(router);
    sessions.install(router);
    events.install(router);
    vaults.install(router);
    router.route("/v1/*").failureHandler(RestRouter::failed);
    router
        .route("/v1/*")
        .last()
        .handler(
            context -> {
              RestCall.authorizedNothing(context);
              RestErrors.answer(
                  context,
                  Status.Code.NOT_FOUND,
                  "corral does not implement "
                      + context.request().method().name().toUpperCase(Locale.ROOT)
                      + " "
                      + context.normalizedPath()
                      + " of the Claude Managed Agents API (see docs/compatibility.md)");
            });
  }

  /** A request the web layer refused (a body over the limit, a malformed one). */
  private static void failed(io.vertx.ext.web.RoutingContext context) {
    if (context.get(RestCall.REQUEST_ID) == null) {
      RestCall.authorizedNothing(context);
    }
    if (context.failure() != null) {
      RestErrors.answer(context, context.failure());
      return;
    }
    int status = context.statusCode();
    if (status == 413) {
      RestErrors.answer(
          context,
          413,
          "request_too_large",
          "the request body is larger than " + (MAX_BODY >> 20) + " MiB",
          false);
      return;
    }
    RestErrors.answer(
        context, Status.Code.INVALID_ARGUMENT, "the request is malformed (HTTP " + status + ")");
  }
}
