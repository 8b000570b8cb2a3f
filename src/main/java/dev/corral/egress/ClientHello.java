package dev.corral.egress;

import java.util.Objects;

/**
 * Reads the TLS server name (SNI) from the first bytes a client sends through a tunnel.
 *
 * <p>After the proxy has allowed {@code CONNECT example.com:443}, it can use this to check that the
 * client's TLS ClientHello names the same host. Only the first TLS record is read, and the whole
 * ClientHello must fit in it. Real clients send it this way, and it means the proxy never has to
 * buffer more than {@link #MAX_NEEDED} bytes.
 *
 * <p>The parser is strict. Every length is checked against the structure that holds it, and
 * anything inconsistent is reported as {@link Result.Malformed}. Bad input never makes it throw.
 */
final class ClientHello {

  /** The most bytes {@link #parse} will ever ask for: a record header plus 2^14 bytes. */
  static final int MAX_NEEDED = 5 + 16384;

  private static final int HEADER = 5;
  private static final int MAX_RECORD = 16384;
  private static final int CONTENT_TYPE_HANDSHAKE = 22;
  private static final int HANDSHAKE_CLIENT_HELLO = 1;
  private static final int EXTENSION_SERVER_NAME = 0;

  /** Encrypted Client Hello (0xfe0d) and its draft forerunner, encrypted SNI (0xffce). */
  private static final int EXTENSION_ENCRYPTED_CLIENT_HELLO = 0xfe0d;

  private static final int EXTENSION_ENCRYPTED_SERVER_NAME = 0xffce;
  private static final int NAME_TYPE_HOST_NAME = 0;
  private static final int MAX_HOST = 253;
  private static final int MAX_LABEL = 63;

  private ClientHello() {}

  /** What the first bytes of a TLS connection say. */
  sealed interface Result {

    /**
     * More bytes are needed. Wait until {@code needed} bytes in total have arrived, then parse
     * again.
     */
    record Incomplete(int needed) implements Result {}

    /**
     * The first byte is not a TLS handshake record, so this is not TLS (plain HTTP, for example).
     */
    record NotTls() implements Result {}

    /** A valid ClientHello that does not name a host. */
    record NoServerName() implements Result {}

    /** A valid ClientHello that names this host, in lower case and without a trailing dot. */
    record ServerName(String host) implements Result {}

    /** The bytes start like TLS but break the rules. {@code why} says how, for logging. */
    record Malformed(String why) implements Result {}
  }

  /**
   * Says what the first {@code length} bytes of {@code buffer} hold.
   *
   * <p>Call it again with more bytes whenever it returns {@link Result.Incomplete}. Bytes after the
   * first TLS record are ignored.
   *
   * @throws IndexOutOfBoundsException if {@code length} is negative or larger than the buffer
   */
  static Result parse(byte[] buffer, int length) {
    Objects.checkFromIndexSize(0, length, buffer.length);
    if (length == 0) {
      return new Result.Incomplete(HEADER);
    }
    if ((buffer[0] & 0xff) != CONTENT_TYPE_HANDSHAKE) {
      return new Result.NotTls();
    }
    if (length >= 2 && buffer[1] != 3) {
      return new Result.Malformed("record version is not 3.x");
    }
    if (length < HEADER) {
      return new Result.Incomplete(HEADER);
    }
    int recordLength = ((buffer[3] & 0xff) << 8) | (buffer[4] & 0xff);
    if (recordLength == 0) {
      return new Result.Malformed("empty record");
    }
    if (recordLength > MAX_RECORD) {
      return new Result.Malformed("record longer than 16384 bytes");
    }
    // Reject what can already be seen to be wrong, rather than wait for the whole record.
    if (length >= HEADER + 1 && buffer[HEADER] != HANDSHAKE_CLIENT_HELLO) {
      return new Result.Malformed("first handshake message is not a ClientHello");
    }
    if (length >= HEADER + 4 && recordLength >= 4) {
      int helloLength = ((buffer[6] & 0xff) << 16) | ((buffer[7] & 0xff) << 8) | (buffer[8] & 0xff);
      if (helloLength + 4 != recordLength) {
        return new Result.Malformed(
            helloLength + 4 > recordLength
                ? "ClientHello does not fit in the first record"
                : "data after the ClientHello in the first record");
      }
    }
    if (length < HEADER + recordLength) {
      return new Result.Incomplete(HEADER + recordLength);
    }
    try {
      return parseRecord(new Reader(buffer, HEADER, HEADER + recordLength));
    } catch (MalformedException e) {
      return new Result.Malformed(e.getMessage());
    }
  }

