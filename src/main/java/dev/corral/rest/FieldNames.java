package dev.corral.rest;

import dev.corral.common.InvalidArgumentException;
import io.smallrye.mutiny.Uni;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;

/**
 * The REST names of the fields that the rules under REST name as gRPC does: a REST client that sent
 * {@code auth.token} is told about {@code auth.token}, not {@code static_header.value}. Each entry
 * renames a field path and everything below it ({@code a} covers {@code a.b} and {@code a[0]}); the
 * longest that applies wins.
 */
final class FieldNames {

  private record Rename(String from, String to) {}

  private final List<Rename> renames;

  private FieldNames(List<Rename> renames) {
    this.renames = renames;
  }

  /** From pairs: a gRPC field path, then its REST path. */
  static FieldNames of(String... pairs) {
    List<Rename> renames = new ArrayList<>();
    for (int i = 0; i + 1 < pairs.length; i += 2) {
      renames.add(new Rename(pairs[i], pairs[i + 1]));
    }
    renames.sort(Comparator.comparingInt((Rename rename) -> rename.from().length()).reversed());
    return new FieldNames(List.copyOf(renames));
  }

  /** {@code call}, its INVALID_ARGUMENT naming the REST field. */
  <T> Uni<T> on(Uni<T> call) {
    return call.onFailure(InvalidArgumentException.class).transform(this::renamed);
  }

  /**
   * {@code call}, its INVALID_ARGUMENT naming the field with the first match of {@code pattern}
   * replaced by {@code replacement}: for names with an index ({@code
   * events[2].user_message.content} to {@code events[2].content}).
   */
  static <T> Uni<T> replacing(Uni<T> call, java.util.regex.Pattern pattern, String replacement) {
    return call.onFailure(InvalidArgumentException.class)
        .transform(
            failure -> {
              InvalidArgumentException invalid = (InvalidArgumentException) failure;
              String field = pattern.matcher(invalid.field()).replaceFirst(replacement);
              return field.equals(invalid.field())
                  ? failure
                  : new InvalidArgumentException(field, invalid.problem());
            });
  }

  Throwable renamed(Throwable failure) {
    InvalidArgumentException invalid = (InvalidArgumentException) failure;
    String field = invalid.field();
    for (Rename rename : renames) {
      String from = rename.from();
      if (field.equals(from) || field.startsWith(from + ".") || field.startsWith(from + "[")) {
        return new InvalidArgumentException(
            rename.to() + field.substring(from.length()), invalid.problem());
      }
    }
    return failure;
  }
}
