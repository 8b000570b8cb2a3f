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
   * A list or map of the object that an update request wraps in a message of its own: {@code own}
   * (the object's field) is {@code wrapped} in the request, if the request {@code sent} it.
   */
  record Wrapper(boolean sent, String own, String wrapped) {}

  /**
   * {@code failure} naming the request's field for each wrapper the request sent; a field the
   * request left out (checked with the object's other fields) keeps the object's name.
   */
  static InvalidArgumentException renamed(Throwable failure, Wrapper... wrappers) {
    var invalid = (InvalidArgumentException) failure;
    return new InvalidArgumentException(field(invalid.field(), wrappers), invalid.problem());
  }

  static String field(String field, Wrapper... wrappers) {
    for (Wrapper wrapper : wrappers) {
      String own = wrapper.own();
      if (wrapper.sent()
          && (field.equals(own)
              || field.startsWith(own + "[")
              || field.startsWith(own + " ")
              || field.startsWith(own + "."))) {
        return wrapper.wrapped() + field.substring(own.length());
      }
    }
    return field;
  }
}
