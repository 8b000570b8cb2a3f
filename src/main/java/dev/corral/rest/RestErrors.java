package dev.corral.rest;

import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.corral.api.GrpcErrors;
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
    answer(request, status.getStatus().getCode(), message == null ? "" : message);
  }

  static void answer(RoutingContext request, Status.Code code, String message) {
    HttpServerResponse response = request.response();
    if (response.headWritten() || response.ended() || response.closed()) {
      return;
    }
    int http;
    String type;
    boolean retry = false;
    switch (code) {
      case INVALID_ARGUMENT, OUT_OF_RANGE -> {
        http = 400;
        type = "invalid_request_error";
      }
      case UNAUTHENTICATED -> {
        http = 401;
        type = "authentication_error";
      }
      case PERMISSION_DENIED -> {
        http = 403;
        type = "permission_error";
      }
      case NOT_FOUND -> {
        http = 404;
        type = "not_found_error";
      }
      case ABORTED, ALREADY_EXISTS, FAILED_PRECONDITION -> {
        http = 409;
        type = "invalid_request_error";
      }
      case RESOURCE_EXHAUSTED -> {
        http = 429;
        type = "rate_limit_error";
        retry = true;
      }
      case UNAVAILABLE -> {
        http = 529;
        type = "overloaded_error";
        retry = true;
      }
      case UNIMPLEMENTED -> {
        http = 404;
        type = "not_found_error";
      }
      default -> {
        http = 500;
        type = "api_error";
      }
    }
    answer(request, http, type, message, retry);
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
