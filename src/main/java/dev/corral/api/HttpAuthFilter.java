package dev.corral.api;

import dev.corral.common.CorralException;
import dev.corral.common.PermissionDeniedException;
import dev.corral.common.UnauthenticatedException;
import dev.corral.common.UnavailableException;
import dev.corral.identity.AuthConfig;
import dev.corral.identity.Authenticator;
import dev.corral.identity.Principal;
import io.vertx.core.Context;
import io.vertx.core.Vertx;
import io.vertx.core.json.JsonObject;
import io.vertx.ext.web.Router;
import io.vertx.ext.web.RoutingContext;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Observes;
import java.util.Optional;
import java.util.Set;
import java.util.regex.Pattern;

/**
 * Authenticates every HTTP request but health checks, before any other route sees it: an {@code
 * authorization: Bearer …} or {@code x-api-key} header with a corral API key or an OIDC token. gRPC
 * calls pass on to the gRPC server, whose {@link AuthInterceptor} checks them (only requests that
 * are gRPC by content type and by path: {@code /package.Service/Method}). {@code /q/metrics} needs
 * a principal of the operator tenant (or nothing, with {@code corral.auth.public-metrics}).
 * Refusals are JSON in the shape of Claude Managed Agents' errors.
 */
@ApplicationScoped
public class HttpAuthFilter {

  /** Where the principal of an authenticated request is kept in its routing context. */
  public static final String PRINCIPAL = "corral.principal";

  /**
   * Where the request's credential ({@code authorization}, or {@code x-api-key} as a bearer) is
   * kept, for a long response that checks it again while it lasts.
   */
  public static final String AUTHORIZATION = "corral.authorization";

  private static final Pattern GRPC_PATH =
      Pattern.compile("/[A-Za-z0-9_]+(\\.[A-Za-z0-9_]+)+/\\w+");
  private static final String METRICS = "/q/metrics";
  private static final java.security.SecureRandom RANDOM = new java.security.SecureRandom();

  private final Authenticator authenticator;
  private final AuthConfig config;

  HttpAuthFilter(Authenticator authenticator, AuthConfig config) {
    this.authenticator = authenticator;
    this.config = config;
  }

  void install(@Observes Router router) {
    router.route().order(Integer.MIN_VALUE + 1).handler(this::filter);
  }

  private void filter(RoutingContext request) {
    String path = request.normalizedPath();
    if (isHealth(path) || isGrpcCall(request, path)) {
      request.next();
      return;
    }
    if (!config.enabled() && !config.allowRemoteUnauthenticated()) {
      Optional<String> foreign = foreignToLoopback(request);
      if (foreign.isPresent()) {
        refuse(request, new PermissionDeniedException(foreign.get()));
        return;
      }
    }
    if (METRICS.equals(path) && config.publicMetrics()) {
      request.next();
      return;
    }
    String authorization = request.request().getHeader("authorization");
    String apiKey = request.request().getHeader("x-api-key");
    if (authorization == null && apiKey != null) {
      authorization = "Bearer " + apiKey;
    }
    request.put(AUTHORIZATION, authorization);
    Context context = Vertx.currentContext();
    request.request().pause();
    authenticator
        .authenticate(authorization)
        .emitOn(action -> context.runOnContext(ignored -> action.run()))
        .subscribe()
        .with(
            principal -> {
              request.request().resume();
              admitted(request, path, principal);
            },
            failure -> {
              request.request().resume();
              refuse(request, failure);
            });
  }

