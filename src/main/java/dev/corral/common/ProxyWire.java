package dev.corral.common;

import io.vertx.core.Vertx;
import io.vertx.core.buffer.Buffer;
import io.vertx.core.net.NetSocket;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.util.Locale;
import java.util.Optional;
import java.util.function.BiConsumer;

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
    Buffer head = Buffer.buffer();
    long deadline =
        vertx.setTimer(
            HEAD_TIMEOUT_MS, id -> refuse(connection, who, 408, "the request head took too long"));
    connection.handler(
        chunk -> {
          // only the new bytes, and the three before them, can complete the head's end
          int from = Math.max(0, head.length() - (HEAD_END.length() - 1));
          head.appendBuffer(chunk);
          int end = indexOf(head, HEAD_END, from);
          if (end < 0) {
            if (head.length() > MAX_HEAD) {
              vertx.cancelTimer(deadline);
              refuse(
                  connection, who, 431, "the request head is larger than " + MAX_HEAD + " bytes");
            }
            return;
          }
          vertx.cancelTimer(deadline);
          String text = head.getString(0, end, StandardCharsets.ISO_8859_1.name());
          Optional<String> malformed = malformed(text);
          if (malformed.isPresent()) {
            refuse(connection, who, 400, malformed.get());
            return;
          }
          connection.pause();
          connection.handler(null);
          then.accept(text, head.getBuffer(end + 4, head.length()));
        });
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

  /** Stops reading a head, and answers with a refusal. */
  private static void refuse(NetSocket connection, String who, int status, String reason) {
    connection.handler(null);
    answer(connection, who, status, reason);
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
    for (int i = 1; i < lines.length; i++) {
      String lower = lines[i].toLowerCase(Locale.ROOT);
      if (lower.startsWith("proxy-")
          || lower.startsWith("connection:")
          || lower.startsWith("keep-alive:")
          || lower.startsWith("host:")) {
        continue;
      }
      head.append(lines[i]).append("\r\n");
    }
    return head.append("Connection: close\r\n\r\n").toString();
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
