package dev.corral.common;

import io.vertx.core.Vertx;
import io.vertx.core.buffer.Buffer;
import io.vertx.core.net.NetSocket;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.util.Locale;
import java.util.Optional;
import java.util.function.BiConsumer;
import java.util.regex.Pattern;

/**
 * The wire of corral's HTTP proxies (the sandboxes' egress, the server's own outbound calls): a
 * request head read within bounds, its target (CONNECT's {@code host:port} or a plain request's
 * absolute URL), the plain request rewritten for the origin server, a one-line refusal, and the
 * two-way pipe once a connection is admitted.
 */
public final class ProxyWire {

  /** The largest request head a proxy reads. */
  public static final int MAX_HEAD = 16 * 1024;

  /** How long a client may take to send its request head. */
  public static final long HEAD_TIMEOUT_MS = 10_000;

  private static final Buffer HEAD_END = Buffer.buffer("\r\n\r\n");

  private ProxyWire() {}

  /**
   * Reads a request's head (at most {@link #MAX_HEAD} bytes within {@link #HEAD_TIMEOUT_MS}), then
   * hands it on with the bytes sent after it, the connection paused; otherwise answers with a
   * refusal that starts with {@code who}.
   */
  public static void readHead(
      Vertx vertx, NetSocket connection, String who, BiConsumer<String, Buffer> then) {
    readHead(
        vertx,
        connection,
        MAX_HEAD,
        HEAD_TIMEOUT_MS,
        Buffer.buffer(),
        (head, rest) -> {
          Optional<String> unnamed = badFieldName(head);
          if (unnamed.isPresent()) {
            answer(connection, who, 400, unnamed.get());
          } else {
            then.accept(head, rest);
          }
        },
        (status, reason) -> answer(connection, who, status, reason));
  }

  /** A field name of a request head is a token right before its colon (RFC 9112, 5.1). */
  private static final Pattern FIELD =
      Pattern.compile("[!#$%&'*+.^_`|~0-9A-Za-z-]+:.*", Pattern.DOTALL);

  /**
   * Why a request head's field line is not "name: value", if one is not: a server that reads {@code
   * Host : other} as a Host field would see a host the proxy did not check, and a {@code
   * Transfer-Encoding : chunked} the proxy read one way it might read the other.
   */
  public static Optional<String> badFieldName(String head) {
    String[] lines = head.split("\r\n");
    for (int i = 1; i < lines.length; i++) {
      if (!lines[i].isEmpty() && !FIELD.matcher(lines[i]).matches()) {
        return Optional.of(
            "the request head has a field line whose name is not a token right before its colon");
      }
    }
    return Optional.empty();
  }

  /**
   * Reads a request's or a response's head from {@code source}: at most {@code maxHead} bytes,
   * within {@code timeoutMs} if positive, {@code already} read from it first. Hands it on with the
   * bytes sent after it, {@code source} paused; or, if it is too large, too slow, malformed or
   * never ends, calls {@code refused} with the HTTP status that says so and why.
   */
  public static void readHead(
      Vertx vertx,
      NetSocket source,
      int maxHead,
      long timeoutMs,
      Buffer already,
      BiConsumer<String, Buffer> then,
      BiConsumer<Integer, String> refused) {
    Buffer head = Buffer.buffer();
    boolean[] over = {false};
    BiConsumer<Integer, String> refuse =
        (status, reason) -> {
          if (!over[0]) {
            over[0] = true;
            source.handler(null);
            source.endHandler(null);
            refused.accept(status, reason);
          }
        };
    long deadline =
        timeoutMs > 0
            ? vertx.setTimer(timeoutMs, id -> refuse.accept(408, "the head took too long"))
            : -1;
    source.endHandler(
        ignored -> {
          vertx.cancelTimer(deadline);
          refuse.accept(400, "the connection ended before the head did");
        });
    io.vertx.core.Handler<Buffer> consume =
        chunk -> {
          if (over[0]) {
            return;
          }
          // only the new bytes, and the three before them, can complete the head's end
          int from = Math.max(0, head.length() - (HEAD_END.length() - 1));
          head.appendBuffer(chunk);
          int end = indexOf(head, HEAD_END, from);
          if (end < 0) {
            if (head.length() > maxHead) {
              vertx.cancelTimer(deadline);
              refuse.accept(431, "the head is larger than " + maxHead + " bytes");
            }
            return;
          }
          vertx.cancelTimer(deadline);
          String text = head.getString(0, end, StandardCharsets.ISO_8859_1.name());
          Optional<String> malformed = malformed(text);
          if (malformed.isPresent()) {
            refuse.accept(400, malformed.get());
            return;
          }
          over[0] = true;
          source.pause();
          source.handler(null);
          source.endHandler(null);
          then.accept(text, head.getBuffer(end + 4, head.length()));
        };
    source.handler(consume);
    if (already.length() > 0) {
      consume.handle(already);
    }
    if (!over[0]) {
      source.resume(); // (paused after an earlier head)
    }
  }

