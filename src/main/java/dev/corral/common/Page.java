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
   * Wraps a list query so that the database, not the server, drops the rows a page could not hold:
   * of the at most {@code size + 1} rows {@code limited} returns (in {@code order}), it keeps the
   * first two and every row that starts within {@link #PAGE_BYTES}, counting {@code bytes} (an SQL
   * expression over the query's columns, at most the item's serialized size). The last row kept
   * passes the budget whenever a row was dropped, so {@link #of} still sees that there is more; and
   * a list of hundred items of a megabyte each no longer passes through the server's memory at
   * once.
   */
  public static String bounded(String limited, String bytes, String order) {
    return """
        SELECT * FROM (
            SELECT limited.*,
                   sum(%1$s) OVER (%3$s ROWS UNBOUNDED PRECEDING) - %1$s AS page_bytes_before,
                   row_number() OVER (%3$s) AS page_position
            FROM (%2$s) limited
        ) sized
        WHERE page_bytes_before <= %4$d OR page_position <= 2
        %3$s
        """
        .formatted(bytes, limited, order, PAGE_BYTES);
  }

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
