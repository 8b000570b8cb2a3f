package dev.corral.common;

import java.net.URI;
import java.net.URISyntaxException;
import java.util.Locale;

/** http and https URLs as corral accepts them from clients, and as it compares them. */
public final class HttpUrls {

  public static final int MAX_LENGTH = 2048;

  private HttpUrls() {}

  /**
   * {@code value} normalized: scheme and host in lowercase, no default port, {@code /} for an empty
   * path.
   *
   * @throws InvalidArgumentException naming {@code field} unless it is an http or https URL with a
   *     host, no user information, no fragment and no path starting with {@code //}
   */
  public static String normalized(String field, String value) {
    if (value == null || value.isEmpty()) {
      throw new InvalidArgumentException(field, "is required");
    }
    InputRules.length(field, value, 1, MAX_LENGTH);
    URI uri;
    try {
      uri = new URI(value);
    } catch (URISyntaxException e) {
      throw new InvalidArgumentException(field, "is not a URL");
    }
    String scheme = uri.getScheme() == null ? "" : uri.getScheme().toLowerCase(Locale.ROOT);
    if (!scheme.equals("http") && !scheme.equals("https")) {
      throw new InvalidArgumentException(field, "must be an http or https URL");
    }
    if (uri.getHost() == null || uri.getHost().isEmpty()) {
      throw new InvalidArgumentException(field, "has no host");
    }
    if (uri.getRawUserInfo() != null) {
      throw new InvalidArgumentException(field, "must not hold user information");
    }
    if (uri.getRawFragment() != null) {
      throw new InvalidArgumentException(field, "must not have a fragment");
    }
    int port = uri.getPort();
    if (port == 0 || port > 65_535) {
      throw new InvalidArgumentException(field, "has port " + port + "; a port is 1 to 65535");
    }
    if ((scheme.equals("http") && port == 80) || (scheme.equals("https") && port == 443)) {
      port = -1;
    }
    String path = uri.getRawPath() == null || uri.getRawPath().isEmpty() ? "/" : uri.getRawPath();
    if (path.startsWith("//")) {
      // a client that takes the path as a reference to resolve against the origin (as the MCP
      // SDK does) reads "//other.example/x" as another host
      throw new InvalidArgumentException(field, "has a path that starts with //");
    }
    return scheme
        + "://"
        + uri.getHost().toLowerCase(Locale.ROOT)
        + (port < 0 ? "" : ":" + port)
        + path
        + (uri.getRawQuery() == null ? "" : "?" + uri.getRawQuery());
  }
}
