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
 * call reported when that is more.
 */
final class ContextBudget {

  static final int BYTES_PER_TOKEN = 4;

  /** The share of the window the turns kept after a compaction may take. */
  static final double KEEP_SHARE = 0.3;

  private ContextBudget() {}

  /** The estimated tokens of {@code request}. */
  static long estimate(JsonNode request) {
    return estimate(request.toString().getBytes(StandardCharsets.UTF_8).length);
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
    for (int k = 1; k < size; k++) {
      maxSeqBefore = Math.max(maxSeqBefore, context.get(k - 1).getSeq());
      boolean turnStarts = isModels(context.get(k)) && !isModels(context.get(k - 1));
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