  /** Whether a response head is an interim one (1xx) that a final response follows. */
  public static boolean interim(String head) {
    String status = status(head);
    return status.startsWith("1") && !status.equals("101");
  }

  /**
   * The status code of a response head.
   *
   * @throws IllegalArgumentException if it is not an HTTP/1 response's
   */
  private static String status(String head) {
    String first = head.split("\r\n", 2)[0];
    String[] status = first.split(" ", 3);
    if (status.length < 2
        || !status[0].startsWith("HTTP/1.")
        || !status[1].matches("[1-5][0-9][0-9]")) {
      throw new IllegalArgumentException("not an HTTP/1 response");
    }
    return status[1];
  }

  /**
   * A response head as corral's own clients get it through the proxy: their connection to the proxy
   * ends with this response ({@code Connection: close}), so that a client's pool never sends a
   * later request, to another server, down the pipe to this one. An interim (1xx) response is
   * refused: its final response would pass unseen.
   *
   * @throws IllegalArgumentException if the head is not an HTTP/1 final response
   */
  public static String closingResponse(String head) {
    String[] lines = head.split("\r\n");
    String status = status(head);
    if (status.equals("101")) {
      throw new IllegalArgumentException("a switch of protocols (101)");
    }
    if (status.startsWith("1")) {
      throw new IllegalArgumentException("an interim " + status + " response");
    }
    return closing(
        new StringBuilder(lines[0]).append("\r\n"),
        lines,
        lower ->
            lower.startsWith("connection:")
                || lower.startsWith("keep-alive:")
                || lower.startsWith("proxy-connection:"));
  }

  /**
   * A request head ({@code lines}, the request line first) as one exchange only: {@code Connection:
   * close}, and no upgrade of the connection to another protocol.
   */
  public static String closingRequest(String[] lines) {
    return closing(
        new StringBuilder(lines[0]).append("\r\n"),
        lines,
        lower ->
            lower.startsWith("connection:")
                || lower.startsWith("keep-alive:")
                || lower.startsWith("upgrade:")
                || lower.startsWith("proxy-connection:"));
  }

  /**
   * {@code head} followed by the header lines of {@code lines} (all but the first) but those {@code
   * dropped} names (given in lower case), and {@code Connection: close}: a head of one exchange
   * only.
   */
  private static String closing(
      StringBuilder head, String[] lines, java.util.function.Predicate<String> dropped) {
    for (int i = 1; i < lines.length; i++) {
      if (!dropped.test(lines[i].toLowerCase(Locale.ROOT))) {
        head.append(lines[i]).append("\r\n");
      }
    }
    return head.append("Connection: close\r\n\r\n").toString();
  }

  /**
   * Why a request head cannot be passed on, if it cannot: a server or proxy further on may read a
   * bare CR or LF, another control character, or a folded line as the end of a line (and so see
   * headers, or a request, that no check here saw).
   */
  static Optional<String> malformed(String head) {
    for (int i = 0; i < head.length(); i++) {
      char c = head.charAt(i);
      if (c == '\r' && i + 1 < head.length() && head.charAt(i + 1) == '\n') {
        i++;
        if (i + 1 < head.length() && (head.charAt(i + 1) == ' ' || head.charAt(i + 1) == '\t')) {
          return Optional.of("the request head has a folded line");
        }
        continue;
      }
      if (c == '\r' || c == '\n' || (c < 0x20 && c != '\t') || c == 0x7f) {
        return Optional.of("the request head has a bare CR or LF, or a control character");
      }
    }
    return Optional.empty();
  }

