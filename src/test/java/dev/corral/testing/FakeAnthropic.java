package dev.corral.testing;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.vertx.core.Vertx;
import io.vertx.core.http.HttpServer;
import io.vertx.core.http.HttpServerRequest;
import io.vertx.core.http.HttpServerResponse;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;

/**
 * A protocol-faithful stand-in for the Anthropic Messages API: {@code POST /v1/messages} with
 * {@code stream: true}, answered with server-sent events in the recorded wire format
 * (message_start, content_block_start / _delta / _stop for text, thinking and tool_use, ping,
 * message_delta with stop_reason and usage, message_stop, error), or with HTTP errors, cut streams
 * and streams that never end. Tests script the replies and read the requests it received.
 */
public final class FakeAnthropic implements AutoCloseable {

  public static final String API_KEY = "sk-test-fake-key";
  private static final ObjectMapper JSON = new ObjectMapper();

  private final Vertx vertx = Vertx.vertx();
  private final HttpServer server;
  private final BlockingQueue<Reply> script = new LinkedBlockingQueue<>();
  private final List<Received> received = new CopyOnWriteArrayList<>();

  /** How the fake signs a thinking block: this, then the thinking's length. */
  static final String SIGNATURE_PREFIX = "sig-";

  private final List<String> violations = new CopyOnWriteArrayList<>();
  private volatile Function<JsonNode, Reply> fallback = request -> Reply.text("ok");

  private FakeAnthropic(int port) throws Exception {
    server = vertx.createHttpServer().requestHandler(this::handle);
    server
        .listen(port, "127.0.0.1")
        .toCompletionStage()
        .toCompletableFuture()
        .get(10, TimeUnit.SECONDS);
  }

  public static FakeAnthropic start() throws Exception {
    return new FakeAnthropic(0);
  }

  public String baseUrl() {
    return "http://127.0.0.1:" + server.actualPort();
  }

  /** Replies to the next requests, in order; after them the fallback answers. */
  public FakeAnthropic enqueue(Reply... replies) {
    script.addAll(List.of(replies));
    return this;
  }

  /** Answers every request the script does not, computed from the request body. */
  public FakeAnthropic fallback(Function<JsonNode, Reply> fallback) {
    this.fallback = fallback;
    return this;
  }

  /** Forgets scripted replies and received requests; the fallback answers "ok" again. */
  public void reset() {
    script.clear();
    received.clear();
    violations.clear();
    fallback = request -> Reply.text("ok");
  }

  /** Why the requests it refused as the real API would were refused, in order. */
  public List<String> violations() {
    return List.copyOf(violations);
  }

  public List<Received> requests() {
    return new ArrayList<>(received);
  }

  /** Requests whose conversation mentions {@code marker} anywhere (to tell sessions apart). */
  public List<Received> requestsMentioning(String marker) {
    return received.stream().filter(request -> request.body().toString().contains(marker)).toList();
  }

  @Override
  public void close() {
    vertx.close();
  }

  /** A request as it arrived: when its first byte came, its headers of interest and its body. */
  public record Received(
      Instant arrivedAt,
      String apiKey,
      String version,
      JsonNode body,
      CompletableFuture<Void> closed) {

    public JsonNode messages() {
      return body.path("messages");
    }

    /** Completes when the client closed or reset the connection before the reply ended. */
    public boolean cancelledByClient() {
      return closed.isDone();
    }
  }

  /** The Messages API refuses a request body over 32 MB. */
  static final int MAX_REQUEST_BYTES = 32 << 20;

