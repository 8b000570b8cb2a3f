package dev.corral.egress;

import dev.corral.common.ProxyWire;
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
 * {@code Host} is the tunnel's host, and then that request alone. Whatever a server might read as
 * an HTTP request line (a word, then a space or tab) is judged as one, strictly; a PROXY protocol
 * header, or a space before the first word, is refused. Bytes that no server reads as HTTP (an SSH
 * banner, a binary handshake) pass.
 */
final class TunnelOpening {

  /** The most bytes looked at: a whole TLS record, or an HTTP request head. */
  static final int MAX_BYTES = ClientHello.MAX_NEEDED;

  /** A method token's characters (RFC 9110, 5.6.2): servers accept more than upper case. */
  private static final String TOKEN = "[!#$%&'*+.^_`|~0-9A-Za-z-]";

  /** The signature that opens a PROXY protocol v2 header. */
  private static final String PROXY_V2_TEXT = "\r\n\r\n\0\r\nQUIT\n";

  private static final byte[] PROXY_V2 = PROXY_V2_TEXT.getBytes(StandardCharsets.ISO_8859_1);

  /** A request for a path (origin-form) or {@code *}: its Host header is all that names a site. */
  private static final Pattern REQUEST_LINE =
      Pattern.compile("^" + TOKEN + "{1,32} (/[^ \r\n]*|\\*) HTTP/1\\.[01]\r\n");

  /**
   * A Host header's line, its value with the spaces before it. Both parts are possessive, and the
   * spaces after the value are cut in Java: a lazy value before optional spaces backtracked over
   * every space of a long line, seconds of an event loop for a 16 KiB head.
   */
  private static final Pattern HOST =
      Pattern.compile("\r\nhost:[ \t]*+([^\r\n]*+)", Pattern.CASE_INSENSITIVE);

  private final String host;
  private final int port;
  private final byte[] bytes = new byte[MAX_BYTES];
  private int length;

  /** How many bytes the opening must have before a verdict can change (a TLS record's). */
  private int needed = 1;

  /** The empty lines skipped so far before an HTTP request line. */
  private int blank;

  /** Where the run of token characters after the empty lines ends, as far as it was read. */
  private int tokenEnd;

  /** Whether the opening starts as an HTTP request (its method and a space came). */
  private boolean request;

  /** How far the search for an HTTP request head's end has gone. */
  private int scanned;

  /**
   * The opening of a tunnel to {@code host:port}. Fed its bytes as they come, it looks at each byte
   * a bounded number of times, however the client splits them: a client that sends one byte at a
   * time costs no more than one that sends them at once.
   */
  TunnelOpening(String host, int port) {
    this.host = host;
    this.port = port;
  }

  /** What to do with a tunnel. */
  sealed interface Verdict {
    /** Not enough bytes yet. */
    record NeedMore() implements Verdict {}

    record Pass() implements Verdict {}

    record Refuse(String why) implements Verdict {}

    /**
     * An HTTP request for the tunnel's host: its head is the first {@code headLength} bytes (the
     * empty lines before it included), and these are its {@code lines} (the request line first).
     * Only this request may pass: a later one on the connection would name a host no check saw.
     */
    record Request(int headLength, String[] lines) implements Verdict {}
  }

