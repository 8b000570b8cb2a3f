package dev.corral.rest;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.corral.common.InvalidArgumentException;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

/**
 * Reading a request's JSON strictly: each accessor names the field (as a path, {@code
 * tools[2].name}) in the INVALID_ARGUMENT it throws for a missing field or a wrong type. Unknown
 * fields are ignored, as the API does (newer SDKs send more).
 */
final class Fields {

  private Fields() {}

  static boolean has(JsonNode node, String name) {
    return node.has(name) && !node.get(name).isNull();
  }

  static String string(JsonNode node, String name, String path) {
    return optionalString(node, name, path)
        .orElseThrow(() -> new InvalidArgumentException(path, "is required"));
  }

  static Optional<String> optionalString(JsonNode node, String name, String path) {
    if (!has(node, name)) {
      return Optional.empty();
    }
    JsonNode value = node.get(name);
    if (!value.isTextual()) {
      throw new InvalidArgumentException(path, "must be a string");
    }
    return Optional.of(value.asText());
  }

  /** A string field of an update: empty if left out, "" if null (cleared), else its value. */
  static Optional<String> cleared(JsonNode body, String name) {
    return body.has(name) && body.get(name).isNull()
        ? Optional.of("")
        : optionalString(body, name, name);
  }

  static Optional<Integer> optionalInt(JsonNode node, String name, String path) {
    if (!has(node, name)) {
      return Optional.empty();
    }
    JsonNode value = node.get(name);
    if (!value.isIntegralNumber() || !value.canConvertToInt()) {
      throw new InvalidArgumentException(path, "must be an integer");
    }
    return Optional.of(value.asInt());
  }

  /** {@link #optionalInt}, for a 64-bit field. */
  static Optional<Long> optionalLong(JsonNode node, String name, String path) {
    if (!has(node, name)) {
      return Optional.empty();
    }
    JsonNode value = node.get(name);
    if (!value.isIntegralNumber() || !value.canConvertToLong()) {
      throw new InvalidArgumentException(path, "must be an integer");
    }
    return Optional.of(value.asLong());
  }

  static Optional<Boolean> optionalBoolean(JsonNode node, String name, String path) {
    if (!has(node, name)) {
      return Optional.empty();
    }
    JsonNode value = node.get(name);
    if (!value.isBoolean()) {
      throw new InvalidArgumentException(path, "must be true or false");
    }
    return Optional.of(value.asBoolean());
  }

  static ObjectNode object(JsonNode node, String name, String path) {
    return optionalObject(node, name, path)
        .orElseThrow(() -> new InvalidArgumentException(path, "is required"));
  }

  static Optional<ObjectNode> optionalObject(JsonNode node, String name, String path) {
    if (!has(node, name)) {
      return Optional.empty();
    }
    if (!(node.get(name) instanceof ObjectNode object)) {
      throw new InvalidArgumentException(path, "must be an object");
    }
    return Optional.of(object);
  }

  /** The array {@code name} (empty when absent or null). */
  static List<JsonNode> array(JsonNode node, String name, String path) {
    if (!has(node, name)) {
      return List.of();
    }
    if (!(node.get(name) instanceof ArrayNode array)) {
      throw new InvalidArgumentException(path, "must be an array");
    }
    List<JsonNode> items = new ArrayList<>();
    array.forEach(items::add);
    return items;
  }

  /** An array of objects. */
  static List<ObjectNode> objects(JsonNode node, String name, String path) {
    List<ObjectNode> objects = new ArrayList<>();
    List<JsonNode> items = array(node, name, path);
    for (int i = 0; i < items.size(); i++) {
      if (!(items.get(i) instanceof ObjectNode object)) {
        throw new InvalidArgumentException(path + "[" + i + "]", "must be an object");
      }
      objects.add(object);
    }
    return objects;
  }

  static List<String> strings(JsonNode node, String name, String path) {
    List<String> strings = new ArrayList<>();
    List<JsonNode> items = array(node, name, path);
    for (int i = 0; i < items.size(); i++) {
      if (!items.get(i).isTextual()) {
        throw new InvalidArgumentException(path + "[" + i + "]", "must be a string");
      }
      strings.add(items.get(i).asText());
    }
    return strings;
  }

  /** {@code metadata}: an object of strings; a null value (in a patch) is kept as null. */
  static Optional<Map<String, String>> metadata(JsonNode node, String name, String path) {
    Optional<ObjectNode> object = optionalObject(node, name, path);
    if (object.isEmpty()) {
      return Optional.empty();
    }
    Map<String, String> entries = new LinkedHashMap<>();
    object
        .get()
        .fields()
        .forEachRemaining(
            entry -> {
              JsonNode value = entry.getValue();
              if (!value.isNull() && !value.isTextual()) {
                throw new InvalidArgumentException(
                    path + "." + entry.getKey(), "must be a string (or null to delete it)");
              }
              entries.put(entry.getKey(), value.isNull() ? null : value.asText());
            });
    return Optional.of(entries);
  }

  /** A discriminator {@code type} that must be one of {@code known}. */
  static String type(JsonNode node, String path, Set<String> known) {
    String type = string(node, "type", path + ".type");
    if (!known.contains(type)) {
      throw new InvalidArgumentException(
          path + ".type", "'" + type + "' is not supported here; expected one of " + known);
    }
    return type;
  }

  /** Fails if {@code name} is present and not null or empty: a feature corral does not have. */
  static void unsupported(JsonNode node, String name, String path, String why) {
    if (!has(node, name)) {
      return;
    }
    JsonNode value = node.get(name);
    boolean empty =
        (value.isArray() || value.isObject()) && value.isEmpty()
            || value.isBoolean() && !value.asBoolean();
    if (!empty) {
      throw new InvalidArgumentException(path, why);
    }
  }
}
