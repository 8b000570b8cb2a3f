package dev.corral.agent;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.HashSet;
import java.util.Iterator;
import java.util.Map;
import java.util.Set;

/**
 * The shape a JSON Schema's keywords must have (draft 2020-12, the draft the Messages API checks a
 * custom tool's {@code input_schema} against): each subschema an object or a boolean, each {@code
 * type} a known type, each count a non-negative integer, and so on. A schema of the wrong shape is
 * refused when the agent is made, not by the model API at every turn.
 */
public final class SchemaShape {

  private static final Set<String> TYPES =
      Set.of("object", "array", "string", "number", "integer", "boolean", "null");

  /** Keywords whose value is one subschema. */
  private static final Set<String> ONE_SCHEMA =
      Set.of(
          "additionalProperties",
          "items",
          "not",
          "if",
          "then",
          "else",
          "contains",
          "propertyNames",
          "unevaluatedItems",
          "unevaluatedProperties");

  /** Keywords whose value is an object of subschemas. */
  private static final Set<String> SCHEMA_MAP =
      Set.of("properties", "patternProperties", "$defs", "definitions", "dependentSchemas");

  /** Keywords whose value is a non-empty array of subschemas. */
  private static final Set<String> SCHEMA_LIST = Set.of("allOf", "anyOf", "oneOf", "prefixItems");

  private static final Set<String> COUNTS =
      Set.of(
          "minLength",
          "maxLength",
          "minItems",
          "maxItems",
          "minProperties",
          "maxProperties",
          "minContains",
          "maxContains");

  private static final Set<String> NUMBERS =
      Set.of("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf");

  private static final Set<String> STRINGS =
      Set.of("pattern", "format", "title", "description", "$ref", "$id", "$schema", "$anchor");

  /** The Messages API's rule for a tool input schema's top-level property names. */
  private static final java.util.regex.Pattern PROPERTY_KEY =
      java.util.regex.Pattern.compile("[a-zA-Z0-9_.-]{1,64}");

  /** Keywords the Messages API refuses at the top of a tool input schema. */
  private static final java.util.List<String> NOT_AT_TOP =
      java.util.List.of("oneOf", "allOf", "anyOf");

  private SchemaShape() {}

  private static final com.fasterxml.jackson.databind.ObjectMapper JSON =
      new com.fasterxml.jackson.databind.ObjectMapper();

  /**
   * Whether {@code schemaJson} is a tool input schema the Messages API takes: an object's (or one
   * without a type, which corral sends as an object's), of draft 2020-12's shape at every depth.
   */
  public static boolean acceptsAsInput(String schemaJson) {
    try {
      JsonNode schema = JSON.readTree(schemaJson);
      JsonNode type = schema.path("type");
      return (type.isMissingNode() || "object".equals(type.asText()))
          && inputProblem(schema) == null;
    } catch (java.io.IOException | RuntimeException e) {
      return false;
    }
  }

  /**
   * What is wrong with {@code schema} as a tool's input schema, or null: draft 2020-12's shape, and
   * the two rules the Messages API adds at the top (each refuses the whole request, on every turn):
   * no {@code oneOf}/{@code allOf}/{@code anyOf} there, and property names of at most 64 letters,
   * digits, {@code _}, {@code .} or {@code -}.
   */
  public static String inputProblem(JsonNode schema) {
    for (String keyword : NOT_AT_TOP) {
      if (schema.has(keyword)) {
        return at("/" + keyword) + "the Messages API takes no oneOf, allOf or anyOf at the top";
      }
    }
    JsonNode properties = schema.path("properties");
    for (Iterator<String> names = properties.fieldNames(); names.hasNext(); ) {
      String name = names.next();
      if (!PROPERTY_KEY.matcher(name).matches()) {
        return at("/properties")
            + "a property name must be 1 to 64 letters, digits, '_', '.' or '-' (the Messages"
            + " API's rule); found \""
            + (name.length() > 80 ? name.substring(0, 80) + "…" : name)
            + "\"";
      }
    }
    return problem(schema, "");
  }