  private void handle(HttpServerRequest request) {
    Instant arrivedAt = Instant.now();
    request.body(
        body -> {
          if (body.succeeded() && body.result().length() > MAX_REQUEST_BYTES) {
            // the real API's limit on a Messages request, before anything is read
            error(
                request.response(),
                413,
                "request_too_large",
                "Request exceeds the maximum allowed number of bytes.");
            return;
          }
          JsonNode json;
          try {
            json = JSON.readTree(body.result().getBytes());
          } catch (Exception e) {
            request.response().setStatusCode(400).end();
            return;
          }
          CompletableFuture<Void> closed = new CompletableFuture<>();
          Received seen =
              new Received(
                  arrivedAt,
                  request.getHeader("x-api-key"),
                  request.getHeader("anthropic-version"),
                  json,
                  closed);
          received.add(seen);
          request.connection().closeHandler(ignored -> closed.complete(null));
          request.response().exceptionHandler(ignored -> closed.complete(null));
          if (!API_KEY.equals(seen.apiKey())) {
            error(request.response(), 401, "authentication_error", "invalid x-api-key");
            return;
          }
          java.util.Optional<String> refused = MessagesRules.violation(json);
          if (refused.isPresent()) {
            violations.add(refused.get());
            error(request.response(), 400, "invalid_request_error", refused.get());
            return;
          }
          Reply reply = script.poll();
          if (reply == null) {
            reply = fallback.apply(json);
          }
          reply.send(request.response(), json);
        });
  }

  static void error(HttpServerResponse response, int status, String type, String message) {
    ObjectNode body = JSON.createObjectNode().put("type", "error");
    body.putObject("error").put("type", type).put("message", message);
    response
        .setStatusCode(status)
        .putHeader("content-type", "application/json")
        .end(body.toString());
  }

  /** One scripted answer. */
  public interface Reply {

    void send(HttpServerResponse response, JsonNode request);

    /** A complete text answer with stop_reason end_turn, streamed in small deltas. */
    static Reply text(String text) {
      return new Stream().thinking(null).text(text).stop("end_turn");
    }

    /** A tool call (with optional text before it) and stop_reason tool_use. */
    static Reply toolUse(String callId, String name, String inputJson) {
      return new Stream().toolUse(callId, name, inputJson).stop("tool_use");
    }

    static Stream stream() {
      return new Stream();
    }

    /** An HTTP error answer in the API's JSON error format. */
    static Reply status(int status, String type, String message) {
      return (response, request) -> error(response, status, type, message);
    }

    /** A 429 with a retry-after header. */
    static Reply rateLimited(int retryAfterSeconds) {
      return (response, request) -> {
        response.putHeader("retry-after", Integer.toString(retryAfterSeconds));
        error(response, 429, "rate_limit_error", "rate limited");
      };
    }

    /** Starts a stream and never ends it (until the client goes away). */
    static Reply hang() {
      return (response, request) -> {
        Stream.headers(response);
        response.write(Stream.frame("message_start", Stream.messageStart(request)));
        response.write(Stream.frame("ping", JSON.createObjectNode().put("type", "ping")));
      };
    }
  }

  /** A streamed answer assembled block by block, optionally cut or failed midway. */
  public static final class Stream implements Reply {
    private final List<String> frames = new ArrayList<>();
    private int index;
    private String stopReason = "end_turn";
    private int cutAfterFrames = -1;
    private String errorType;
    private long outputTokens = 42;
    private int pauseAfterFrames = -1;
    private java.time.Duration pause;

    public Stream thinking(String thinking) {
      if (thinking == null) {
        return this;
      }
      block(JSON.createObjectNode().put("type", "thinking").put("thinking", ""));
      delta(JSON.createObjectNode().put("type", "thinking_delta").put("thinking", thinking));
      delta(
          JSON.createObjectNode()
              .put("type", "signature_delta")
              .put("signature", SIGNATURE_PREFIX + thinking.length()));
      stopBlock();
      return this;
    }

    public Stream text(String text) {
      block(JSON.createObjectNode().put("type", "text").put("text", ""));
      for (int i = 0; i < text.length(); i += 4) {
        delta(
            JSON.createObjectNode()
                .put("type", "text_delta")
                .put("text", text.substring(i, Math.min(text.length(), i + 4))));
      }
      stopBlock();
      return this;
    }

    public Stream toolUse(String callId, String name, String inputJson) {
      ObjectNode start =
          JSON.createObjectNode().put("type", "tool_use").put("id", callId).put("name", name);
      start.putObject("input");
      block(start);
      int half = inputJson.length() / 2;
      delta(
          JSON.createObjectNode()
              .put("type", "input_json_delta")
              .put("partial_json", inputJson.substring(0, half)));
      delta(
          JSON.createObjectNode()
              .put("type", "input_json_delta")
              .put("partial_json", inputJson.substring(half)));
      stopBlock();
      return this;
    }

