package dev.corral.tool;

import com.fasterxml.jackson.databind.JsonNode;
import dev.corral.common.InvalidArgumentException;
import dev.corral.common.Json;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Iterator;
import java.util.List;
import java.util.Set;

/**
 * A built-in tool call with its input checked against the tool's schema. Parsing throws {@link
 * InvalidArgumentException} naming the field (under {@code field}, e.g. "input_json").
 */
public sealed interface ToolInput {

  /** A tool input's JSON text is at most this many bytes in UTF-8 (1 MiB). */
  int MAX_INPUT_BYTES = 1 << 20;

  BuiltInTool tool();

  record Bash(String command, boolean restart, Duration timeout) implements ToolInput {
    public BuiltInTool tool() {
      return BuiltInTool.BASH;
    }
  }

  record Read(String path, int fromLine, int toLine) implements ToolInput {
    public BuiltInTool tool() {
      return BuiltInTool.READ;
    }
  }

  record Write(String path, byte[] content) implements ToolInput {
    public BuiltInTool tool() {
      return BuiltInTool.WRITE;
    }
  }

  record Edit(String path, byte[] oldString, byte[] newString, boolean replaceAll)
      implements ToolInput {
    public BuiltInTool tool() {
      return BuiltInTool.EDIT;
    }
  }

  record Glob(String pattern, String path) implements ToolInput {
    public BuiltInTool tool() {
      return BuiltInTool.GLOB;
    }
  }

  record Grep(String pattern, String path) implements ToolInput {
    public BuiltInTool tool() {
      return BuiltInTool.GREP;
    }
  }

  /**
   * A slice of the session's own log: after {@code afterSeq}, or just before {@code beforeSeq}
   * (when above 0), or the last events (neither given).
   */
  record SessionLog(long afterSeq, long beforeSeq, boolean last, List<String> types, int limit)
      implements ToolInput {
    public BuiltInTool tool() {
      return BuiltInTool.SESSION_LOG;
    }
  }

  /** How many bytes {@code text} is in UTF-8 (a lone surrogate counts 3). */
  private static long utf8Length(String text) {
    long bytes = 0;
    for (int i = 0; i < text.length(); i++) {
      char c = text.charAt(i);
      if (c < 0x80) {
        bytes += 1;
      } else if (c < 0x800) {
        bytes += 2;
      } else if (Character.isHighSurrogate(c)
          && i + 1 < text.length()
          && Character.isLowSurrogate(text.charAt(i + 1))) {
        bytes += 4;
        i++;
      } else {
        bytes += 3;
      }
    }
    return bytes;
  }

  /**
   * Parses {@code inputJson} for the tool {@code name}.
   *
   * @param nameField and {@code inputField}: the request fields, for error messages
   */
  static ToolInput parse(String nameField, String name, String inputField, String inputJson) {
    // a UTF-16 unit is 1 to 3 bytes in UTF-8 (a pair of them 4): count only when it may matter
    if (inputJson.length() > MAX_INPUT_BYTES
        || (inputJson.length() > MAX_INPUT_BYTES / 3 && utf8Length(inputJson) > MAX_INPUT_BYTES)) {
      throw new InvalidArgumentException(
          inputField,
          "is larger than " + (MAX_INPUT_BYTES >> 20) + " MiB, the limit of a tool input");
    }
    BuiltInTool tool =
        BuiltInTool.named(name)
            .orElseThrow(
                () ->
                    new InvalidArgumentException(
                        nameField,
                        "'"
                            + name
                            + "' is not a tool; use one of "
                            + String.join(
                                ", ",
                                java.util.Arrays.stream(BuiltInTool.values())
                                    .map(BuiltInTool::toolName)
                                    .toList())));
    JsonNode input;
    try {
      input = Json.requireObject(inputField, inputJson.isEmpty() ? "{}" : inputJson);
    } catch (InvalidArgumentException unreadable) {
      if (!unreadable.getMessage().contains("is not valid JSON")) {
        throw unreadable;
      }
      // what a model reads when its reply was cut at max_tokens in the middle of a call
      throw new InvalidArgumentException(
          inputField,
          "is not valid JSON, so nothing ran (a reply cut off at its max_tokens leaves a call's"
              + " input unfinished: make the call smaller, e.g. write a large file in parts)");
    }
    Fields fields = new Fields(inputField, input);
    return switch (tool) {
      case BASH -> {
        fields.only("command", "restart", "timeout_ms");
        boolean restart = fields.bool("restart");
        String command = fields.optionalString("command");
        if (command.isEmpty() && !restart) {
          throw new InvalidArgumentException(
              inputField + ".command", "is required unless restart is true");
        }
        long timeout = fields.integer("timeout_ms", 1, 86_400_000L);
        yield new Bash(command, restart, timeout == 0 ? null : Duration.ofMillis(timeout));
      }
      case READ -> {
        fields.only("file_path", "view_range");
        int[] range = fields.range("view_range");
        yield new Read(fields.filePath("file_path"), range[0], range[1]);
      }
      case WRITE -> {
        fields.only("file_path", "content");
        yield new Write(
            fields.filePath("file_path"),
            fields.requiredString("content", true).getBytes(StandardCharsets.UTF_8));
      }
      case EDIT -> {
        fields.only("file_path", "old_string", "new_string", "replace_all");
        String oldString = fields.requiredString("old_string", false);
        yield new Edit(
            fields.filePath("file_path"),
            oldString.getBytes(StandardCharsets.UTF_8),
            fields.requiredString("new_string", true).getBytes(StandardCharsets.UTF_8),
            fields.bool("replace_all"));
      }
      case GLOB -> {
        fields.only("pattern", "path");
        yield new Glob(fields.requiredString("pattern", false), fields.directoryPath("path"));
      }
      case GREP -> {
        fields.only("pattern", "path");
        yield new Grep(fields.requiredString("pattern", false), fields.directoryPath("path"));
      }
      case SESSION_LOG -> {
        fields.only("after_seq", "before_seq", "types", "limit");
        boolean after = input.has("after_seq") && !input.get("after_seq").isNull();
        boolean before = input.has("before_seq") && !input.get("before_seq").isNull();
        if (after && before) {
          throw new InvalidArgumentException(
              inputField + ".before_seq", "cannot be given with after_seq");
        }
        long afterSeq = fields.integer("after_seq", 0, Long.MAX_VALUE);
        long beforeSeq = fields.integer("before_seq", 1, Long.MAX_VALUE);
        long limit = fields.integer("limit", 1, 50);
        yield new SessionLog(
            afterSeq,
            beforeSeq,
            !after && !before,
            fields.strings("types"),
            limit == 0 ? 20 : (int) limit);
      }
    };
  }