  private static Result parseRecord(Reader record) {
    if (record.u8("handshake type") != HANDSHAKE_CLIENT_HELLO) {
      throw new MalformedException("first handshake message is not a ClientHello");
    }
    Reader hello = record.take(record.u24("ClientHello length"), "ClientHello");
    record.expectEnd("data after the ClientHello in the first record");

    if (hello.u8("client version") != 3) {
      throw new MalformedException("client version is not 3.x");
    }
    hello.skip(1 + 32, "client version and random");
    int sessionIdLength = hello.u8("session id length");
    if (sessionIdLength > 32) {
      throw new MalformedException("session id longer than 32 bytes");
    }
    hello.skip(sessionIdLength, "session id");
    int cipherSuitesLength = hello.u16("cipher suites length");
    if (cipherSuitesLength < 2 || cipherSuitesLength % 2 != 0) {
      throw new MalformedException("cipher suites length is not a positive even number");
    }
    hello.skip(cipherSuitesLength, "cipher suites");
    int compressionLength = hello.u8("compression methods length");
    if (compressionLength < 1) {
      throw new MalformedException("no compression methods");
    }
    hello.skip(compressionLength, "compression methods");
    if (hello.atEnd()) {
      return new Result.NoServerName(); // A ClientHello may have no extensions at all.
    }
    Reader extensions = hello.take(hello.u16("extensions length"), "extensions");
    hello.expectEnd("data after the extensions");

    String host = null;
    boolean seenServerName = false;
    while (!extensions.atEnd()) { // Each turn consumes at least 4 bytes, so this ends.
      int type = extensions.u16("extension type");
      Reader data = extensions.take(extensions.u16("extension length"), "extension data");
      if (type == EXTENSION_ENCRYPTED_CLIENT_HELLO || type == EXTENSION_ENCRYPTED_SERVER_NAME) {
        // the server name it shows is not the one the server may serve: the real one is sealed
        throw new MalformedException(
            "the ClientHello encrypts its server name (ECH), which corral cannot check against"
                + " allowed_hosts; turn ECH off in the client (Chrome:"
                + " --disable-features=EncryptedClientHello)");
      }
      if (type == EXTENSION_SERVER_NAME) {
        if (seenServerName) {
          throw new MalformedException("more than one server_name extension");
        }
        seenServerName = true;
        host = parseServerNameExtension(data);
      }
    }
    return host == null ? new Result.NoServerName() : new Result.ServerName(host);
  }

  /** Returns the host_name entry, or null if the list has none. */
  private static String parseServerNameExtension(Reader data) {
    Reader list = data.take(data.u16("server name list length"), "server name list");
    data.expectEnd("data after the server name list");
    if (list.atEnd()) {
      throw new MalformedException("empty server name list");
    }
    String host = null;
    while (!list.atEnd()) { // Each turn consumes at least 3 bytes, so this ends.
      int nameType = list.u8("server name type");
      // RFC 6066 defines only host_name; other types are assumed to carry a 2-byte length too.
      Reader name = list.take(list.u16("server name length"), "server name");
      if (nameType == NAME_TYPE_HOST_NAME) {
        if (host != null) {
          throw new MalformedException("more than one host_name entry");
        }
        host = hostName(name);
      }
    }
    return host;
  }

  /** Checks a host name and returns it in lower case, without a trailing dot. */
  private static String hostName(Reader name) {
    int start = name.pos;
    int end = name.end;
    if (end > start && name.buf[end - 1] == '.') {
      end--;
    }
    if (end == start) {
      throw new MalformedException("empty host name");
    }
    if (end - start > MAX_HOST) {
      throw new MalformedException("host name longer than 253 characters");
    }
    char[] host = new char[end - start];
    int labelLength = 0;
    for (int i = start; i < end; i++) {
      int c = name.buf[i] & 0xff;
      if (c == '.') {
        if (labelLength == 0) {
          throw new MalformedException("empty label in host name");
        }
        labelLength = 0;
      } else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-') {
        labelLength++;
      } else if (c >= 'A' && c <= 'Z') {
        c += 'a' - 'A';
        labelLength++;
      } else {
        throw new MalformedException(
            "host name has a character other than a letter, digit, hyphen or dot");
      }
      if (labelLength > MAX_LABEL) {
        throw new MalformedException("host name label longer than 63 characters");
      }
      host[i - start] = (char) c;
    }
    return new String(host);
  }

  /**
   * Reads big-endian numbers and length-prefixed parts from a slice of the buffer, within bounds.
   */
  private static final class Reader {
    final byte[] buf;
    int pos;
    final int end;

    Reader(byte[] buf, int pos, int end) {
      this.buf = buf;
      this.pos = pos;
      this.end = end;
    }

    boolean atEnd() {
      return pos == end;
    }

    int u8(String what) {
      need(1, what);
      return buf[pos++] & 0xff;
    }

    int u16(String what) {
      need(2, what);
      int value = ((buf[pos] & 0xff) << 8) | (buf[pos + 1] & 0xff);
      pos += 2;
      return value;
    }

    int u24(String what) {
      need(3, what);
      int value = ((buf[pos] & 0xff) << 16) | ((buf[pos + 1] & 0xff) << 8) | (buf[pos + 2] & 0xff);
      pos += 3;
      return value;
    }

    void skip(int n, String what) {
      need(n, what);
      pos += n;
    }

    /** Returns the next {@code n} bytes as their own reader, and moves past them. */
    Reader take(int n, String what) {
      need(n, what);
      Reader part = new Reader(buf, pos, pos + n);
      pos += n;
      return part;
    }

    void expectEnd(String what) {
      if (pos != end) {
        throw new MalformedException(what);
      }
    }

    private void need(int n, String what) {
      if (n > end - pos) {
        throw new MalformedException(what + " runs past the end of the enclosing structure");
      }
    }
  }

  /** Carries a Malformed reason out of the parser; never leaves this class. */
  private static final class MalformedException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    MalformedException(String message) {
      super(message, null, false, false);
    }
  }
}