    public Stream stop(String reason) {
      stopReason = reason;
      return this;
    }

    public Stream outputTokens(long tokens) {
      outputTokens = tokens;
      return this;
    }

    /** Closes the connection after this many frames of the stream (message_start is frame 1). */
    public Stream cutAfter(int framesSent) {
      cutAfterFrames = framesSent;
      return this;
    }

    /** Pauses the stream for {@code pause} after this many frames (message_start is frame 1). */
    public Stream pauseAfter(int framesSent, java.time.Duration pause) {
      pauseAfterFrames = framesSent;
      this.pause = pause;
      return this;
    }

    /** Sends an error event (overloaded_error, api_error, ...) after the content blocks. */
    public Stream failWith(String type) {
      errorType = type;
      return this;
    }

    @Override
    public void send(HttpServerResponse response, JsonNode request) {
      headers(response);
      List<String> all = new ArrayList<>();
      all.add(frame("message_start", messageStart(request)));
      all.add(frame("ping", JSON.createObjectNode().put("type", "ping")));
      all.addAll(frames);
      if (errorType != null) {
        ObjectNode error = JSON.createObjectNode().put("type", "error");
        error.putObject("error").put("type", errorType).put("message", "scripted " + errorType);
        all.add(frame("error", error));
      } else {
        ObjectNode delta = JSON.createObjectNode().put("type", "message_delta");
        delta.putObject("delta").put("stop_reason", stopReason).putNull("stop_sequence");
        delta.putObject("usage").put("output_tokens", outputTokens);
        all.add(frame("message_delta", delta));
        all.add(frame("message_stop", JSON.createObjectNode().put("type", "message_stop")));
      }
      write(response, all, 0);
    }

    private void write(HttpServerResponse response, List<String> all, int from) {
      for (int i = from; i < all.size(); i++) {
        if (cutAfterFrames >= 0 && i >= cutAfterFrames) {
          response.reset();
          return;
        }
        if (i == pauseAfterFrames && from < i) {
          int next = i;
          io.vertx.core.Vertx.currentContext()
              .owner()
              .setTimer(pause.toMillis(), ignored -> write(response, all, next));
          return;
        }
        response.write(all.get(i));
      }
      response.end();
    }

    private void block(ObjectNode contentBlock) {
      ObjectNode start =
          JSON.createObjectNode().put("type", "content_block_start").put("index", index);
      start.set("content_block", contentBlock);
      frames.add(frame("content_block_start", start));
    }

    private void delta(ObjectNode delta) {
      ObjectNode event =
          JSON.createObjectNode().put("type", "content_block_delta").put("index", index);
      event.set("delta", delta);
      frames.add(frame("content_block_delta", event));
    }

    private void stopBlock() {
      frames.add(
          frame(
              "content_block_stop",
              JSON.createObjectNode().put("type", "content_block_stop").put("index", index)));
      index++;
    }

    static void headers(HttpServerResponse response) {
      response
          .setChunked(true)
          .putHeader("content-type", "text/event-stream")
          .putHeader("cache-control", "no-cache");
    }

    static ObjectNode messageStart(JsonNode request) {
      ObjectNode start = JSON.createObjectNode().put("type", "message_start");
      ObjectNode message = start.putObject("message");
      message
          .put("id", "msg_" + Long.toHexString(System.nanoTime()))
          .put("type", "message")
          .put("role", "assistant");
      message.putArray("content");
      message.put("model", request.path("model").asText());
      message.putNull("stop_reason").putNull("stop_sequence");
      message
          .putObject("usage")
          .put("input_tokens", 100)
          .put("output_tokens", 1)
          .put("cache_creation_input_tokens", 0)
          .put("cache_read_input_tokens", 80);
      return start;
    }

    static String frame(String event, ObjectNode data) {
      return "event: " + event + "\ndata: " + data + "\n\n";
    }
  }
}
