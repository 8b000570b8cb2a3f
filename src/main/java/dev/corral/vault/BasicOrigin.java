package dev.corral.vault;

import java.net.URI;
import java.net.URISyntaxException;
import java.util.Locale;
import java.util.Optional;
import java.util.regex.Pattern;

/**
 * Where a basic credential may be sent: a scheme, a host and a port. An entry of {@code
 * BasicAuth.hosts} is a host name ({@code github.com}: https on port 443), a host and port ({@code
 * git.example.com:8443}: https), or an origin with its scheme ({@code http://git.internal:8080}): a
 * password is never sent in clear text, or to another port of its host, unless an entry says so.
 */
record BasicOrigin(String scheme, String host, int port) {

  private static final Pattern HOST =
      Pattern.compile(
          "(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*");
  private static final Pattern PORT = Pattern.compile("[1-9][0-9]{0,4}");

  /** The origin an entry of {@code hosts} names, if it names one. */
  static Optional<BasicOrigin> ofEntry(String entry) {
    if (entry.contains("://")) {
      // an origin only: nothing after the port, nothing before the host, lower case
      // (a port as ofEntry's own: not 0, which would mean the default, nor with leading zeros)
      return entry.matches("[a-z]+://[a-z0-9.-]+(:[1-9][0-9]{0,4})?")
          ? ofUrl(entry)
          : Optional.empty();
    }
    int colon = entry.indexOf(':');
    String host = colon < 0 ? entry : entry.substring(0, colon);
    if (!HOST.matcher(host).matches()) {
      return Optional.empty();
    }
    if (colon < 0) {
      return Optional.of(new BasicOrigin("https", host, 443));
    }
    return port(entry.substring(colon + 1)).map(port -> new BasicOrigin("https", host, port));
  }

  /** The origin of an http or https URL, if it has one. */
  static Optional<BasicOrigin> ofUrl(String url) {
    URI uri;
    try {
      uri = new URI(url);
    } catch (URISyntaxException e) {
      return Optional.empty();
    }
    String scheme = uri.getScheme() == null ? "" : uri.getScheme().toLowerCase(Locale.ROOT);
    String host = uri.getHost() == null ? "" : uri.getHost().toLowerCase(Locale.ROOT);
    if (!(scheme.equals("http") || scheme.equals("https"))
        || !HOST.matcher(host).matches()
        || uri.getPort() > 65535) {
      return Optional.empty();
    }
    int port = uri.getPort() > 0 ? uri.getPort() : scheme.equals("https") ? 443 : 80;
    return Optional.of(new BasicOrigin(scheme, host, port));
  }

  private static Optional<Integer> port(String text) {
    if (!PORT.matcher(text).matches() || Integer.parseInt(text) > 65535) {
      return Optional.empty();
    }
    return Optional.of(Integer.parseInt(text));
  }
}
