package dev.corral.model;

import com.fasterxml.jackson.databind.JsonNode;
import dev.corral.proto.v1.ModelUsage;
import java.util.ArrayList;
import java.util.List;
import java.util.TreeMap;

/**
 * Builds a {@link ModelResponse} from the Messages API stream events: message_start,
 * content_block_start / _delta / _stop (text, thinking with its signature, redacted thinking,
 * tool_use with partial JSON), message_delta (stop reason, usage), message_stop, ping and error.
 */
final class MessageAccumulator {

  private final StreamListener listener;
  private final TreeMap<Integer, BlockBuilder> blocks = new TreeMap<>();
  private String messageId = "";
  private String stopReason = "";
  private final ModelUsage.Builder usage = ModelUsage.newBuilder();
  private boolean stopped;

  MessageAccumulator(StreamListener listener) {
    this.listener = listener;
  }

  boolean stopped() {
    return stopped;
  }

  /**
   * Takes one stream event.
   *
   * @throws ModelException for an {@code error} event
   */
  void accept(String type, JsonNode data) {
    switch (type) {
      case "message_start" -> {
        JsonNode message = data.path("message");
        messageId = message.path("id").asText("");
        addUsage(message.path("usage"));
      }
      case "content_block_start" -> start(data.path("index").asInt(), data.path("content_block"));
      case "content_block_delta" -> delta(data.path("index").asInt(), data.path("delta"));
      case "content_block_stop", "ping" -> {}
      case "message_delta" -> {
        String reason = data.path("delta").path("stop_reason").asText("");
        if (!reason.isEmpty()) {
          stopReason = reason;
        }
        addUsage(data.path("usage"));
      }
      case "message_stop" -> stopped = true;
      case "error" ->
          throw ModelException.fromStreamError(
              data.path("error").path("type").asText("api_error"),
              data.path("error").path("message").asText("the model stream reported an error"));
      default -> {}
    }
  }

  ModelResponse response() {
    List<ModelResponse.Block> done = new ArrayList<>();
    blocks.values().forEach(block -> done.add(block.build()));
    return new ModelResponse(messageId, List.copyOf(done), stopReason, usage.build());
  }

  private void start(int index, JsonNode block) {
    String type = block.path("type").asText();
    BlockBuilder builder = new BlockBuilder(type);
    switch (type) {
      case "text" -> builder.text.append(block.path("text").asText(""));
      case "thinking" -> builder.text.append(block.path("thinking").asText(""));
      case "redacted_thinking" -> builder.text.append(block.path("data").asText(""));
      case "tool_use" -> {
        builder.id = block.path("id").asText();
        builder.name = block.path("name").asText();
      }
      default -> {}
    }
    blocks.put(index, builder);
    listener.blockStarted(index, type);
  }

  private void delta(int index, JsonNode delta) {
    BlockBuilder block = blocks.get(index);
    if (block == null) {
      return;
    }
    switch (delta.path("type").asText()) {
      case "text_delta" -> {
        String text = delta.path("text").asText("");
        block.text.append(text);
        listener.textDelta(index, text);
      }
      case "thinking_delta" -> block.text.append(delta.path("thinking").asText(""));
      case "signature_delta" -> block.signature.append(delta.path("signature").asText(""));
      case "input_json_delta" -> block.json.append(delta.path("partial_json").asText(""));
      default -> {}
    }
  }

  /**
   * message_start carries the input side; message_delta the (cumulative) output side. Counts are
   * kept within 0..10⁹: a negative one would lower the session's totals and its budget, a huge one
   * overflow them.
   */
  private void addUsage(JsonNode node) {
    if (node.has("input_tokens")) {
      usage.setInputTokens(tokens(node.path("input_tokens")));
    }
    if (node.has("output_tokens")) {
      usage.setOutputTokens(tokens(node.path("output_tokens")));
    }
    if (node.has("cache_creation_input_tokens")) {
      usage.setCacheCreationInputTokens(tokens(node.path("cache_creation_input_tokens")));
    }
    if (node.has("cache_read_input_tokens")) {
      usage.setCacheReadInputTokens(tokens(node.path("cache_read_input_tokens")));
    }
  }

  private static long tokens(JsonNode count) {
    return Math.max(0, Math.min(MAX_TOKENS, count.asLong()));
  }

  private static final long MAX_TOKENS = 1_000_000_000L;

  private static final java.util.regex.Pattern TOOL_USE_ID =
      java.util.regex.Pattern.compile("[A-Za-z0-9_-]{1,256}");
  private static final java.util.regex.Pattern TOOL_NAME =
      java.util.regex.Pattern.compile("[A-Za-z0-9_-]{1,128}");

  /**
   * What makes {@code response} one the Messages API would refuse to take back in the next
   * request's history, or null. Kept, such an answer would fail every later turn of the session.
   */
  static String invalid(ModelResponse response) {
    java.util.Set<String> ids = new java.util.HashSet<>();
    for (ModelResponse.Block block : response.blocks()) {
      if (block instanceof ModelResponse.ToolUse use) {
        if (!TOOL_USE_ID.matcher(use.id()).matches()) {
          return "has a tool_use whose id is not [A-Za-z0-9_-]{1,256}";
        }
        if (!ids.add(use.id())) {
          return "has two tool_use blocks with the id " + use.id();
        }
        if (!TOOL_NAME.matcher(use.name()).matches()) {
          return "has a tool_use whose name is not [A-Za-z0-9_-]{1,128}";
        }
        if (!objectOrUnfinished(use.inputJson())) {
          return "has a tool_use " + use.id() + " whose input is not a JSON object";
        }
      } else if (block instanceof ModelResponse.Thinking thinking
          && thinking.signature().isEmpty()
          && !"refusal".equals(response.stopReason())
          && !response.cutShort()) {
        // (a reply stopped by a refusal, max_tokens or the context window may end inside its
        // thinking: the harness drops such a reply's turn, or resends only signed blocks)
        return "has a thinking block without a signature";
      }
    }
    return null;
  }

  /** A JSON object, or not JSON at all (an input cut off at max_tokens, answered as an error). */
  private static boolean objectOrUnfinished(String json) {
    try {
      return MAPPER.readTree(json).isObject();
    } catch (java.io.IOException unfinished) {
      return true;
    }
  }

  private static final com.fasterxml.jackson.databind.ObjectMapper MAPPER =
      new com.fasterxml.jackson.databind.ObjectMapper();

  private static final class BlockBuilder {
    private final String type;
    private final StringBuilder text = new StringBuilder();
    private final StringBuilder signature = new StringBuilder();
    private final StringBuilder json = new StringBuilder();
    private String id = "";
    private String name = "";

    BlockBuilder(String type) {
      this.type = type;
    }

    ModelResponse.Block build() {
      return switch (type) {
        case "thinking" -> new ModelResponse.Thinking(text.toString(), signature.toString());
        case "redacted_thinking" -> new ModelResponse.RedactedThinking(text.toString());
        case "tool_use" ->
            new ModelResponse.ToolUse(id, name, json.length() == 0 ? "{}" : json.toString());
        default -> new ModelResponse.Text(text.toString());
      };
    }
  }
}
