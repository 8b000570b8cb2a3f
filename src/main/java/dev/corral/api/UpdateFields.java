package dev.corral.api;

import dev.corral.common.InvalidArgumentException;

/**
 * The fields of an update request, which wraps an object's lists and maps in messages of their own
 * ({@code tools.tools[0]}, {@code metadata.entries}): an error found in the updated object names
 * the field the client sent.
 */
final class UpdateFields {

  private UpdateFields() {}

  /**
   * {@code failure} naming the request's field for {@code wrapped}'s pairs (the object's field,
   * then the request's).
   */
  static InvalidArgumentException renamed(Throwable failure, String... wrapped) {
    var invalid = (InvalidArgumentException) failure;
    return new InvalidArgumentException(field(invalid.field(), wrapped), invalid.problem());
  }

  static String field(String field, String... wrapped) {
    for (int i = 0; i + 1 < wrapped.length; i += 2) {
      String own = wrapped[i];
      if (field.equals(own)
          || field.startsWith(own + "[")
          || field.startsWith(own + " ")
          || field.startsWith(own + ".")) {
        return wrapped[i + 1] + field.substring(own.length());
      }
    }
    return field;
  }
}
