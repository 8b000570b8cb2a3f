package dev.corral.testing;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.HashSet;
import java.util.Iterator;
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
    requirePairedSurrogates(request);
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
    JsonNode system = request.path("system");
    if (system.isTextual()) {
      require(
          !system.asText().isBlank(),
          "system: text content blocks must contain non-whitespace text");
    } else if (system.isArray()) {
      for (int i = 0; i < system.size(); i++) {
        require(
            system.get(i).path("type").asText().equals("text"),
            "system." + i + ".type: must be text");
        checkText(system.get(i), "system." + i);
      }
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
            require(
                answered.add(id),
                at + ".content." + b + ": each `tool_use` must have a single `tool_result` block");
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
            case "thinking" -> {
              String signature = block.path("signature").asText("");
              require(!signature.isEmpty(), where + ".signature: Field required");
              // the fake signs its own thinking as sig-<length>: a block sent back changed fails
              // its signature, as the API's would
              require(
                  !signature.startsWith(FakeAnthropic.SIGNATURE_PREFIX)
                      || signature.equals(
                          FakeAnthropic.SIGNATURE_PREFIX
                              + block.path("thinking").asText().length()),
                  where + ": Invalid `signature` in `thinking` block");
              require(
                  !block.has("cache_control"),
                  where + ".cache_control: thinking blocks cannot be cached directly");
            }
            case "redacted_thinking" ->
                require(block.path("data").isTextual(), where + ".data: Field required");
            case "tool_use" -> {
              String id = block.path("id").asText();
              require(!id.isEmpty(), where + ".id: Field required");
              require(
                  id.matches("[a-zA-Z0-9_-]+"),
                  where + ".id: String should match pattern '^[a-zA-Z0-9_-]+$'");
              require(toolUseIds.add(id), where + ": `tool_use` ids must be unique");
              require(block.path("name").isTextual(), where + ".name: Field required");
              require(block.path("input").isObject(), where + ".input: Input should be an object");
              openToolUses.add(id);
            }
            default -> throw new Refused(where + ".type: unexpected block type " + type);
          }
        }
        String lastType =
            content.isArray() && content.size() > 0
                ? content.get(content.size() - 1).path("type").asText()
                : "";
        require(
            !lastType.equals("thinking") && !lastType.equals("redacted_thinking"),
            at + ": The final block in an assistant message cannot be `" + lastType + "`.");
      }
      previousRole = role;
    }
    if (thinkingOn && messages.size() >= 2) {
      JsonNode lastUser = messages.get(messages.size() - 1).path("content");
      boolean answersCalls =
          lastUser.isArray() && lastUser.path(0).path("type").asText().equals("tool_result");
      // The assistant turn in a tool loop is every assistant message since the last user message
      // that is not tool results; the model thinks at its start only, and its first message must
      // begin with that thinking.
      int turnStart = messages.size() - 2;
      while (turnStart >= 2
          && messages
              .get(turnStart - 1)
              .path("content")
              .path(0)
              .path("type")
              .asText()
              .equals("tool_result")) {
        turnStart -= 2;
      }
      String first = messages.get(turnStart).path("content").path(0).path("type").asText();
      require(
          !answersCalls || first.equals("thinking") || first.equals("redacted_thinking"),
          "messages."
              + turnStart
              + ".content.0.type: Expected `thinking` or `redacted_thinking`, but found `"
              + first
              + "`. When `thinking` is enabled, a final `assistant` message must start with a"
              + " thinking block (preceeding the lastmost set of `tool_use` and `tool_result`"
              + " blocks).");
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
    Set<String> toolNames = new HashSet<>();
    for (int i = 0; i < tools.size(); i++) {
      String name = tools.get(i).path("name").asText();
      require(
          TOOL_NAME.matcher(name).matches(),
          "tools." + i + ".custom.name: String should match pattern '^[a-zA-Z0-9_-]{1,128}$'");
      require(toolNames.add(name), "tools: Tool names must be unique.");
      JsonNode schema = tools.get(i).path("input_schema");
      require(
          schema.path("type").asText().equals("object"),
          "tools." + i + ".custom.input_schema.type: Input should be 'object'");
      require(
          !schema.has("oneOf") && !schema.has("allOf") && !schema.has("anyOf"),
          "tools."
              + i
              + ".custom.input_schema: input_schema does not support oneOf, allOf, or anyOf at"
              + " the top level");
      for (Iterator<String> keys = schema.path("properties").fieldNames(); keys.hasNext(); ) {
        require(
            PROPERTY_KEY.matcher(keys.next()).matches(),
            "tools."
                + i
                + ".custom.input_schema.properties: Property keys should match pattern"
                + " '^[a-zA-Z0-9_.-]{1,64}$'");
      }
    }
    JsonNode choice = request.path("tool_choice");
    if (!choice.isMissingNode()) {
      String type = choice.path("type").asText();
      require(
          java.util.List.of("auto", "any", "tool", "none").contains(type),
          "tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'");
      require(
          !tools.isEmpty() || type.equals("none"),
          "tool_choice may only be specified while providing tools.");
      require(
          !thinkingOn || type.equals("auto") || type.equals("none"),
          "Thinking may not be enabled when tool_choice forces tool use.");
      require(
          !type.equals("tool") || toolNames.contains(choice.path("name").asText()),
          "tool_choice.name: names no tool of the request");
    }
    int images = 0;
    for (JsonNode message : messages) {
      for (JsonNode block : message.path("content")) {
        require(
            !block.path("type").asText().equals("tool_use")
                || toolNames.contains(block.path("name").asText()),
            "tool_use names a tool that `tools` does not define: " + block.path("name").asText());
        images += countImages(block);
      }
    }
    require(images <= MAX_IMAGES, "messages: too many images (at most " + MAX_IMAGES + ")");
    long tokens = estimatedTokens(request);
    long window = contextWindow(request.path("model").asText());
    require(tokens <= window, "prompt is too long: " + tokens + " tokens > " + window + " maximum");
    require(
        tokens + request.path("max_tokens").asLong() <= window,
        "input length and `max_tokens` exceed context limit: "
            + tokens
            + " + "
            + request.path("max_tokens").asLong()
            + " > "
            + window
            + ", decrease input length or `max_tokens` and try again");
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

  private static final int MAX_IMAGES = 100;
  private static final int MAX_IMAGE_BYTES = 5 * 1024 * 1024;
  private static final Set<String> IMAGE_TYPES =
      Set.of("image/jpeg", "image/png", "image/gif", "image/webp");

  /** The window of the test's models: "claude-small" is small, the rest 200,000 tokens. */
  private static long contextWindow(String model) {
    return model.equals("claude-small") ? HarnessTestProfile.SMALL_WINDOW : 200_000;
  }

  /**
   * The fake's count of a request's tokens: a token per 4 bytes of JSON, an image 1,600 tokens (a
   * tokenizer would count differently; a prompt too long by this count is surely too long).
   */
  private static long estimatedTokens(JsonNode request) {
    long imageBytes = 0;
    int images = 0;
    for (JsonNode message : request.path("messages")) {
      for (JsonNode block : message.path("content")) {
        images += countImages(block);
        imageBytes += imageBytes(block);
      }
    }
    long bytes = request.toString().getBytes(java.nio.charset.StandardCharsets.UTF_8).length;
    return (bytes - imageBytes) / 4 + 1_600L * images;
  }

  private static int countImages(JsonNode block) {
    if (block.path("type").asText().equals("image")) {
      return 1;
    }
    int images = 0;
    for (JsonNode inner : block.path("content")) {
      images += countImages(inner);
    }
    return images;
  }

  private static long imageBytes(JsonNode block) {
    if (block.path("type").asText().equals("image")) {
      return block.path("source").path("data").asText("").length();
    }
    long bytes = 0;
    for (JsonNode inner : block.path("content")) {
      bytes += imageBytes(inner);
    }
    return bytes;
  }

  /** A string with half of a surrogate pair is not valid JSON to the API's parser. */
  private static void requirePairedSurrogates(JsonNode node) {
    if (node.isTextual()) {
      String text = node.asText();
      for (int i = 0; i < text.length(); i++) {
        char c = text.charAt(i);
        if (Character.isHighSurrogate(c)
            && i + 1 < text.length()
            && Character.isLowSurrogate(text.charAt(i + 1))) {
          i++;
        } else {
          require(
              !Character.isSurrogate(c),
              "The request body is not valid JSON: no low surrogate in string");
        }
      }
      return;
    }
    node.fieldNames().forEachRemaining(name -> requirePairedSurrogates(TEXT.textNode(name)));
    for (JsonNode child : node) {
      requirePairedSurrogates(child);
    }
  }

  private static final com.fasterxml.jackson.databind.node.JsonNodeFactory TEXT =
      com.fasterxml.jackson.databind.node.JsonNodeFactory.instance;

  private static final java.util.regex.Pattern PROPERTY_KEY =
      java.util.regex.Pattern.compile("[a-zA-Z0-9_.-]{1,64}");

  private static final java.util.regex.Pattern TOOL_NAME =
      java.util.regex.Pattern.compile("[a-zA-Z0-9_-]{1,128}");

  private static void checkUserBlock(JsonNode block, String where) {
    switch (block.path("type").asText()) {
      case "text" -> checkText(block, where);
      case "image" -> {
        JsonNode source = block.path("source");
        String type = source.path("type").asText();
        require(type.equals("base64") || type.equals("url"), where + ".source.type: invalid");
        if (type.equals("base64")) {
          require(
              IMAGE_TYPES.contains(source.path("media_type").asText()),
              where
                  + ".source.media_type: Input should be 'image/jpeg', 'image/png', 'image/gif'"
                  + " or 'image/webp'");
          byte[] data;
          try {
            data = java.util.Base64.getDecoder().decode(source.path("data").asText());
          } catch (IllegalArgumentException e) {
            throw new Refused(where + ".source.data: invalid base64 data");
          }
          require(data.length > 0, where + ".source.data: image is empty");
          require(data.length <= MAX_IMAGE_BYTES, where + ": image exceeds 5 MB maximum");
        } else {
          require(
              source.path("url").asText().startsWith("https://"),
              where + ".source.url: only https URLs are supported");
        }
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
      require(
          !block.path("is_error").asBoolean(false)
              || content.get(i).path("type").asText().equals("text"),
          where + ".content: all content must be type 'text' if 'is_error' is true");
    }
  }

  private static void checkText(JsonNode block, String where) {
    require(block.path("text").isTextual(), where + ".text: Field required");
    require(
        !pythonBlank(block.path("text").asText()),
        where + ": text content blocks must contain non-whitespace text");
  }

  /** Python's {@code str.isspace} (or empty), which the API's checks are taken to follow. */
  private static boolean pythonBlank(String text) {
    return text.codePoints()
        .allMatch(
            c ->
                c == 0x85
                    || c == 0xa0
                    || c == 0x2007
                    || c == 0x202f
                    || Character.isWhitespace(c)
                    || Character.getType(c) == Character.SPACE_SEPARATOR);
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
