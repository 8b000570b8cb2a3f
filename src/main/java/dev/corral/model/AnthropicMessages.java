package dev.corral.model;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.quarkus.runtime.ShutdownEvent;
import io.smallrye.mutiny.Uni;
import io.smallrye.mutiny.subscription.UniEmitter;
import io.vertx.core.Vertx;
import io.vertx.core.buffer.Buffer;
import io.vertx.core.http.HttpClient;
import io.vertx.core.http.HttpClientOptions;
import io.vertx.core.http.HttpClientRequest;
import io.vertx.core.http.HttpClientResponse;
import io.vertx.core.http.HttpMethod;
import io.vertx.core.http.RequestOptions;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Observes;
import java.net.URI;
import java.time.Duration;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * Streams {@code POST /v1/messages} with the Vert.x HTTP client: no thread waits on a response,
 * every chunk is decoded on the event loop, and cancelling the returned {@link Uni} resets the
 * request (the model stops generating for us at once).
 */
@ApplicationScoped
public class AnthropicMessages {

  private static final ObjectMapper JSON = new ObjectMapper();

  private final ModelConfig config;
  private final HttpClient http;
  private final URI base;

  AnthropicMessages(Vertx vertx, ModelConfig config) {
    this.config = config;
    this.base =
        URI.create(config.baseUrl().endsWith("/") ? config.baseUrl() : config.baseUrl() + "/");
    boolean tls = "https".equalsIgnoreCase(base.getScheme());
    this.http =
        vertx.createHttpClient(
            new HttpClientOptions()
                .setSsl(tls)
                .setUseAlpn(tls)
                .setKeepAlive(true)
                .setMaxPoolSize(256)
                .setConnectTimeout(10_000)
                .setIdleTimeout((int) config.idleTimeout().toSeconds())
                .setDecompressionSupported(true));
  }

  void close(@Observes ShutdownEvent event) {
    http.close();
  }

  /** Says at startup that model calls cannot work yet, rather than at a newcomer's first turn. */
  void warnWithoutKey(@Observes io.quarkus.runtime.StartupEvent event) {
    if (!hasKey()) {
      org.jboss.logging.Logger.getLogger(AnthropicMessages.class)
          .warn(NO_KEY + "; sessions will stop at their first model call with this error");
    }
  }

  static final String NO_KEY =
      "no Anthropic API key is configured: set ANTHROPIC_API_KEY (corral.model.api-key)";

  private boolean hasKey() {
    return config.apiKey().filter(key -> !key.isBlank()).isPresent();
  }

  public ModelConfig config() {
    return config;
  }

  /**
   * Sends {@code body} (a Messages API request; {@code stream} is forced on) and completes with the
   * whole response once {@code message_stop} arrives.
   *
   * @throws ModelException (in the Uni) when the call fails; see {@link ModelException#retryable()}
   */
  /**
   * {@code request} (a Messages API request) as {@link #stream} sends it, with {@code "stream":
   * true}: a caller that measures its size serializes it once.
   */
  public static byte[] serialize(ObjectNode request) {
    request.put("stream", true);
    dev.corral.common.Json.withWholePairs(request);
    try {
      return JSON.writeValueAsBytes(request);
    } catch (JsonProcessingException e) {
      throw new IllegalStateException("a request did not serialize", e);
    }
  }

  /** Sends {@code payload}, a request from {@link #serialize}. */
  public Uni<ModelResponse> stream(byte[] payload, StreamListener listener) {
    if (!hasKey()) {
      // Not worth a retry: nothing changes until the operator sets a key.
      return Uni.createFrom()
          .failure(new ModelException(0, "authentication_error", NO_KEY, false, null));
    }
    return Uni.createFrom().emitter(emitter -> send(Buffer.buffer(payload), listener, emitter));
  }