  /**
   * With authentication off the server listens on 127.0.0.1 for its own host's programs. A web page
   * in the host's browser reaches 127.0.0.1 too: by a cross-site request (which carries the page's
   * {@code Origin}), or by a name of its own that resolves to 127.0.0.1 (DNS rebinding: its {@code
   * Host}). Either would make the page an admin; why such a request is refused, if it is one.
   */
  private static Optional<String> foreignToLoopback(RoutingContext request) {
    String host = request.request().getHeader("host");
    if (host == null && request.request().authority() != null) {
      host = request.request().authority().host();
    }
    if (host == null || !isLoopbackName(hostOf(host))) {
      return Optional.of(
          "with authentication off, requests must name this server as localhost, 127.0.0.1 or"
              + " [::1] (Host)");
    }
    String origin = request.request().getHeader("origin");
    if (origin != null) {
      String originHost;
      try {
        originHost = java.net.URI.create(origin.strip()).getHost();
      } catch (IllegalArgumentException malformed) {
        originHost = null;
      }
      if (originHost == null || !isLoopbackName(originHost)) {
        return Optional.of(
            "with authentication off, requests from a web page of another site are refused"
                + " (Origin)");
      }
    }
    return Optional.empty();
  }

  /** The host of a Host header's value ({@code name:port}, {@code [v6]:port}). */
  private static String hostOf(String value) {
    String host = value.strip();
    if (host.startsWith("[")) {
      int end = host.indexOf(']');
      return end < 0 ? host : host.substring(0, end + 1);
    }
    int colon = host.lastIndexOf(':');
    return colon < 0 ? host : host.substring(0, colon);
  }

  private static boolean isLoopbackName(String host) {
    String name = host.toLowerCase(java.util.Locale.ROOT);
    return name.equals("localhost")
        || dev.corral.common.IpLiteral.parse(name)
            .map(java.net.InetAddress::isLoopbackAddress)
            .orElse(false);
  }

  private void admitted(RoutingContext request, String path, Principal principal) {
    if (isMetrics(path) && !principal.tenant().id().equals(config.operatorTenant())) {
      refuse(
          request,
          new PermissionDeniedException(
              "metrics cover every tenant: only the operator tenant may read them"));
      return;
    }
    request.put(PRINCIPAL, principal);
    request.next();
  }

  private static void refuse(RoutingContext request, Throwable failure) {
    int status;
    String type;
    String message;
    if (failure instanceof UnauthenticatedException) {
      status = 401;
      type = "authentication_error";
    } else if (failure instanceof PermissionDeniedException) {
      status = 403;
      type = "permission_error";
    } else if (failure instanceof UnavailableException) {
      status = 529; // as every other path of the API answers a passing outage
      type = "overloaded_error";
    } else {
      status = 500;
      type = "api_error";
    }
    message =
        failure instanceof CorralException
            ? GrpcErrors.bounded(failure.getMessage())
            : "internal error";
    if (request.response().ended()) {
      return;
    }
    String requestId = newRequestId();
    request
        .response()
        .setStatusCode(status)
        .putHeader("content-type", "application/json")
        .putHeader("request-id", requestId)
        // the SDKs retry 5xx unless told not to; only an outage passes
        .putHeader("x-should-retry", Boolean.toString(status == 529))
        .end(
            new JsonObject()
                .put("type", "error")
                .put("error", new JsonObject().put("type", type).put("message", message))
                .put("request_id", requestId)
                .encode());
  }

  /** A fresh request id in the API's shape ({@code req_} and 24 hex digits). */
  public static String newRequestId() {
    byte[] id = new byte[12];
    RANDOM.nextBytes(id);
    return "req_" + java.util.HexFormat.of().formatHex(id);
  }

  /**
   * Whether {@code path} may reach the metrics handler, which Quarkus also serves below its path
   * ({@code /q/metrics/anything}) and which ignores what follows it.
   */
  private static boolean isMetrics(String path) {
    return path.toLowerCase(java.util.Locale.ROOT).startsWith(METRICS);
  }

  /**
   * The probes a kubelet or load balancer calls without a credential. The other health paths (the
   * whole report, groups) need one.
   */
  private static final Set<String> PROBES =
      Set.of("/q/health/live", "/q/health/ready", "/q/health/started");

  private static boolean isHealth(String path) {
    return PROBES.contains(path);
  }

  private static boolean isGrpcCall(RoutingContext request, String path) {
    String contentType = request.request().getHeader("content-type");
    return contentType != null
        && contentType.startsWith("application/grpc")
        && GRPC_PATH.matcher(path).matches();
  }
}