  /**
   * What to do with the tunnel, now that its client sent {@code count} more bytes from {@code
   * chunk[offset]} (those past {@link #MAX_BYTES} in all are not looked at).
   */
  Verdict add(byte[] chunk, int offset, int count) {
    int taken = Math.min(count, MAX_BYTES - length);
    System.arraycopy(chunk, offset, bytes, length, taken);
    length += taken;
    if (length < needed) {
      return new Verdict.NeedMore();
    }
    if (bytes[0] == 22) {
      ClientHello.Result hello = ClientHello.parse(bytes, length);
      if (hello instanceof ClientHello.Result.Incomplete incomplete) {
        needed = incomplete.needed();
      }
      return tls(hello, host);
    }
    if (!request && startsWith(PROXY_V2)) {
      return new Verdict.Refuse(
          "it opens with a PROXY protocol header, which would name another client to the server");
    }
    if (!request && length < PROXY_V2.length && PROXY_V2_TEXT.startsWith(text(0, length))) {
      return new Verdict.NeedMore();
    }
    // servers skip empty lines before a request line (RFC 9112, 2.2), so this does too
    while (blank < length && (bytes[blank] == '\r' || bytes[blank] == '\n')) {
      blank++;
    }
    if (blank == length) {
      return length >= MAX_BYTES
          ? new Verdict.Refuse("its opening is " + MAX_BYTES + " bytes of empty lines")
          : new Verdict.NeedMore();
    }
    if (!request) {
      // What a server might read as a request line is judged as one, strictly (fail closed):
      // servers differ in the methods they take (nginx takes a token of any length) and in the
      // spaces between the parts (RFC 9112, 3: any whitespace), so any run of token characters
      // that a space or tab ends starts a request. Only an opening no server reads as HTTP passes.
      if (isSpace(bytes[blank])) {
        return new Verdict.Refuse("it opens with a space, which a lenient server may skip");
      }
      tokenEnd = Math.max(tokenEnd, blank);
      while (tokenEnd < length && isToken(bytes[tokenEnd])) {
        tokenEnd++;
      }
      if (tokenEnd == length) {
        return length >= MAX_BYTES
            ? new Verdict.Refuse("its opening is " + MAX_BYTES + " bytes of one word")
            : new Verdict.NeedMore(); // a method's first letters: a request may still follow
      }
      if (tokenEnd > blank && bytes[tokenEnd] == '\r' && tokenEnd + 1 == length) {
        return new Verdict.NeedMore(); // a CR alone may part a request line's words
      }
      boolean bareCr =
          bytes[tokenEnd] == '\r' && tokenEnd + 1 < length && bytes[tokenEnd + 1] != '\n';
      if (tokenEnd == blank || !(isSpace(bytes[tokenEnd]) || bareCr)) {
        return new Verdict.Pass(); // another protocol (an SSH banner, a binary handshake)
      }
      request = true;
    }
    // a request, however it is split: its whole head is needed
    int end = headEnd(Math.max(blank, scanned - 3));
    scanned = length;
    if (end < 0) {
      return length >= MAX_BYTES
          ? new Verdict.Refuse("its first HTTP request head is longer than " + MAX_BYTES + " bytes")
          : new Verdict.NeedMore();
    }
    String head = text(blank, end + 2);
    if (!REQUEST_LINE.matcher(head).lookingAt()) {
      // HTTP/2 names its host unseen; an absolute URL would name the host a server goes by
      return new Verdict.Refuse(
          "its first request is not an HTTP/1 request for a path (GET /path HTTP/1.1)");
    }
    if (head.replace("\r\n", "").indexOf('\n') >= 0
        || head.replace("\r\n", "").indexOf('\r') >= 0
        || head.contains("\n ")
        || head.contains("\n\t")) {
      // a lenient server might read lines (and so a Host) this check does not see
      return new Verdict.Refuse("its first HTTP request has bare CR or LF, or folded lines");
    }
    var badField = ProxyWire.badFieldName(head);
    if (badField.isPresent()) {
      // a lenient server might read "Host : other" as a Host this check does not see
      return new Verdict.Refuse("its first HTTP request: " + badField.get());
    }
    Matcher named = HOST.matcher(head);
    if (!named.find()) {
      return new Verdict.Refuse("its first HTTP request has no Host header");
    }
    String value = named.group(1);
    int cut = value.length();
    while (cut > 0 && (value.charAt(cut - 1) == ' ' || value.charAt(cut - 1) == '\t')) {
      cut--;
    }
    value = value.substring(0, cut);
    if (named.find()) {
      return new Verdict.Refuse("its first HTTP request has two Host headers");
    }
    return sameHost(value, host, port)
        ? new Verdict.Request(end + 4, text(blank, end).split("\r\n"))
        : new Verdict.Refuse(
            "its HTTP request names the host '" + printable(value) + "', not " + host);
  }

  private boolean startsWith(byte[] prefix) {
    if (length < prefix.length) {
      return false;
    }
    for (int i = 0; i < prefix.length; i++) {
      if (bytes[i] != prefix[i]) {
        return false;
      }
    }
    return true;
  }

  /**
   * Whether {@code b} is whitespace some server splits a request line at: SP and HTAB, and VT and
   * FF (RFC 9112, 3, allows any whitespace; a split on Python's notion of it takes those too).
   */
  private static boolean isSpace(byte b) {
    return b == ' ' || b == '\t' || b == 0x0b || b == 0x0c;
  }

  /** Whether {@code b} is a token character (RFC 9110, 5.6.2). */
  private static boolean isToken(byte b) {
    return (b >= 'a' && b <= 'z')
        || (b >= 'A' && b <= 'Z')
        || (b >= '0' && b <= '9')
        || "!#$%&'*+-.^_`|~".indexOf(b) >= 0;
  }

  /** Where the first CR LF CR LF at or after {@code from} starts, or -1. */
  private int headEnd(int from) {
    for (int i = from; i + 3 < length; i++) {
      if (bytes[i] == '\r'
          && bytes[i + 1] == '\n'
          && bytes[i + 2] == '\r'
          && bytes[i + 3] == '\n') {
        return i;
      }
    }
    return -1;
  }

  private String text(int from, int to) {
    return new String(bytes, from, to - from, StandardCharsets.ISO_8859_1);
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
