package dev.corral.model;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

class MessageAccumulatorTest {

  private static final ObjectMapper JSON = new ObjectMapper();
  private final List<String> deltas = new ArrayList<>();
  private final MessageAccumulator message =
      new MessageAccumulator(
          new StreamListener() {
            @Override
            public void blockStarted(int index, String type) {
              deltas.add("start " + index + " " + type);
            }

            @Override
            public void textDelta(int index, String text) {
              deltas.add(index + ":" + text);
            }
          });

  @Test
  void thinkingTextAndToolUseBlocksComeOutWhole() throws Exception {
    feed(
        "message_start",
        "{\"message\":{\"id\":\"msg_1\",\"usage\":{\"input_tokens\":10,\"cache_read_input_tokens\":7}}}");
    feed(
        "content_block_start",
        "{\"index\":0,\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\"}}");
    feed(
        "content_block_delta",
        "{\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"hmm\"}}");
    feed(
        "content_block_delta",
        "{\"index\":0,\"delta\":{\"type\":\"signature_delta\",\"signature\":\"sig\"}}");
    feed(
        "content_block_start", "{\"index\":1,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}");
    feed(
        "content_block_delta",
        "{\"index\":1,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hel\"}}");
    feed(
        "content_block_delta", "{\"index\":1,\"delta\":{\"type\":\"text_delta\",\"text\":\"lo\"}}");
    feed("ping", "{}");
    feed(
        "content_block_start",
        "{\"index\":2,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"bash\",\"input\":{}}}");
    feed(
        "content_block_delta",
        "{\"index\":2,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"command\\\":\"}}");
    feed(
        "content_block_delta",
        "{\"index\":2,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\\\"ls\\\"}\"}}");
    feed(
        "message_delta",
        "{\"delta\":{\"stop_reason\":\"tool_use\"},\"usage\":{\"output_tokens\":33}}");
    feed("message_stop", "{}");

    ModelResponse response = message.response();
    assertThat(message.stopped()).isTrue();
    assertThat(response.blocks())
        .containsExactly(
            new ModelResponse.Thinking("hmm", "sig"),
            new ModelResponse.Text("Hello"),
            new ModelResponse.ToolUse("toolu_1", "bash", "{\"command\":\"ls\"}"));
    assertThat(response.stopReason()).isEqualTo("tool_use");
    assertThat(response.usage().getInputTokens()).isEqualTo(10);
    assertThat(response.usage().getOutputTokens()).isEqualTo(33);
    assertThat(response.usage().getCacheReadInputTokens()).isEqualTo(7);
    assertThat(deltas)
        .containsExactly("start 0 thinking", "start 1 text", "1:Hel", "1:lo", "start 2 tool_use");
  }

  @Test
  void errorEventFailsTheCallAsRetryableWhenOverloaded() {
    assertThatThrownBy(
            () ->
                feed(
                    "error",
                    "{\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}"))
        .isInstanceOfSatisfying(
            ModelException.class,
            e -> {
              assertThat(e.retryable()).isTrue();
              assertThat(e.sessionErrorType()).isEqualTo("model_overloaded_error");
            });
    assertThatThrownBy(
            () ->
                feed(
                    "error",
                    "{\"error\":{\"type\":\"invalid_request_error\",\"message\":\"bad\"}}"))
        .isInstanceOfSatisfying(ModelException.class, e -> assertThat(e.retryable()).isFalse());
  }

  @Test
  void aReplyCutOffByTheContextWindowMayEndInsideItsThinkingAsAtMaxTokens() throws Exception {
    feed("message_start", "{\"message\":{\"id\":\"msg_2\",\"usage\":{\"input_tokens\":9}}}");
    feed(
        "content_block_start",
        "{\"index\":0,\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\"}}");
    feed(
        "content_block_delta",
        "{\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"so\"}}");
    feed(
        "message_delta",
        "{\"delta\":{\"stop_reason\":\"model_context_window_exceeded\"},"
            + "\"usage\":{\"output_tokens\":2}}");
    feed("message_stop", "{}");

    ModelResponse response = message.response();

    assertThat(MessageAccumulator.invalid(response)).isNull();
    assertThat(
            MessageAccumulator.invalid(
                new ModelResponse(
                    response.messageId(), response.blocks(), "end_turn", response.usage())))
        .isEqualTo("has a thinking block without a signature");
  }

  private void feed(String type, String data) throws Exception {
    message.accept(type, JSON.readTree(data));
  }
}
