package dev.corral.common;

import java.nio.charset.StandardCharsets;
import java.util.Base64;
import java.util.function.Predicate;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Page sizes and opaque page tokens for list RPCs. A token wraps the key of the last item of the
 * previous page; clients must treat it as opaque.
 */
public final class Paging {

  private static final String TOKEN_VERSION = "v1:";

  private Paging() {}

  /**
   * The page size to use: {@code defaultSize} for 0, {@code requested} up to {@code max}.
   *
   * @throws InvalidArgumentException if {@code requested} is negative or above {@code max}
   */
  public static int pageSize(String field, int requested, int defaultSize, int max) {
    if (requested < 0 || requested > max) {
      throw new InvalidArgumentException(
          field, "must be between 0 and " + max + ", was " + requested);
    }
    return requested == 0 ? defaultSize : requested;
  }

  /**
   * A list statement in the two forms its pages need. One statement for both, with the cursor as
   * {@code ($1::text IS NULL OR id < $1)}, cannot bound its index scan by the cursor: corral's pool
   * plans every statement once for any parameter ({@code plan_cache_mode=force_generic_plan}), so
   * the condition is a filter, and page k of a tenant's list read the k pages before it too (a page
   * 9,000 rows deep read 9,000 rows: listing everything was quadratic). The next-page form bounds
   * the scan with {@code id < $1}; the first-page form keeps {@code $1} (a parameter the statement
   * does not mention has no type) as a condition of the parameter alone, which the plan checks
   * once.
   */
  public record Listing(String firstPage, String nextPage) {

    /** The statement for the page after {@code cursor} (null for the first page). */
    public String after(Object cursor) {
      return cursor == null ? firstPage : nextPage;
    }
  }

  private static final Pattern CURSOR =
      Pattern.compile(
          "\\((\\$\\d+)(::(?:text|integer|bigint)) IS NULL OR ((?:\\w+\\.)?\\w+ [<>]) (\\$\\d+)\\)");

  /**
   * The two forms of {@code sql}, whose one cursor condition reads {@code ($N::text IS NULL OR id <
   * $N)} (or another column, {@code >}, an integer cursor).
   */
  public static Listing listing(String sql) {
    Matcher cursor = CURSOR.matcher(sql);
    if (!cursor.find() || !cursor.group(1).equals(cursor.group(4))) {
      throw new IllegalArgumentException("no cursor condition in " + sql);
    }
    String before = sql.substring(0, cursor.start());
    String after = sql.substring(cursor.end());
    if (CURSOR.matcher(after).find()) {
      throw new IllegalArgumentException("two cursor conditions in " + sql);
    }
    return new Listing(
        before + cursor.group(1) + cursor.group(2) + " IS NULL" + after,
        before + cursor.group(3) + " " + cursor.group(1) + after);
  }

  public static String token(String lastKey) {
    byte[] raw = (TOKEN_VERSION + lastKey).getBytes(StandardCharsets.UTF_8);
    return Base64.getUrlEncoder().withoutPadding().encodeToString(raw);
  }

  /**
   * The key inside {@code token}, or null for an empty token (the first page).
   *
   * @throws InvalidArgumentException naming {@code field} if the token was not made by {@link
   *     #token(String)} with a key {@code validKey} accepts
   */
  public static String keyOf(String field, String token, Predicate<String> validKey) {
    if (token == null || token.isEmpty()) {
      return null;
    }
    String decoded;
    try {
      decoded = new String(Base64.getUrlDecoder().decode(token), StandardCharsets.UTF_8);
    } catch (IllegalArgumentException e) {
      throw new InvalidArgumentException(field, "is not a page token returned by this server");
    }
    if (!decoded.startsWith(TOKEN_VERSION)
        || !validKey.test(decoded.substring(TOKEN_VERSION.length()))) {
      throw new InvalidArgumentException(field, "is not a page token returned by this server");
    }
    return decoded.substring(TOKEN_VERSION.length());
  }
}
