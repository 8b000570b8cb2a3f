package dev.corral.common;

import java.util.Map;
import java.util.regex.Pattern;

/** Limits on free-form input shared by several resources (names, metadata). */
public final class InputRules {

  public static final int MAX_METADATA_PAIRS = 16;
  public static final int MAX_METADATA_KEY = 64;
  public static final int MAX_METADATA_VALUE = 512;

  /** C0 and C1 control characters other than tab and line breaks. */
  private static final Pattern CONTROL = Pattern.compile("[\\p{Cc}&&[^\\t\\n\\r]]");

  private InputRules() {}

  /**
   * Checks that {@code value} has between {@code min} and {@code max} characters (code points).
   *
   * @throws InvalidArgumentException naming {@code field} otherwise
   */
  public static String length(String field, String value, int min, int max) {
    int length = value.codePointCount(0, value.length());
    if (length < min) {
      throw new InvalidArgumentException(
          field, min == 1 ? "is required" : "needs at least " + min + " characters");
    }
    if (length > max) {
      throw new InvalidArgumentException(
          field, "has " + length + " characters; the limit is " + max);
    }
    return value;
  }

  /**
   * Checks a name shown in lists and logs: {@link #length} and no control characters (a newline in
   * a name forges lines of whatever prints it).
   */
  public static String name(String field, String value, int min, int max) {
    length(field, value, min, max);
    if (value.chars().anyMatch(Character::isISOControl)) {
      throw new InvalidArgumentException(field, "must not contain control characters");
    }
    return value;
  }

  /**
   * Checks the limits of a metadata map: pair count, key and value lengths, no control characters.
   */
  public static Map<String, String> metadata(String field, Map<String, String> metadata) {
    if (metadata.size() > MAX_METADATA_PAIRS) {
      throw new InvalidArgumentException(
          field, "has " + metadata.size() + " pairs; the limit is " + MAX_METADATA_PAIRS);
    }
    metadata.forEach(
        (key, value) -> {
          length(field + " key", key, 1, MAX_METADATA_KEY);
          length(field + "[" + key + "]", value, 0, MAX_METADATA_VALUE);
          if (key.chars().anyMatch(Character::isISOControl)) {
            throw new InvalidArgumentException(
                field + " key", "must not contain control characters");
          }
          if (CONTROL.matcher(value).find()) {
            // tabs and line breaks may be part of a value; escapes and the like forge terminals
            throw new InvalidArgumentException(
                field + "[" + key + "]",
                "must not contain control characters other than tab and line breaks");
          }
        });
    return metadata;
  }

  /**
   * Whether {@code text} holds nothing but white space, as the Messages API sees it: besides Java's
   * {@code isBlank}, the no-break spaces (U+00A0, U+2007, U+202F) and NEL (U+0085), which Python's
   * {@code str.isspace} also counts. A text block the API takes for empty fails the whole request.
   */
  public static boolean blank(String text) {
    return text.codePoints()
        .allMatch(c -> Character.isWhitespace(c) || Character.isSpaceChar(c) || c == 0x85);
  }
}
