package dev.corral.rest;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.corral.api.HttpAuthFilter;
import dev.corral.api.MethodRoles;
import dev.corral.common.InvalidArgumentException;
import dev.corral.common.PermissionDeniedException;
import dev.corral.common.Tenant;
import dev.corral.common.UnauthenticatedException;
import dev.corral.identity.Principal;
import dev.corral.identity.Role;
import io.grpc.MethodDescriptor;
import io.smallrye.mutiny.Uni;
import io.vertx.core.Handler;
import io.vertx.ext.web.RoutingContext;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import java.util.function.Function;

/**
 * One request to the facade: its caller (authenticated by {@link HttpAuthFilter}, authorized here
 * with the role of the gRPC method it stands for, so both doors share one role table), its path and
 * query parameters and its JSON body.
 */
final class RestCall {

  static final String REQUEST_ID = "corral.request-id";

  /**
   * Bounded and strict like every JSON corral reads: nesting depth and number length, no key twice,
   * nothing after the value, decimals kept exactly (as the gRPC API reads JSON in a string).
   */
  static final ObjectMapper JSON =
      com.fasterxml.jackson.databind.json.JsonMapper.builder(
              com.fasterxml.jackson.core.JsonFactory.builder()
                  .streamReadConstraints(
                      com.fasterxml.jackson.core.StreamReadConstraints.builder()
                          .maxNestingDepth(dev.corral.common.Json.MAX_DEPTH)
                          .maxNumberLength(dev.corral.common.Json.MAX_NUMBER_LENGTH)
                          .build())
                  .enable(com.fasterxml.jackson.core.StreamReadFeature.STRICT_DUPLICATE_DETECTION)
                  .build())
          .enable(com.fasterxml.jackson.databind.DeserializationFeature.FAIL_ON_TRAILING_TOKENS)
          .enable(com.fasterxml.jackson.databind.DeserializationFeature.USE_BIG_DECIMAL_FOR_FLOATS)
          .build();

  private final RoutingContext context;
  private final Principal principal;

  private RestCall(RoutingContext context, Principal principal) {
    this.context = context;
    this.principal = principal;
  }

  /**
   * A handler that authorizes the request as {@code method}, runs {@code action} and answers its
   * JSON with 200, or the failure in the API's error shape.
   */
  static Handler<RoutingContext> json(
      MethodDescriptor<?, ?> method, Function<RestCall, Uni<? extends JsonNode>> action) {
    return context -> {
      RestCall call;
      try {
        call = authorized(context, method);
      } catch (RuntimeException refused) {
        RestErrors.answer(context, refused);
        return;
      }
      Uni<? extends JsonNode> answer;
      try {
        answer = action.apply(call);
      } catch (RuntimeException invalid) {
        RestErrors.answer(context, invalid);
        return;
      }
      answer
          .subscribe()
          .with(
              body -> {
                if (!context.response().ended() && !context.response().closed()) {
                  context
                      .response()
                      .putHeader("content-type", "application/json")
                      .putHeader("request-id", (String) context.get(REQUEST_ID))
                      .end(body.toString());
                }
              },
              failure -> RestErrors.answer(context, failure));
    };
  }

  /** Gives a request that no route serves its request id. */
  static void authorizedNothing(RoutingContext context) {
    context.put(REQUEST_ID, HttpAuthFilter.newRequestId());
  }

  /** Authorizes the request as {@code method} and gives it a request id. */
  static RestCall authorized(RoutingContext context, MethodDescriptor<?, ?> method) {
    context.put(REQUEST_ID, HttpAuthFilter.newRequestId());
    Principal principal = context.get(HttpAuthFilter.PRINCIPAL);
    if (principal == null) {
      throw new UnauthenticatedException("this call needs a credential: send x-api-key");
    }
    String name = method.getFullMethodName();
    Optional<Role> required = MethodRoles.of(name);
    if (required.isEmpty()) {
      throw new PermissionDeniedException("this endpoint is not open to any role");
    }
    if (!principal.has(required.get())) {
      throw new PermissionDeniedException(
          "this endpoint needs the "
              + required.get().wireName()
              + " role; the caller is a "
              + principal.role().wireName()
              + " of tenant "
              + principal.tenant().id());
    }
    if (MethodRoles.operatorOnly(name) && !principal.operator()) {
      throw new PermissionDeniedException("this endpoint is for operators only");
    }
    return new RestCall(context, principal);
  }

  Principal principal() {
    return principal;
  }

  Tenant tenant() {
    return principal.tenant();
  }

  RoutingContext context() {
    return context;
  }

  String path(String name) {
    return context.pathParam(name);
  }

  /** A query parameter, or null. */
  String query(String name) {
    return context.request().getParam(name);
  }

  /** Every value of a repeated query parameter ({@code types[]=a&types[]=b} or {@code types=a}). */
  List<String> queryAll(String name) {
    List<String> values = new java.util.ArrayList<>(context.queryParam(name + "[]"));
    values.addAll(context.queryParam(name));
    return values;
  }

