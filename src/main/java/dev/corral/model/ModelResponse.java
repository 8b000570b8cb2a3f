package dev.corral.model;

import dev.corral.proto.v1.ModelUsage;
import java.util.List;

/** A complete model response: its blocks in order, why it stopped, and what it cost. */
public record ModelResponse(
    String messageId, List<Block> blocks, String stopReason, ModelUsage usage) {

  /**
   * Whether the reply was cut off by a limit, possibly mid-block: its output limit ({@code
   * max_tokens}) or the model's context window ({@code model_context_window_exceeded}, which newer
   * models return instead of refusing a request whose prompt and {@code max_tokens} pass the
   * window).
   */
  public boolean cutShort() {
    return "max_tokens".equals(stopReason) || "model_context_window_exceeded".equals(stopReason);
  }

  /** One content block of the response. */
  public sealed interface Block permits Text, Thinking, RedactedThinking, ToolUse {}

  public record Text(String text) implements Block {}

  public record Thinking(String thinking, String signature) implements Block {}

  public record RedactedThinking(String data) implements Block {}

  /** A tool call; {@code inputJson} is the complete input object. */
  public record ToolUse(String id, String name, String inputJson) implements Block {}
}
