package dev.corral.testing;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.HashSet;
import java.util.Optional;
import java.util.Set;

/**
 * The Messages API's rules for a request body, as the real API enforces them (its 400
 * invalid_request_error answers), so that the fake model refuses what the real one would. One rule
 * is corral's own, stricter than the API: a request never ends with an assistant turn (the API
 * would take it as a prefill and continue it; with thinking on it refuses it).
 */
public final class MessagesRules {

  private static final int MAX_CACHE_BREAKPOINTS = 4;
  private static final int MIN_THINKING_BUDGET = 1024;

  private MessagesRules() {}

  /** Why the API would refuse {@code request}, or empty if it would take it. */
  public static Optional<String> violation(JsonNode request) {
    try {
      check(request);
      return Optional.empty();
    } catch (Refused refused) {
      return Optional.of(refused.getMessage());
    }
  }

  private static void check(JsonNode request) {
    require(request.path("model").isTextual(), "model: Field required");
    require(request.path("max_tokens").isIntegralNumber(), "max_tokens: Field required");
    long maxTokens = request.path("max_tokens").asLong();
    require(maxTokens >= 1, "max_tokens: must be at least 1");
    JsonNode thinking = request.path("thinking");
    boolean thinkingOn = thinking.path("type").asText().equals("enabled");
    if (thinkingOn) {
      long budget = thinking.path("budget_tokens").asLong();
      require(budget >= MIN_THINKING_BUDGET, "thinking.budget_tokens: must be at least 1024");
      require(budget < maxTokens, "`max_tokens` must be greater than `thinking.budget_tokens`");
    }
    JsonNode messages = request.path("messages");
    require(messages.isArray(), "messages: Field required");
    require(!messages.isEmpty(), "messages: at least one message is required");
    int breakpoints =
        countBreakpoints(request.path("system")) + countBreakpoints(request.path("tools"));
    Set<String> toolUseIds = new HashSet<>();
    Set<String> openToolUses = new HashSet<>();
    String previousRole = null;
    for (int i = 0; i < messages.size(); i++) {
      JsonNode message = messages.get(i);
      String role = message.path("role").asText();
      String at = "messages." + i;
      require(
          role.equals("user") || role.equals("assistant"), at + ".role: must be user or assistant");
      if (i == 0) {
        require(role.equals("user"), at + ": the first message must use the \"user\" role");
      } else {
        require(
            !role.equals(previousRole),
            at
                + ": roles must alternate between \"user\" and \"assistant\", but found multiple \""
                + role
                + "\" roles in a row");
      }
      JsonNode content = message.path("content");
      require(
          (content.isTextual() && !content.asText().isEmpty())
              || (content.isArray() && !content.isEmpty()),
          at + ": all messages must have non-empty content");
      breakpoints += countBreakpoints(content);
      if (role.equals("user")) {
        Set<String> answered = new HashSet<>();
        boolean otherContentSeen = false;
        for (int b = 0; content.isArray() && b < content.size(); b++) {
          JsonNode block = content.get(b);
          String type = block.path("type").asText();
          if (type.equals("tool_result")) {
            String id = block.path("tool_use_id").asText();
            require(
                openToolUses.contains(id),
                at
                    + ".content."
                    + b
                    + ": unexpected `tool_use_id` found in `tool_result` blocks: "
                    + id
                    + ". Each `tool_result` block must have a corresponding `tool_use` block in the"
                    + " previous message.");
            require(!otherContentSeen, at + ": `tool_result` blocks must come first");
            answered.add(id);
            checkToolResultContent(block, at + ".content." + b);
          } else {
            otherContentSeen = true;
            checkUserBlock(block, at + ".content." + b);
          }
        }
        openToolUses.removeAll(answered);
        require(
            openToolUses.isEmpty(),
            at
                + ": `tool_use` ids were found without `tool_result` blocks immediately after: "
                + String.join(", ", openToolUses)
                + ". Each `tool_use` block must have a corresponding `tool_result` block in the"
                + " next message.");
      } else {
        require(
            openToolUses.isEmpty(),
            at + ": `tool_use` ids were found without `tool_result` blocks immediately after");
        for (int b = 0; content.isArray() && b < content.size(); b++) {
          JsonNode block = content.get(b);
          String type = block.path("type").asText();
          String where = at + ".content." + b;
          switch (type) {
            case "text" -> checkText(block, where);
            case "thinking" ->
                require(block.path("signature").isTextual(), where + ".signature: Field required");
            case "redacted_thinking" ->
                require(block.path("data").isTextual(), where + ".data: Field required");
            case "tool_use" -> {
              String id = block.path("id").asText();
              require(!id.isEmpty(), where + ".id: Field required");
              require(toolUseIds.add(id), where + ": `tool_use` ids must be unique");
              require(block.path("name").isTextual(), where + ".name: Field required");
              require(block.path("input").isObject(), where + ".input: Input should be an object");
              openToolUses.add(id);
            }
            default -> throw new Refused(where + ".type: unexpected block type " + type);
          }
        }
      }
      previousRole = role;
    }
    require(
        previousRole.equals("user"),
        thinkingOn
            ? "When thinking is enabled, a final `assistant` message must start with a thinking"
                + " block (a prefill is not allowed)"
            : "corral must not send a final `assistant` message (a prefill)");
    require(
        breakpoints <= MAX_CACHE_BREAKPOINTS,
        "A maximum of 4 blocks with cache_control may be provided. Found " + breakpoints + ".");
    JsonNode tools = request.path("tools");
    for (int i = 0; i < tools.size(); i++) {
      require(
          TOOL_NAME.matcher(tools.get(i).path("name").asText()).matches(),
          "tools." + i + ".custom.name: String should match pattern '^[a-zA-Z0-9_-]{1,128}$'");
    }
    boolean toolBlocks = false;
    for (JsonNode message : messages) {
      for (JsonNode block : message.path("content")) {
        String type = block.path("type").asText();
        toolBlocks |= type.equals("tool_use") || type.equals("tool_result");
      }
    }
    require(
        !toolBlocks || tools.size() > 0,
        "Requests which include `tool_use` or `tool_result` blocks must define tools.");
  }

