package dev.corral.egress;

import java.nio.charset.StandardCharsets;
import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * What the first bytes a client sends through a CONNECT tunnel say about the host it talks to. An
 * allow-list checks the address a tunnel goes to, but a server that hosts many sites (a CDN) picks
 * the site from the TLS server name, or from an HTTP request's {@code Host}: a tunnel to an allowed
 * host that names another one would reach that other site. So a tunnel under an allow-list carries
 * on only if its TLS ClientHello names the tunnel's host (or no host), or its first HTTP request's
 * {@code Host} is the tunnel's host. Bytes that are neither (another protocol) pass.
 */
final class TunnelOpening {

  /** The most bytes looked at: a whole TLS record, or an HTTP request head. */
  static final int MAX_BYTES = ClientHello.MAX_NEEDED;

  /** A method token's characters (RFC 9110, 5.6.2): servers accept more than upper case. */
  private static final String TOKEN = "[!#$%&'*+.^_`|~0-9A-Za-z-]";

  private static final Pattern METHOD_SO_FAR = Pattern.compile(TOKEN + "{1,32}");
  private static final Pattern METHOD = Pattern.compile("^" + TOKEN + "{1,32} ");

  /** A request for a path (origin-form) or {@code *}: its Host header is all that names a site. */
  private static final Pattern REQUEST_LINE =
      Pattern.compile("^" + TOKEN + "{1,32} (/[^ \r\n]*|\\*) HTTP/1\\.[01]\r\n");

  private static final Pattern HOST =
      Pattern.compile("\r\nhost:[ \t]*([^\r\n]*?)[ \t]*(?=\r\n)", Pattern.CASE_INSENSITIVE);

  private TunnelOpening() {}

  /** What to do with a tunnel whose client sent {@code length} bytes of {@code bytes} so far. */
  sealed interface Verdict {
    /** Not enough bytes yet. */
    record NeedMore() implements Verdict {}

    record Pass() implements Verdict {}

    record Refuse(String why) implements Verdict {}
  }

  static Verdict check(byte[] bytes, int length, String host, int port) {
    if (length == 0) {
      return new Verdict.NeedMore();
    }
    if (bytes[0] == 22) {
      return tls(ClientHello.parse(bytes, length), host);
    }
    // servers skip empty lines before a request line (RFC 9112, 2.2), so this does too
    int seen = Math.min(length, MAX_BYTES);
    int from = 0;
    while (from < seen && (bytes[from] == '\r' || bytes[from] == '\n')) {
      from++;
    }
    if (from == seen) {
      return length >= MAX_BYTES
          ? new Verdict.Refuse("its opening is " + MAX_BYTES + " bytes of empty lines")
          : new Verdict.NeedMore();
    }
    String start = new String(bytes, from, seen - from, StandardCharsets.ISO_8859_1);
    if (METHOD_SO_FAR.matcher(start).matches()) {
      return new Verdict.NeedMore(); // a method's first letters: a request may still follow
    }
    if (!METHOD.matcher(start).lookingAt()) {
      return new Verdict.Pass(); // another protocol
    }
    // a request, however it is split: its whole head is needed
    int end = start.indexOf("\r\n\r\n");
    if (end < 0) {
      return length >= MAX_BYTES
          ? new Verdict.Refuse("its first HTTP request head is longer than " + MAX_BYTES + " bytes")
          : new Verdict.NeedMore();
    }
    if (!REQUEST_LINE.matcher(start).lookingAt()) {
      // HTTP/2 names its host unseen; an absolute URL would name the host a server goes by
      return new Verdict.Refuse(
          "its first request is not an HTTP/1 request for a path (GET /path HTTP/1.1)");
    }
    String head = start.substring(0, end + 2);
    if (head.replace("\r\n", "").indexOf('\n') >= 0
        || head.replace("\r\n", "").indexOf('\r') >= 0
        || head.contains("\n ")
        || head.contains("\n\t")) {
      // a lenient server might read lines (and so a Host) this check does not see
      return new Verdict.Refuse("its first HTTP request has bare CR or LF, or folded lines");
    }
    Matcher named = HOST.matcher(head);
    if (!named.find()) {
      return new Verdict.Refuse("its first HTTP request has no Host header");
    }
    String value = named.group(1);
    if (named.find()) {
      return new Verdict.Refuse("its first HTTP request has two Host headers");
    }
    return sameHost(value, host, port)
        ? new Verdict.Pass()
        : new Verdict.Refuse(
            "its HTTP request names the host '" + printable(value) + "', not " + host);
  }

  private static Verdict tls(ClientHello.Result hello, String host) {
    if (hello instanceof ClientHello.Result.Incomplete) {
      return new Verdict.NeedMore();
    }
    if (hello instanceof ClientHello.Result.NoServerName) {
      return new Verdict.Pass();
    }
    if (hello instanceof ClientHello.Result.ServerName named) {
      return named.host().equalsIgnoreCase(host)
          ? new Verdict.Pass()
          : new Verdict.Refuse("its TLS server name is " + named.host() + ", not " + host);
    }
    if (hello instanceof ClientHello.Result.Malformed malformed) {
      return new Verdict.Refuse("its TLS ClientHello could not be read (" + malformed.why() + ")");
    }
    return new Verdict.Refuse("it does not start as TLS");
  }

  /** Whether a {@code Host} value ({@code name[:port]}, {@code [v6][:port]}) is the tunnel's. */
  private static boolean sameHost(String value, String host, int port) {
    String name = value;
    String given = null;
    if (value.startsWith("[")) {
      int close = value.indexOf(']');
      if (close < 0) {
        return false;
      }
      name = value.substring(1, close);
      String after = value.substring(close + 1);
      if (!after.isEmpty()) {
        if (!after.startsWith(":")) {
          return false;
        }
        given = after.substring(1);
      }
    } else {
      int colon = value.lastIndexOf(':');
      if (colon >= 0) {
        name = value.substring(0, colon);
        given = value.substring(colon + 1);
      }
    }
    if (name.endsWith(".")) {
      name = name.substring(0, name.length() - 1);
    }
    if (!name.toLowerCase(Locale.ROOT).equals(host.toLowerCase(Locale.ROOT))) {
      return false;
    }
    return given == null || given.equals(Integer.toString(port));
  }

  private static String printable(String value) {
    String cut = value.length() > 100 ? value.substring(0, 100) + "..." : value;
    return cut.replaceAll("[^\\x20-\\x7e]", "?");
  }
}
