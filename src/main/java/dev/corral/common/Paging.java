package dev.corral.common;

import java.nio.charset.StandardCharsets;
import java.util.Base64;
import java.util.function.Predicate;

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