  private static final java.util.regex.Pattern TOOL_NAME =
      java.util.regex.Pattern.compile("[a-zA-Z0-9_-]{1,128}");

  private static void checkUserBlock(JsonNode block, String where) {
    switch (block.path("type").asText()) {
      case "text" -> checkText(block, where);
      case "image" -> {
        JsonNode source = block.path("source");
        String type = source.path("type").asText();
        require(type.equals("base64") || type.equals("url"), where + ".source.type: invalid");
      }
      default -> throw new Refused(where + ".type: unexpected block type in a user message");
    }
  }

  private static void checkToolResultContent(JsonNode block, String where) {
    JsonNode content = block.path("content");
    if (content.isMissingNode() || content.isTextual()) {
      return;
    }
    require(content.isArray(), where + ".content: must be a string or a list of blocks");
    for (int i = 0; i < content.size(); i++) {
      checkUserBlock(content.get(i), where + ".content." + i);
    }
  }

  private static void checkText(JsonNode block, String where) {
    require(block.path("text").isTextual(), where + ".text: Field required");
    require(
        !block.path("text").asText().isBlank(),
        where + ": text content blocks must contain non-whitespace text");
  }

  private static int countBreakpoints(JsonNode blocks) {
    int count = 0;
    if (blocks.isArray()) {
      for (JsonNode block : blocks) {
        if (block.has("cache_control")) {
          count++;
        }
        count += countBreakpoints(block.path("content"));
      }
    }
    return count;
  }

  private static void require(boolean rule, String message) {
    if (!rule) {
      throw new Refused(message);
    }
  }

  private static final class Refused extends RuntimeException {
    Refused(String message) {
      super(message, null, false, false);
    }
  }
}
