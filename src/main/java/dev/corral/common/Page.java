package dev.corral.common;

import java.util.List;
import java.util.function.Function;

/**
 * One page of a list and the token of the next one (empty on the last page).
 *
 * @param <T> the listed items
 */
public record Page<T>(List<T> items, String nextPageToken) {

  /**
   * Builds a page from a query that asked for {@code size + 1} rows: the extra row only says that
   * another page exists.
   */
  public static <T> Page<T> of(List<T> rows, int size, Function<T, String> keyOf) {
    if (rows.size() <= size) {
      return new Page<>(List.copyOf(rows), "");
    }
    List<T> items = List.copyOf(rows.subList(0, size));
    return new Page<>(items, Paging.token(keyOf.apply(items.get(size - 1))));
  }
}
