package dev.corral.rest;

import io.grpc.Status;
import io.vertx.ext.web.Route;
import io.vertx.ext.web.Router;
import io.vertx.ext.web.handler.BodyHandler;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Observes;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.TreeSet;

/**
 * Installs the facade on corral's HTTP port: a bounded body reader for {@code /v1}, every route,
 * and for any other {@code /v1} request an answer in the API's error shape that names it (never an
 * HTML page or a bare 404): 405 with the methods allowed for a path corral serves asked with a
 * method the API never uses (PUT, PATCH…), else 404. Requests were authenticated before they get
 * here.
 */
@ApplicationScoped
class RestRouter {

  /** The methods the Claude Managed Agents API's endpoints use. */
  private static final Set<String> API_METHODS = Set.of("GET", "POST", "DELETE");

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
    List<Route> routes =
        router.getRoutes().stream()
            .filter(route -> route.getPath() != null && route.methods() != null)
            .filter(route -> route.getPath().startsWith("/v1/") && !route.getPath().contains("*"))
            .toList();
    router
        .route("/v1/*")
        .last()
        .handler(
            context -> {
              RestCall.authorizedNothing(context);
              String method = context.request().method().name().toUpperCase(Locale.ROOT);
              Set<String> allowed = allowedOn(routes, context.normalizedPath());
              // the API's own methods name an endpoint corral may lack (404 says so); any other
              // method on a path corral serves is the wrong method
              if (!allowed.isEmpty() && !API_METHODS.contains(method)) {
                context.response().putHeader("allow", String.join(", ", allowed));
                RestErrors.answer(
                    context,
                    405,
                    "invalid_request_error",
                    method
                        + " is not allowed on "
                        + context.normalizedPath()
                        + "; use "
                        + String.join(" or ", allowed),
                    false);
                return;
              }
              RestErrors.answer(
                  context,
                  Status.Code.NOT_FOUND,
                  "corral does not implement "
                      + method
                      + " "
                      + context.normalizedPath()
                      + " of the Claude Managed Agents API (see docs/compatibility.md)");
            });
  }

  /**
   * The methods of the routes whose path {@code path} matches (a {@code :name} segment matches any
   * segment): none when corral has no such path, whatever the method.
   */
  static Set<String> allowedOn(List<Route> routes, String path) {
    String[] asked = path.split("/", -1);
    Set<String> allowed = new TreeSet<>();
    for (Route route : routes) {
      String[] template = route.getPath().split("/", -1);
      if (template.length != asked.length) {
        continue;
      }
      boolean matches = true;
      for (int i = 0; i < template.length && matches; i++) {
        matches = template[i].startsWith(":") ? !asked[i].isEmpty() : template[i].equals(asked[i]);
      }
      if (matches) {
        route.methods().forEach(method -> allowed.add(method.name().toUpperCase(Locale.ROOT)));
      }
    }
    return allowed;
  }

  /** A request the web layer refused (a body over the limit, a malformed one). */
  private static void failed(io.vertx.ext.web.RoutingContext context) {
    if (context.get(RestCall.REQUEST_ID) == null) {
      RestCall.authorizedNothing(context);
    }
    int status = context.statusCode();
    if (context.failure() != null && (status < 400 || status >= 500)) {
      RestErrors.answer(context, context.failure());
      return;
    }
    // a status of the web layer's own, with or without its cause (a form body it could not
    // decode): the client's fault, whatever the cause's class
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