  private void send(
      Buffer payload, StreamListener listener, UniEmitter<? super ModelResponse> emitter) {
    Call call = new Call(emitter);
    http.request(requestOptions())
        .onFailure(
            failure -> call.fail(ModelException.transport("connection_error", describe(failure))))
        .onSuccess(
            request -> {
              if (!call.attach(request)) {
                return;
              }
              request
                  .send(payload)
                  .onFailure(
                      failure ->
                          call.fail(
                              ModelException.transport("connection_error", describe(failure))))
                  .onSuccess(response -> receive(response, listener, call));
            });
  }

  /**
   * One call's outcome: completed, failed, or cancelled by the subscriber (which resets the HTTP
   * request so the server stops streaming).
   */
  private static final class Call {
    private final UniEmitter<? super ModelResponse> emitter;
    private final AtomicBoolean finished = new AtomicBoolean();
    private volatile HttpClientRequest request;

    Call(UniEmitter<? super ModelResponse> emitter) {
      this.emitter = emitter;
      emitter.onTermination(
          () -> {
            if (finished.compareAndSet(false, true) && request != null) {
              request.reset();
            }
          });
    }

    /** Returns false if the call was cancelled before the request existed. */
    boolean attach(HttpClientRequest request) {
      this.request = request;
      if (finished.get()) {
        request.reset();
        return false;
      }
      return true;
    }

    boolean active() {
      return !finished.get();
    }

    void complete(ModelResponse response) {
      if (finished.compareAndSet(false, true)) {
        emitter.complete(response);
      }
    }

    void fail(Throwable failure) {
      if (finished.compareAndSet(false, true)) {
        emitter.fail(failure);
      }
    }

    void abort(Throwable failure) {
      HttpClientRequest current = request;
      fail(failure);
      if (current != null) {
        current.reset();
      }
    }
  }

  private RequestOptions requestOptions() {
    URI target = base.resolve("v1/messages");
    int port =
        target.getPort() > 0
            ? target.getPort()
            : "https".equalsIgnoreCase(target.getScheme()) ? 443 : 80;
    RequestOptions options =
        new RequestOptions()
            .setMethod(HttpMethod.POST)
            .setHost(target.getHost())
            .setPort(port)
            .setURI(target.getRawPath())
            .setTimeout(config.responseTimeout().toMillis())
            .putHeader("content-type", "application/json")
            .putHeader("accept", "text/event-stream")
            .putHeader("anthropic-version", config.anthropicVersion());
    config
        .apiKey()
        .filter(key -> !key.isBlank())
        .ifPresent(key -> options.putHeader("x-api-key", key));
    return options;
  }

  private void receive(HttpClientResponse response, StreamListener listener, Call call) {
    if (response.statusCode() != 200) {
      // An error answer is a small JSON object: at most MAX_ERROR_BODY bytes of it are read (a
      // base URL that is not the Messages API could send any amount).
      Buffer kept = Buffer.buffer();
      java.util.concurrent.atomic.AtomicBoolean answered =
          new java.util.concurrent.atomic.AtomicBoolean();
      Runnable finish =
          () -> {
            if (answered.compareAndSet(false, true)) {
              call.fail(errorAnswer(response, kept));
            }
          };
      response.handler(
          bytes -> {
            if (kept.length() < MAX_ERROR_BODY) {
              kept.appendBuffer(bytes, 0, Math.min(bytes.length(), MAX_ERROR_BODY - kept.length()));
            }
            if (kept.length() >= MAX_ERROR_BODY) {
              response.handler(null);
              response.endHandler(null);
              response.exceptionHandler(ignored -> {});
              response.request().reset();
              finish.run();
            }
          });
      response.endHandler(ignored -> finish.run());
      response.exceptionHandler(ignored -> finish.run());
      return;
    }
    MessageAccumulator message = new MessageAccumulator(listener);
    SseDecoder decoder =
        new SseDecoder(
            (event, data) -> {
              if (call.active()) {
                message.accept(event, parse(data));
              }
            });
    response.handler(
        chunk -> {
          try {
            decoder.feed(chunk.getBytes());
          } catch (ModelException failure) {
            call.abort(failure);
          } catch (RuntimeException failure) {
            call.abort(
                ModelException.transport(
                    "invalid_stream", "unreadable model stream: " + failure.getMessage()));
          }
        });
    response.exceptionHandler(
        failure ->
            call.fail(
                ModelException.transport(
                    "stream_cut",
                    "the answer from "
                        + base.getScheme()
                        + "://"
                        + base.getAuthority()
                        + " broke off"
                        + (failure.getMessage() == null ? "" : ": " + failure.getMessage()))));
    response.endHandler(
        ignored -> {
          if (message.stopped()) {
            ModelResponse answer = message.response();
            String invalid = MessageAccumulator.invalid(answer);
            if (invalid == null) {
              call.complete(answer);
            } else {
              call.fail(
                  ModelException.transport("invalid_response", "the model's answer " + invalid));
            }
          } else {
            call.fail(
                ModelException.transport(
                    "stream_cut", "the model stream ended before message_stop"));
          }
        });
  }

