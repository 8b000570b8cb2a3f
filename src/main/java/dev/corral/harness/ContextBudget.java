package dev.corral.harness;

import com.fasterxml.jackson.databind.JsonNode;
import dev.corral.proto.v1.Event;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.OptionalInt;

/**
 * How large a request is against its model's context window, and where older history can be cut off
 * into a summary. Sizes are estimates without a tokenizer: a token per {@value #BYTES_PER_TOKEN}
 * bytes of the request's JSON (English text and code run at about 3.5 to 4.5), or what the last
 * call reported when that is more. An image counts {@value #IMAGE_TOKENS} tokens whatever its
 * bytes: the API scales an image to at most about 1.15 megapixels and charges its area (a 250 KB
 * photo is some 1,600 tokens, not the 80,000 its base64 would read as).
 */
final class ContextBudget {

  static final int BYTES_PER_TOKEN = 4;

  /** What one image costs, at most, in tokens. */
  static final int IMAGE_TOKENS = 1_600;

  /** The share of the window the turns kept after a compaction may take. */
  static final double KEEP_SHARE = 0.3;

  private ContextBudget() {}

  /**
   * The most tokens a request may hold before its older history is compacted: {@code compactAt} of
   * the window, and no more than leaves room in it for {@code maxTokens} of reply, since the API
   * refuses a request whose prompt and {@code max_tokens} together pass the window. A {@code
   * maxTokens} so large that compaction could not make that room (over half the window less what
   * compaction keeps) is left to the API to refuse.
   */
  /** The least {@code max_tokens} a request is sent with, however full its window. */
  static final int MIN_REPLY_TOKENS = 1_024;

  /**
   * Lowers {@code request}'s {@code max_tokens} to what {@code promptTokens} leave of the {@code
   * window}, though not below {@link #MIN_REPLY_TOKENS} nor to the thinking budget (a request that
   * still does not fit is the API's to refuse, and then compacted). Whether it changed.
   */
  static boolean leaveRoom(
      com.fasterxml.jackson.databind.node.ObjectNode request, long window, long promptTokens) {
    long asked = request.path("max_tokens").asLong();
    long room = window - promptTokens;
    if (room >= asked) {
      return false;
    }
    long least = MIN_REPLY_TOKENS;
    var thinking = request.path("thinking");
    if ("enabled".equals(thinking.path("type").asText())) {
      least = Math.max(least, thinking.path("budget_tokens").asLong() + 1);
    }
    long lowered = Math.min(asked, Math.max(least, room));
    request.put("max_tokens", lowered);
    return lowered != asked;
  }

  static long limit(long window, double compactAt, int maxTokens) {
    long share = (long) (window * compactAt);
    long room = window - maxTokens;
    return room >= window * (KEEP_SHARE + 0.2) ? Math.min(share, room) : share;
  }

  /** The estimated tokens of {@code request}. */
  static long estimate(JsonNode request) {
    return estimate(request.toString().getBytes(StandardCharsets.UTF_8).length, request);
  }

  /** The estimated tokens of {@code node}, which serializes to {@code bytes} bytes. */
  static long estimate(long bytes, JsonNode node) {
    return estimate(bytes + imageAdjustment(node));
  }

  /**
   * What the images in {@code node} change in its byte count for an estimate: each image's own
   * bytes (its base64 data or URL) out, {@link #IMAGE_TOKENS} worth of bytes in.
   */
  static long imageAdjustment(JsonNode node) {
    if (node.isArray()) {
      long adjustment = 0;
      for (JsonNode element : node) {
        adjustment += imageAdjustment(element);
      }
      return adjustment;
    }
    if (!node.isObject()) {
      return 0;
    }
    if ("image".equals(node.path("type").asText())) {
      JsonNode source = node.path("source");
      long own = source.path("data").asText("").length() + source.path("url").asText("").length();
      return (long) IMAGE_TOKENS * BYTES_PER_TOKEN - own;
    }
    long adjustment = 0;
    for (JsonNode value : node) {
      adjustment += imageAdjustment(value);
    }
    return adjustment;
  }

  /** The estimated tokens of a request of {@code bytes} bytes. */
  static long estimate(long bytes) {
    return (bytes + BYTES_PER_TOKEN - 1) / BYTES_PER_TOKEN;
  }

  /**
   * Where to cut {@code context} (the events after the latest summary, in the model's order): an
   * index where an assistant turn starts, that no event crosses (every event before it is older in
   * the log than every event after it), so that the kept turns begin with the model's and hold
   * every tool result with its call. The earliest such index whose kept events fit in {@code
   * keepTokens}, or failing that the latest; empty if there is none.
   */
  static OptionalInt cut(List<Event> context, long keepTokens) {
    return cut(context, keepTokens, false);
  }

  /**
   * {@link #cut(List, long)}, where with {@code thinking} on the kept turns must begin with a
   * thinking block: after the summary the API takes the first assistant turn as the one that
   * answers it, and with thinking on refuses one that does not start with thinking. Within a tool
   * loop only the loop's first reply thinks, so a cut inside a loop would fail every later turn.
   */
  static OptionalInt cut(List<Event> context, long keepTokens, boolean thinking) {
    int size = context.size();
    long[] minSeqFrom = new long[size + 1];
    long[] bytesFrom = new long[size + 1];
    minSeqFrom[size] = Long.MAX_VALUE;
    for (int i = size - 1; i >= 0; i--) {
      minSeqFrom[i] = Math.min(minSeqFrom[i + 1], context.get(i).getSeq());
      bytesFrom[i] = bytesFrom[i + 1] + Projection.bytesOf(context.get(i));
    }
    long maxSeqBefore = Long.MIN_VALUE;
    int latest = -1;
    // a model event that projects to nothing (a reply of blank text) belongs to no turn: it
    // neither starts one nor ends the one before
    boolean previousIsModels = false;
    for (int k = 1; k < size; k++) {
      maxSeqBefore = Math.max(maxSeqBefore, context.get(k - 1).getSeq());
      if (bytesFrom[k - 1] > bytesFrom[k]) { // the event before projects to something
        previousIsModels = isModels(context.get(k - 1));
      }
      boolean turnStarts =
          isModels(context.get(k))
              && bytesFrom[k] > bytesFrom[k + 1]
              && !previousIsModels
              && (!thinking || context.get(k).hasAgentThinking());
      if (!turnStarts || maxSeqBefore >= minSeqFrom[k]) {
        continue;
      }
      if (bytesFrom[k] / BYTES_PER_TOKEN <= keepTokens) {
        return OptionalInt.of(k);
      }
      latest = k;
    }
    return latest < 0 ? OptionalInt.empty() : OptionalInt.of(latest);
  }

  private static boolean isModels(Event event) {
    return switch (event.getPayloadCase()) {
      case AGENT_THINKING,
          AGENT_MESSAGE,
          AGENT_TOOL_USE,
          AGENT_CUSTOM_TOOL_USE,
          AGENT_MCP_TOOL_USE ->
          true;
      default -> false;
    };
  }
}
