package dev.corral.common;

import com.google.protobuf.MessageLite;
import java.util.List;
import java.util.function.Function;

/**
 * One page of a list and the token of the next one (empty on the last page).
 *
 * @param <T> the listed items
 */
public record Page<T>(List<T> items, String nextPageToken) {

  /**
   * Bytes a page's items may take, about (a protobuf item's serialized size): a page stops before
   * the item that would pass it, but holds at least one, so that a client with gRPC's default 4 MiB
   * message limit can read any list, however large its items.
   */
  public static final int PAGE_BYTES = 1 << 20;

  /**
   * Builds a page from a query that asked for {@code size + 1} rows: the extra row only says that
   * another page exists.
   */
  public static <T> Page<T> of(List<T> rows, int size, Function<T, String> keyOf) {
    int end = Math.min(rows.size(), size);
    long bytes = 0;
    for (int i = 0; i < end; i++) {
      bytes += rows.get(i) instanceof MessageLite message ? message.getSerializedSize() : 0;
      if (bytes > PAGE_BYTES && i > 0) {
        end = i;
        break;
      }
    }
    if (end == rows.size()) {
      return new Page<>(List.copyOf(rows), "");
    }
    List<T> items = List.copyOf(rows.subList(0, end));
    return new Page<>(items, Paging.token(keyOf.apply(items.get(end - 1))));
  }
}