  /** What is wrong with {@code schema} at {@code path} (a JSON pointer), or null. */
  public static String problem(JsonNode schema, String path) {
    if (schema.isBoolean()) {
      return null;
    }
    if (!schema.isObject()) {
      return at(path) + "a schema must be an object or a boolean";
    }
    for (Iterator<Map.Entry<String, JsonNode>> fields = schema.fields(); fields.hasNext(); ) {
      Map.Entry<String, JsonNode> field = fields.next();
      String problem = keyword(field.getKey(), field.getValue(), path + "/" + field.getKey());
      if (problem != null) {
        return problem;
      }
    }
    return null;
  }

  private static String keyword(String name, JsonNode value, String path) {
    if (name.equals("type")) {
      return type(value, path);
    }
    if (ONE_SCHEMA.contains(name)) {
      return problem(value, path);
    }
    if (SCHEMA_MAP.contains(name)) {
      if (!value.isObject()) {
        return at(path) + "must be an object of schemas";
      }
      for (Iterator<Map.Entry<String, JsonNode>> each = value.fields(); each.hasNext(); ) {
        Map.Entry<String, JsonNode> entry = each.next();
        String problem = problem(entry.getValue(), path + "/" + entry.getKey());
        if (problem != null) {
          return problem;
        }
      }
      return null;
    }
    if (SCHEMA_LIST.contains(name)) {
      if (!value.isArray() || value.isEmpty()) {
        return at(path) + "must be a non-empty array of schemas";
      }
      for (int i = 0; i < value.size(); i++) {
        String problem = problem(value.get(i), path + "/" + i);
        if (problem != null) {
          return problem;
        }
      }
      return null;
    }
    if (name.equals("required")) {
      return uniqueStrings(value, path);
    }
    if (name.equals("enum")) {
      return value.isArray() ? null : at(path) + "must be an array";
    }
    if (COUNTS.contains(name)) {
      return wholeAndNotNegative(value) ? null : at(path) + "must be a non-negative integer";
    }
    if (NUMBERS.contains(name)) {
      if (!value.isNumber()) {
        return at(path) + "must be a number";
      }
      return name.equals("multipleOf") && value.decimalValue().signum() <= 0
          ? at(path) + "must be greater than 0"
          : null;
    }
    if (STRINGS.contains(name)) {
      return value.isTextual() ? null : at(path) + "must be a string";
    }
    return null; // other keywords (default, examples, const, annotations) take any value
  }

  /**
   * Whether {@code value} is a number with no fraction, and not negative: 10.0 is an integer to
   * JSON Schema, and so is 1e2147483647 (whose trailing zeros cannot be stripped: that overflows).
   */
  private static boolean wholeAndNotNegative(JsonNode value) {
    if (!value.isNumber()) {
      return false;
    }
    java.math.BigDecimal number = value.decimalValue();
    return number.signum() >= 0
        && (number.scale() <= 0 || number.stripTrailingZeros().scale() <= 0);
  }

  private static String type(JsonNode value, String path) {
    if (value.isTextual()) {
      return TYPES.contains(value.textValue())
          ? null
          : at(path)
              + "\""
              + value.textValue()
              + "\" is not a type ("
              + String.join(", ", TYPES.stream().sorted().toList())
              + ")";
    }
    if (value.isArray() && !value.isEmpty()) {
      Set<String> seen = new HashSet<>();
      for (JsonNode each : value) {
        if (!each.isTextual() || !TYPES.contains(each.textValue()) || !seen.add(each.textValue())) {
          return at(path) + "must name known types, each once";
        }
      }
      return null;
    }
    return at(path) + "must be a type name or a non-empty array of them";
  }

  private static String uniqueStrings(JsonNode value, String path) {
    if (!value.isArray()) {
      return at(path) + "must be an array of names";
    }
    Set<String> seen = new HashSet<>();
    for (JsonNode each : value) {
      if (!each.isTextual() || !seen.add(each.textValue())) {
        return at(path) + "must be an array of names, each once";
      }
    }
    return null;
  }

  private static String at(String path) {
    return "at " + (path.isEmpty() ? "/" : path) + ", ";
  }
}
