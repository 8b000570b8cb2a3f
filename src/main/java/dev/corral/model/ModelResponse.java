package dev.corral.model;

import dev.corral.proto.v1.ModelUsage;
import java.util.List;

/** A complete model response: its blocks in order, why it stopped, and what it cost. */
public record ModelResponse(
    String messageId, List<Block> blocks, String stopReason, ModelUsage usage) {

  /** One content block of the response. */
  public sealed interface Block permits Text, Thinking, RedactedThinking, ToolUse {}

  public record Text(String text) implements Block {}

  public record Thinking(String thinking, String signature) implements Block {}

  public record RedactedThinking(String data) implements Block {}

  /** A tool call; {@code inputJson} is the complete input object. */
  public record ToolUse(String id, String name, String inputJson) implements Block {}
}