  /** Answers with a status and a one-line reason that starts with {@code who}, and closes. */
  public static void answer(NetSocket connection, String who, int status, String reason) {
    String body = who + ": " + reason + "\n";
    connection
        .write(
            Buffer.buffer(
                "HTTP/1.1 "
                    + status
                    + " "
                    + (status == 403 ? "Forbidden" : status == 502 ? "Bad Gateway" : "Refused")
                    + "\r\nContent-Type: text/plain\r\nContent-Length: "
                    + body.getBytes(StandardCharsets.UTF_8).length
                    + "\r\nConnection: close\r\n\r\n"
                    + body))
        .onComplete(ignored -> connection.close());
  }

  /** Sends what the client sent so far, then pipes the two ways. */
  public static void join(NetSocket connection, NetSocket upstream, Buffer sent) {
    if (sent.length() > 0) {
      upstream.write(sent);
    }
    connection.pipeTo(upstream);
    upstream.pipeTo(connection);
  }

  /**
   * The request as the origin server gets it: origin-form, no proxy headers, one request, and the
   * {@code Host} the policy checked (a server of many sites would serve the one a client's own
   * {@code Host} names).
   */
  public static String originForm(String method, Target target, String[] lines) {
    StringBuilder head =
        new StringBuilder(method)
            .append(' ')
            .append(target.pathAndQuery())
            .append(" HTTP/1.1\r\nHost: ")
            .append(target.authority())
            .append("\r\n");
    return closing(
        head,
        lines,
        lower ->
            lower.startsWith("proxy-")
                || lower.startsWith("connection:")
                || lower.startsWith("keep-alive:")
                || lower.startsWith("host:"));
  }

  private static int indexOf(Buffer buffer, Buffer needle, int from) {
    outer:
    for (int i = from; i + needle.length() <= buffer.length(); i++) {
      for (int j = 0; j < needle.length(); j++) {
        if (buffer.getByte(i + j) != needle.getByte(j)) {
          continue outer;
        }
      }
      return i;
    }
    return -1;
  }

  /** Where a request goes. */
  public record Target(String host, int port, String pathAndQuery) {

    public String authority() {
      return (host.contains(":") ? "[" + host + "]" : host) + (port == 80 ? "" : ":" + port);
    }

    /** The target of a request line ({@code CONNECT host:port}, or a plain absolute URL). */
    public static Target of(String method, String target) {
      return method.equals("CONNECT") ? ofAuthority(target) : ofUrl(target);
    }

    /** CONNECT's {@code host:port}. */
    public static Target ofAuthority(String authority) {
      URI uri;
      try {
        uri = new URI("tcp://" + authority);
      } catch (java.net.URISyntaxException e) {
        throw new IllegalArgumentException("CONNECT needs host:port");
      }
      if (uri.getHost() == null || uri.getPort() < 1) {
        throw new IllegalArgumentException("CONNECT needs host:port");
      }
      return new Target(strip(uri.getHost()), uri.getPort(), "");
    }

    /** A plain HTTP request's absolute URL. */
    public static Target ofUrl(String url) {
      URI uri;
      try {
        uri = new URI(url);
      } catch (java.net.URISyntaxException e) {
        throw new IllegalArgumentException("the request target is not a URL");
      }
      if (!"http".equalsIgnoreCase(uri.getScheme()) || uri.getHost() == null) {
        throw new IllegalArgumentException(
            "a plain request needs an absolute http:// URL (use CONNECT for https)");
      }
      if (uri.getRawUserInfo() != null) {
        throw new IllegalArgumentException("the request target must not hold user information");
      }
      String path = uri.getRawPath() == null || uri.getRawPath().isEmpty() ? "/" : uri.getRawPath();
      return new Target(
          strip(uri.getHost()),
          uri.getPort() < 0 ? 80 : uri.getPort(),
          path + (uri.getRawQuery() == null ? "" : "?" + uri.getRawQuery()));
    }

    private static String strip(String host) {
      String bare =
          host.startsWith("[") && host.endsWith("]") ? host.substring(1, host.length() - 1) : host;
      return bare.toLowerCase(Locale.ROOT);
    }
  }
}