  /** Typed access to the input object's fields, with errors that name them. */
  final class Fields {
    private final String prefix;
    private final JsonNode input;

    Fields(String prefix, JsonNode input) {
      this.prefix = prefix;
      this.input = input;
    }

    void only(String... allowed) {
      Set<String> known = Set.of(allowed);
      for (Iterator<String> names = input.fieldNames(); names.hasNext(); ) {
        String name = names.next();
        if (!known.contains(name)) {
          throw new InvalidArgumentException(prefix + "." + name, "is not an input of this tool");
        }
      }
    }

    String requiredString(String name, boolean mayBeEmpty) {
      JsonNode value = input.get(name);
      if (value == null || value.isNull()) {
        throw new InvalidArgumentException(prefix + "." + name, "is required");
      }
      if (!value.isTextual()) {
        throw new InvalidArgumentException(prefix + "." + name, "must be a string");
      }
      if (!mayBeEmpty && value.asText().isEmpty()) {
        throw new InvalidArgumentException(prefix + "." + name, "must not be empty");
      }
      return value.asText();
    }

    String optionalString(String name) {
      JsonNode value = input.get(name);
      if (value == null || value.isNull()) {
        return "";
      }
      if (!value.isTextual()) {
        throw new InvalidArgumentException(prefix + "." + name, "must be a string");
      }
      return value.asText(); // no NUL, no half surrogate pair: Json.requireObject refused them
    }

    /** A file's path: not empty, no control characters, and not ending with "/". */
    String filePath(String name) {
      String path = noControlCharacters(name, requiredString(name, false));
      if (path.endsWith("/")) {
        throw new InvalidArgumentException(
            prefix + "." + name, "ends with /, so it names a directory; give the path of a file");
      }
      return path;
    }

    /** An optional path of a file or directory, with no control characters. */
    String directoryPath(String name) {
      return noControlCharacters(name, optionalString(name));
    }

    /**
     * A newline at the end of a path would vanish on its way through the shell, and one in the
     * middle makes names no listing can show: refused, with the other control characters.
     */
    private String noControlCharacters(String name, String path) {
      if (path.chars().anyMatch(c -> c < 0x20 || c == 0x7f)) {
        throw new InvalidArgumentException(
            prefix + "." + name, "must not contain control characters (a newline, a tab, ...)");
      }
      return path;
    }

    boolean bool(String name) {
      JsonNode value = input.get(name);
      if (value == null || value.isNull()) {
        return false;
      }
      if (!value.isBoolean()) {
        throw new InvalidArgumentException(prefix + "." + name, "must be true or false");
      }
      return value.asBoolean();
    }

    long integer(String name, long min, long max) {
      JsonNode value = input.get(name);
      if (value == null || value.isNull()) {
        return 0;
      }
      // canConvertToLong first: asLong() keeps only the low 64 bits of a larger integer
      if (!value.canConvertToExactIntegral()
          || !value.canConvertToLong()
          || value.asLong() < min
          || value.asLong() > max) {
        throw new InvalidArgumentException(
            prefix + "." + name, "must be an integer between " + min + " and " + max);
      }
      return value.asLong();
    }

    /** An optional array of non-empty strings (at most 32). */
    List<String> strings(String name) {
      JsonNode value = input.get(name);
      if (value == null || value.isNull()) {
        return List.of();
      }
      if (!value.isArray() || value.size() > 32) {
        throw new InvalidArgumentException(
            prefix + "." + name, "must be an array of at most 32 strings");
      }
      List<String> strings = new java.util.ArrayList<>();
      for (JsonNode item : value) {
        if (!item.isTextual() || item.asText().isEmpty()) {
          throw new InvalidArgumentException(prefix + "." + name, "must hold non-empty strings");
        }
        strings.add(item.asText());
      }
      return List.copyOf(strings);
    }

    /** view_range [start, end], 1-based inclusive; end 0 or less means the end of the file. */
    int[] range(String name) {
      JsonNode value = input.get(name);
      if (value == null || value.isNull()) {
        return new int[] {1, 0};
      }
      List<JsonNode> items = new java.util.ArrayList<>();
      value.forEach(items::add);
      boolean valid =
          value.isArray()
              && items.size() == 2
              && items.stream()
                  .allMatch(
                      item ->
                          item.canConvertToExactIntegral()
                              && item.canConvertToInt()
                              && Math.abs(item.asLong()) < Integer.MAX_VALUE)
              && items.get(0).asInt() >= 1
              && (items.get(1).asInt() <= 0 || items.get(1).asInt() >= items.get(0).asInt());
      if (!valid) {
        throw new InvalidArgumentException(
            prefix + "." + name,
            "must be [start, end] with 1 <= start <= end, or end <= 0 for the end of the file");
      }
      return new int[] {items.get(0).asInt(), items.get(1).asInt()};
    }
  }
}