  private static JsonNode parse(String data) {
    try {
      return JSON.readTree(data);
    } catch (JsonProcessingException e) {
      throw new IllegalStateException("event data is not JSON");
    }
  }

  /** Bytes of an error answer read. */
  static final int MAX_ERROR_BODY = 64 * 1024;

  private static ModelException errorAnswer(HttpClientResponse response, Buffer body) {
    String type = "api_error";
    String message = "HTTP " + response.statusCode();
    if (body != null) {
      try {
        JsonNode error = JSON.readTree(body.getBytes()).path("error");
        type = error.path("type").asText(type);
        message =
            "HTTP " + response.statusCode() + " " + type + ": " + error.path("message").asText("");
      } catch (java.io.IOException notJson) {
        // keep the status line
      }
    }
    String retryAfter = response.getHeader("retry-after");
    Duration wait = null;
    if (retryAfter != null) {
      try {
        // whole seconds; a negative or absurd value is no instruction (bounded where it is used)
        long seconds = Long.parseLong(retryAfter.trim());
        wait = Duration.ofSeconds(Math.max(0, Math.min(seconds, 86_400)));
      } catch (NumberFormatException ignored) {
        // an HTTP date: use our own backoff
      }
    }
    return ModelException.fromStatus(response.statusCode(), type, message, wait);
  }

  /** What failed, for the session's log: the URL it could not reach and why, in words. */
  private String describe(Throwable failure) {
    String target = base.getScheme() + "://" + base.getAuthority();
    Throwable cause = failure;
    while (cause.getCause() != null && cause.getCause() != cause) {
      if (cause instanceof java.net.UnknownHostException
          || cause instanceof java.net.ConnectException
          || cause instanceof javax.net.ssl.SSLException) {
        break;
      }
      cause = cause.getCause();
    }
    if (cause instanceof java.net.UnknownHostException) {
      return "cannot reach " + target + ": unknown host";
    }
    if (cause instanceof java.net.ConnectException) {
      String message = String.valueOf(cause.getMessage()).toLowerCase(java.util.Locale.ROOT);
      return "cannot reach "
          + target
          + (message.contains("timed out") ? ": connection timed out" : ": connection refused");
    }
    if (cause instanceof javax.net.ssl.SSLException) {
      return "cannot reach " + target + ": the TLS handshake failed (" + cause.getMessage() + ")";
    }
    if (cause instanceof java.util.concurrent.TimeoutException
        || cause instanceof io.netty.handler.timeout.TimeoutException
        || cause.getClass().getSimpleName().contains("Timeout")) {
      return "no answer from " + target + " within " + config.responseTimeout().toSeconds() + " s";
    }
    String message = cause.getMessage();
    return "cannot reach "
        + target
        + ": "
        + (message == null || message.isBlank() ? "the connection failed" : message);
  }
}
