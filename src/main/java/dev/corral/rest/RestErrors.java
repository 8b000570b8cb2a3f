package dev.corral.rest;

import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.corral.api.GrpcErrors;
import dev.corral.common.TooLargeException;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.vertx.core.http.HttpServerResponse;
import io.vertx.ext.web.RoutingContext;

/**
 * Failures as Claude Managed Agents answers them: {@code {"type":"error","error":{"type",
 * "message"},"request_id"}} with the matching HTTP status. The failure is classified once, by the
 * gRPC edge's mapper ({@link GrpcErrors}), so that both doors give the same answer to the same
 * mistake; no stack trace or class name is ever written.
 */
final class RestErrors {

  private RestErrors() {}

  /** Answers {@code failure}, unless the response has begun. */
  static void answer(RoutingContext request, Throwable failure) {
    StatusRuntimeException status = GrpcErrors.toStatus(failure);
    String message = status.getStatus().getDescription();
    if (tooLarge(failure)) {
      answer(request, 413, "request_too_large", message == null ? "" : message, false);
      return;
    }
    answer(request, status.getStatus().getCode(), message == null ? "" : message);
  }

  private static boolean tooLarge(Throwable failure) {
    for (Throwable cause = failure; cause != null; cause = cause.getCause()) {
      if (cause instanceof TooLargeException) {
        return true;
      }
    }
    return false;
  }

  static void answer(RoutingContext request, Status.Code code, String message) {
    HttpServerResponse response = request.response();
    if (response.headWritten() || response.ended() || response.closed()) {
      return;
    }
    Kind kind = kind(code);
    answer(request, kind.http, kind.type, message, kind.retry);
  }

  /**
   * The API's error object ({@code {"type":"error","error":{"type":…,"message":…}}}) for {@code
   * failure}, for a stream that has already begun and can only end with it.
   */
  static ObjectNode body(Throwable failure) {
    Status status = GrpcErrors.toStatus(failure).getStatus();
    ObjectNode body = JsonNodeFactory.instance.objectNode().put("type", "error");
    body.putObject("error")
        .put("type", kind(status.getCode()).type)
        .put(
            "message",
            GrpcErrors.bounded(status.getDescription() == null ? "" : status.getDescription()));
    return body;
  }

  /** An HTTP status, the API's error type, and whether the SDKs may retry. */
  private record Kind(int http, String type, boolean retry) {}

  private static Kind kind(Status.Code code) {
    return switch (code) {
      case INVALID_ARGUMENT, OUT_OF_RANGE -> new Kind(400, "invalid_request_error", false);
      case UNAUTHENTICATED -> new Kind(401, "authentication_error", false);
      case PERMISSION_DENIED -> new Kind(403, "permission_error", false);
      case NOT_FOUND, UNIMPLEMENTED -> new Kind(404, "not_found_error", false);
      case ABORTED, ALREADY_EXISTS, FAILED_PRECONDITION ->
          new Kind(409, "invalid_request_error", false);
      // corral's RESOURCE_EXHAUSTED is a size or a quota, never a rate: the same request fails
      // again until something is released, so the SDKs must not retry it on their own.
      case RESOURCE_EXHAUSTED -> new Kind(429, "rate_limit_error", false);
      case UNAVAILABLE -> new Kind(529, "overloaded_error", true);
      default -> new Kind(500, "api_error", false);
    };
  }

  /** Answers with an HTTP status and an error type of the API's own. */
  static void answer(RoutingContext request, int http, String type, String message, boolean retry) {
    HttpServerResponse response = request.response();
    if (response.headWritten() || response.ended() || response.closed()) {
      return;
    }
    String requestId = request.get(RestCall.REQUEST_ID, "req_unknown");
    ObjectNode body = JsonNodeFactory.instance.objectNode().put("type", "error");
    body.putObject("error").put("type", type).put("message", GrpcErrors.bounded(message));
    body.put("request_id", requestId);
    response
        .setStatusCode(http)
        .putHeader("content-type", "application/json")
        .putHeader("request-id", requestId)
        // The SDKs retry 409 and 5xx unless told not to: a retried send could append twice.
        .putHeader("x-should-retry", Boolean.toString(retry))
        .end(body.toString());
  }
}