  /**
   * Refuses the API's list filters that this list cannot apply ({@code name}, or {@code name[…]}
   * such as {@code created_at[lte]}): a list that ignored one would answer more than was asked for,
   * and a script that deletes what it lists would delete too much.
   */
  void refuseFilters(String... names) {
    for (String parameter : context.queryParams().names()) {
      for (String name : names) {
        if (parameter.equals(name) || parameter.startsWith(name + "[")) {
          throw new InvalidArgumentException(
              parameter, "is a filter corral does not apply; leave it out and filter the answer");
        }
      }
    }
  }

  /** {@code limit} as a page size (0: the service's default). */
  int limit(int max) {
    String limit = query("limit");
    if (limit == null || limit.isEmpty()) {
      return 0;
    }
    int value;
    try {
      value = Integer.parseInt(limit);
    } catch (NumberFormatException e) {
      throw new InvalidArgumentException("limit", "must be an integer");
    }
    if (value < 1 || value > max) {
      throw new InvalidArgumentException("limit", "must be between 1 and " + max);
    }
    return value;
  }

  private static final FieldNames LIST_NAMES = FieldNames.of("page_token", "page");

  /**
   * A list's call, its bad cursor named as the client sent it: {@code page}, not the {@code
   * page_token} of the gRPC request it becomes.
   */
  static <T> Uni<T> listing(java.util.function.Supplier<Uni<? extends T>> list) {
    return LIST_NAMES.on(Uni.createFrom().deferred(list));
  }

  /** {@code page}, the cursor a list answered as {@code next_page} (empty: the first page). */
  String page() {
    String page = query("page");
    return page == null ? "" : page;
  }

  boolean flag(String name) {
    String value = query(name);
    if (value == null || value.isEmpty()) {
      return false;
    }
    if (!value.equals("true") && !value.equals("false")) {
      throw new InvalidArgumentException(name, "must be true or false");
    }
    return value.equals("true");
  }

  /**
   * The request's body as a JSON object ({@code {}} for an empty body, which bodiless POSTs such as
   * archive send).
   */
  ObjectNode body() {
    String type = context.request().getHeader("content-type");
    if (type != null && type.toLowerCase(Locale.ROOT).startsWith("multipart/")) {
      // the web layer keeps a form's parts out of the body: read as JSON, it would look empty
      throw new InvalidArgumentException(
          "body", "must be JSON (Content-Type: application/json), not a multipart form");
    }
    var buffer = context.body() == null ? null : context.body().buffer();
    if (buffer == null || buffer.length() == 0) {
      return JSON.createObjectNode();
    }
    JsonNode node;
    try {
      node = JSON.readTree(buffer.getBytes());
    } catch (java.io.IOException | NumberFormatException | ArithmeticException e) {
      String why =
          e instanceof com.fasterxml.jackson.core.JsonProcessingException json
                  && json.getOriginalMessage() != null
              ? json.getOriginalMessage()
              : "";
      throw new InvalidArgumentException(
          "body",
          "is not valid JSON"
              + (why.startsWith("Duplicate field")
                  ? ": a key appears twice"
                  : why.startsWith("Trailing token") ? ": something follows the value" : ""));
    }
    if (!(node instanceof ObjectNode object)) {
      throw new InvalidArgumentException("body", "must be a JSON object");
    }
    String withNul = first(object, "", RestCall::hasNul);
    if (withNul != null) {
      throw new InvalidArgumentException(
          withNul, "must not contain the NUL character (U+0000), which PostgreSQL cannot store");
    }
    String halfPair = first(object, "", dev.corral.common.Json::holdsHalfPair);
    if (halfPair != null) {
      throw new InvalidArgumentException(halfPair, dev.corral.common.Json.HALF_PAIR);
    }
    return object;
  }

  private static boolean hasNul(String text) {
    return text.indexOf('\u0000') >= 0;
  }

  /**
   * The path of the first string (or object key) under {@code node} that {@code bad} finds wrong,
   * or null; the rules the gRPC API applies to every string of a request.
   */
  private static String first(
      JsonNode node, String path, java.util.function.Predicate<String> bad) {
    if (node.isTextual()) {
      return bad.test(node.textValue()) ? (path.isEmpty() ? "body" : path) : null;
    }
    if (node.isArray()) {
      for (int i = 0; i < node.size(); i++) {
        String found = first(node.get(i), path + "[" + i + "]", bad);
        if (found != null) {
          return found;
        }
      }
    } else if (node.isObject()) {
      var fields = node.fields();
      while (fields.hasNext()) {
        var field = fields.next();
        String at = path.isEmpty() ? field.getKey() : path + "." + field.getKey();
        if (bad.test(field.getKey())) {
          return path.isEmpty() ? "body" : path;
        }
        String found = first(field.getValue(), at, bad);
        if (found != null) {
          return found;
        }
      }
    }
    return null;
  }
}
