package dev.corral.common;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonLocation;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.StreamReadConstraints;
import com.fasterxml.jackson.core.exc.StreamConstraintsException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.util.Iterator;
import java.util.Map;

/**
 * Checks JSON text that arrives in string fields (tool inputs, schemas): exactly one JSON object,
 * nothing after it, no key twice, at most {@value #MAX_DEPTH} levels deep, numbers of at most
 * {@value #MAX_NUMBER_LENGTH} characters, and no NUL ({@code \u0000}) nor half of a UTF-16
 * surrogate pair (a lone {@code \ud800}, which is no Unicode character and which PostgreSQL, the
 * Messages API and a UTF-8 encoder each refuse or change) in any key or string.
 */
public final class Json {

  public static final int MAX_DEPTH = 64;
  public static final int MAX_NUMBER_LENGTH = 100;

  private static final ObjectMapper MAPPER =
      new ObjectMapper(
              JsonFactory.builder()
                  .streamReadConstraints(
                      StreamReadConstraints.builder()
                          .maxNestingDepth(MAX_DEPTH)
                          .maxNumberLength(MAX_NUMBER_LENGTH)
                          .build())
                  .enable(com.fasterxml.jackson.core.StreamReadFeature.STRICT_DUPLICATE_DETECTION)
                  .build())
          .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS)
          .enable(DeserializationFeature.USE_BIG_DECIMAL_FOR_FLOATS);

  private Json() {}

  /**
   * Parses {@code text} and checks that it is one JSON object within the limits above.
   *
   * @throws InvalidArgumentException naming {@code field} otherwise
   */
  public static JsonNode requireObject(String field, String text) {
    JsonNode node;
    try {
      node = MAPPER.readTree(text);
    } catch (StreamConstraintsException limit) {
      String message = String.valueOf(limit.getOriginalMessage());
      throw new InvalidArgumentException(
          field,
          message.contains("nesting depth")
              ? "is nested deeper than " + MAX_DEPTH + " levels"
              : message.contains("Number value length") || message.contains("number")
                  ? "has a number longer than " + MAX_NUMBER_LENGTH + " characters"
                  : "is larger than corral reads");
    } catch (JsonProcessingException e) {
      throw new InvalidArgumentException(field, "is not valid JSON" + where(e));
    } catch (NumberFormatException | ArithmeticException outOfRange) {
      // an exponent past what a number can hold (1e2147483648): not a JsonProcessingException
      throw new InvalidArgumentException(field, "has a number whose exponent is out of range");
    }
    if (node == null || node.isMissingNode()) {
      throw new InvalidArgumentException(field, "must be a JSON object, and is empty");
    }
    if (!node.isObject()) {
      throw new InvalidArgumentException(field, "must be a JSON object");
    }
    String[] bad = firstAt(node, field);
    if (bad != null) {
      throw new InvalidArgumentException(bad[0], bad[1]);
    }
    return node;
  }

  private static String where(JsonProcessingException e) {
    String why = e.getOriginalMessage() == null ? "" : e.getOriginalMessage();
    String detail =
        why.startsWith("Duplicate field")
            ? ": a key appears twice"
            : why.startsWith("Trailing token") ? ": something follows the value" : "";
    JsonLocation location = e.getLocation();
    if (location == null || location.getLineNr() < 0) {
      return detail;
    }
    return detail + " (line " + location.getLineNr() + ", column " + location.getColumnNr() + ")";
  }

  /** What is wrong with {@code text} as a key or string, or null. */
  private static String problem(String text) {
    if (text.indexOf('\u0000') >= 0) {
      return "must not contain the NUL character (\\u0000)";
    }
    if (holdsHalfPair(text)) {
      return HALF_PAIR;
    }
    return null;
  }

  /** Why a string holding half of a surrogate pair is refused. */
  public static final String HALF_PAIR =
      "holds half of a UTF-16 surrogate pair (an escape such as \\ud800 without its partner),"
          + " which is not Unicode text";

  /** Whether {@code text} holds half of a UTF-16 surrogate pair without its partner. */
  public static boolean holdsHalfPair(String text) {
    return text.codePoints().anyMatch(Json::isSurrogate);
  }

  /** {@code text} with each half of a surrogate pair that lacks its partner replaced by U+FFFD. */
  public static String wholePairs(String text) {
    if (!holdsHalfPair(text)) {
      return text;
    }
    StringBuilder whole = new StringBuilder(text.length());
    text.codePoints().forEach(point -> whole.appendCodePoint(isSurrogate(point) ? 0xFFFD : point));
    return whole.toString();
  }

  /**
   * The first {@code max} characters of {@code text} (all of it if shorter), one fewer if the cut
   * would split a surrogate pair.
   */
  public static String cut(String text, int max) {
    if (text.length() <= max) {
      return text;
    }
    return text.substring(
        0, max > 0 && Character.isHighSurrogate(text.charAt(max - 1)) ? max - 1 : max);
  }

  /**
   * {@code node} with {@link #wholePairs} applied to every key and string in it, in place (an
   * object or array) or anew (a string). The Messages API refuses a whole request that holds half a
   * pair ("no low surrogate in string"), and such text can come from a model's tool input, an MCP
   * server or a tool's output.
   */
  public static JsonNode withWholePairs(JsonNode node) {
    if (node.isTextual()) {
      String text = node.textValue();
      String whole = wholePairs(text);
      return whole == text ? node : com.fasterxml.jackson.databind.node.TextNode.valueOf(whole);
    }
    if (node instanceof com.fasterxml.jackson.databind.node.ObjectNode object) {
      java.util.List<String> names = new java.util.ArrayList<>();
      object.fieldNames().forEachRemaining(names::add);
      for (String name : names) {
        JsonNode value = object.get(name);
        JsonNode whole = withWholePairs(value);
        String wholeName = wholePairs(name);
        if (wholeName != name) {
          object.remove(name);
          object.set(wholeName, whole);
        } else if (whole != value) {
          object.set(name, whole);
        }
      }
    } else if (node instanceof com.fasterxml.jackson.databind.node.ArrayNode array) {
      for (int i = 0; i < array.size(); i++) {
        JsonNode value = array.get(i);
        JsonNode whole = withWholePairs(value);
        if (whole != value) {
          array.set(i, whole);
        }
      }
    }
    return node;
  }

  /** A code point that is half of a pair (codePoints() yields a lone one as itself). */
  private static boolean isSurrogate(int codePoint) {
    return codePoint >= Character.MIN_SURROGATE && codePoint <= Character.MAX_SURROGATE;
  }

  /** The path of the first key or string with a {@link #problem}, and the problem; or null. */
  private static String[] firstAt(JsonNode node, String path) {
    if (node.isTextual()) {
      String problem = problem(node.textValue());
      return problem == null ? null : new String[] {path, problem};
    }
    if (node.isObject()) {
      for (Iterator<Map.Entry<String, JsonNode>> fields = node.fields(); fields.hasNext(); ) {
        Map.Entry<String, JsonNode> field = fields.next();
        String at = path + "." + printable(field.getKey());
        String problem = problem(field.getKey());
        String[] found =
            problem != null ? new String[] {at, problem} : firstAt(field.getValue(), at);
        if (found != null) {
          return found;
        }
      }
      return null;
    }
    int index = 0;
    for (JsonNode element : node) {
      String[] found = firstAt(element, path + "[" + index++ + "]");
      if (found != null) {
        return found;
      }
    }
    return null;
  }

  /** A key as it may appear in an error message: NUL and lone surrogates escaped. */
  private static String printable(String key) {
    StringBuilder out = new StringBuilder(key.length());
    key.codePoints()
        .forEach(
            c -> {
              if (c == 0 || isSurrogate(c)) {
                out.append(String.format("\\u%04x", c));
              } else {
                out.appendCodePoint(c);
              }
            });
    return out.toString();
  }
}
