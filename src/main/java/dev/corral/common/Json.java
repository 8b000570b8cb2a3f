package dev.corral.common;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

/** Checks JSON text that arrives in string fields (tool inputs, schemas). */
public final class Json {

  private static final ObjectMapper MAPPER = new ObjectMapper();

  private Json() {}

  /**
   * Parses {@code text} and checks that it is one JSON object.
   *
   * @throws InvalidArgumentException naming {@code field} otherwise
   */
  public static JsonNode requireObject(String field, String text) {
    JsonNode node;
    try {
      node = MAPPER.readTree(text);
    } catch (JsonProcessingException e) {
      throw new InvalidArgumentException(
          field,
          "is not valid JSON (line "
              + e.getLocation().getLineNr()
              + ", column "
              + e.getLocation().getColumnNr()
              + ")");
    }
    if (node == null || !node.isObject()) {
      throw new InvalidArgumentException(field, "must be a JSON object");
    }
    return node;
  }
}
