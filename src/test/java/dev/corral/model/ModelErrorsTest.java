package dev.corral.model;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.vertx.core.Vertx;
import java.net.ServerSocket;
import java.time.Duration;
import java.util.Optional;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/** A failed model call says what failed, and whether another attempt can help. */
class ModelErrorsTest {

  private final Vertx vertx = Vertx.vertx();

  @AfterEach
  void close() {
    vertx.close().toCompletionStage().toCompletableFuture().join();
  }

  @Test
  void withoutAnApiKeyTheCallFailsAtOnceSayingHowToSetOneAndIsNotRetried() {
    ModelException failure = call(config("http://127.0.0.1:9", Optional.empty()));

    assertThat(failure.retryable()).isFalse();
    assertThat(failure.getMessage()).contains("ANTHROPIC_API_KEY");
    assertThat(failure.errorType()).isEqualTo("authentication_error");
  }

  @Test
  void onlyARefusalOfWhatTheMessagesHoldCountsAsRefusedInput() {
    assertThat(
            java.util.stream.Stream.of(
                ModelException.fromStatus(
                    400, "invalid_request_error", "Could not process image", null),
                ModelException.fromStatus(
                    400, "invalid_request_error", "Unable to download the file.", null),
                ModelException.fromStatus(
                    400,
                    "invalid_request_error",
                    "messages.2.content.0.image.source.base64.data: invalid base64",
                    null),
                // as the client words an HTTP error: its status and type, then the API's message
                ModelException.fromStatus(
                    400,
                    "invalid_request_error",
                    "HTTP 400 invalid_request_error: messages.4.content.0.text: field required",
                    null),
                ModelException.fromStatus(
                    400,
                    "invalid_request_error",
                    "prompt is too long: 9000 tokens > 8000 maximum",
                    null),
                ModelException.fromStatus(
                    413, "request_too_large", "Request exceeds the maximum size", null),
                ModelException.fromStreamError("invalid_request_error", "Could not process image")))
        .allMatch(ModelException::inputRefused);
    assertThat(
            java.util.stream.Stream.of(
                ModelException.fromStatus(
                    400,
                    "invalid_request_error",
                    "Your credit balance is too low to access the Anthropic API.",
                    null),
                ModelException.fromStatus(
                    400,
                    "invalid_request_error",
                    "max_tokens: 100000 > 64000, which is the maximum allowed number of output tokens",
                    null),
                ModelException.fromStatus(
                    400,
                    "invalid_request_error",
                    "tools.0.custom.input_schema: JSON schema is invalid",
                    null),
                ModelException.fromStatus(
                    400, "invalid_request_error", "messages: roles must alternate", null),
                ModelException.fromStatus(401, "authentication_error", "invalid x-api-key", null),
                ModelException.fromStatus(404, "not_found_error", "model: claude-x", null),
                ModelException.fromStatus(529, "overloaded_error", "Overloaded", null)))
        .noneMatch(ModelException::inputRefused);
  }

  @Test
  void aPromptThatLeavesNoRoomForTheReplyIsTooLongAndSaysItsTokens() {
    ModelException refused =
        ModelException.fromStatus(
            400,
            "invalid_request_error",
            "HTTP 400 invalid_request_error: input length and `max_tokens` exceed context limit:"
                + " 188240 + 21333 > 200000, decrease input length or `max_tokens` and try again",
            null);
    assertThat(refused.promptTooLong()).isTrue();
    assertThat(refused.retryable()).isTrue();
    assertThat(refused.promptTokens()).hasValue(188_240L);
    assertThat(
            ModelException.fromStatus(
                    400, "invalid_request_error", "prompt is too long: 9000 tokens > 8000", null)
                .promptTokens())
        .hasValue(9_000L);
  }

  @Test
  void anUnknownHostIsNamedWithItsUrl() {
    ModelException failure =
        call(config("https://api.anthropic.invalid", Optional.of("sk-anything")));

    assertThat(failure.getMessage())
        .isEqualTo("cannot reach https://api.anthropic.invalid: unknown host");
    assertThat(failure.retryable()).isTrue();
  }

  @Test
  void aRefusedConnectionIsNamedWithItsUrl() throws Exception {
    int port;
    try (ServerSocket free = new ServerSocket(0)) {
      port = free.getLocalPort();
    }
    ModelException failure = call(config("http://127.0.0.1:" + port, Optional.of("sk-anything")));

    assertThat(failure.getMessage())
        .isEqualTo("cannot reach http://127.0.0.1:" + port + ": connection refused");
  }

  @Test
  void anErrorAnswerThatNeverEndsIsReadNoFurtherThanItsBound() throws Exception {
    // Given a base URL whose error answer goes on for ever (not the Messages API)
    io.vertx.core.http.HttpServer server =
        vertx
            .createHttpServer()
            .requestHandler(
                request -> {
                  var response = request.response().setStatusCode(500).setChunked(true);
                  response.write("{\"error\":{\"type\":\"api_error\",\"message\":\"");
                  vertx.setPeriodic(
                      5,
                      timer -> {
                        if (response.closed() || response.ended()) {
                          vertx.cancelTimer(timer);
                        } else {
                          response.write("x".repeat(16 * 1024));
                        }
                      });
                })
            .listen(0, "127.0.0.1")
            .toCompletionStage()
            .toCompletableFuture()
            .get(10, java.util.concurrent.TimeUnit.SECONDS);

    // When a call gets it
    long started = System.nanoTime();
    ModelException failure =
        call(config("http://127.0.0.1:" + server.actualPort(), Optional.of("sk-anything")));

    // Then the call fails on its status once the bound is read, without waiting for an end
    assertThat(failure.status()).isEqualTo(500);
    assertThat(failure.retryable()).isTrue();
    assertThat(Duration.ofNanos(System.nanoTime() - started)).isLessThan(Duration.ofSeconds(10));
  }

  private ModelException call(ModelConfig config) {
    AnthropicMessages messages = new AnthropicMessages(vertx, config);
    try {
      messages.stream(
              AnthropicMessages.serialize(new ObjectMapper().createObjectNode().put("model", "m")),
              StreamListener.NONE)
          .await()
          .atMost(Duration.ofSeconds(30));
    } catch (ModelException expected) {
      return expected;
    }
    throw new AssertionError("the call did not fail");
  }

  private static ModelConfig config(String baseUrl, Optional<String> key) {
    return new ModelConfig() {
      public String baseUrl() {
        return baseUrl;
      }

      public Optional<String> apiKey() {
        return key;
      }

      public String anthropicVersion() {
        return "2023-06-01";
      }

      public int maxTokens() {
        return 1024;
      }

      public int thinkingBudgetTokens() {
        return 0;
      }

      public Duration responseTimeout() {
        return Duration.ofSeconds(10);
      }

      public Duration idleTimeout() {
        return Duration.ofSeconds(10);
      }

      public int maxRetries() {
        return 0;
      }

      public Duration retryInitialBackoff() {
        return Duration.ofSeconds(1);
      }

      public Duration retryMaxBackoff() {
        return Duration.ofSeconds(1);
      }

      public Duration retryAfterMax() {
        return Duration.ofMinutes(10);
      }

      public int contextWindowTokens() {
        return 200_000;
      }

      public java.util.Map<String, Integer> contextWindows() {
        return java.util.Map.of();
      }

      public double compactAt() {
        return 0.8;
      }
    };
  }
}
