package dev.corral.egress;

import static dev.corral.egress.ClientHello.parse;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatCode;

import dev.corral.egress.ClientHello.Result;
import dev.corral.egress.ClientHello.Result.Incomplete;
import dev.corral.egress.ClientHello.Result.Malformed;
import dev.corral.egress.ClientHello.Result.NoServerName;
import dev.corral.egress.ClientHello.Result.NotTls;
import dev.corral.egress.ClientHello.Result.ServerName;
import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import javax.net.ssl.SNIHostName;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLEngine;
import javax.net.ssl.SSLParameters;
import org.junit.jupiter.api.Test;

class ClientHelloTest {

  // ---- Real ClientHellos from the JDK's own TLS client ----

  @Test
  void readsHostFromJdkClientHello() throws Exception {
    byte[] record = jdkClientHello("Example.COM");
    assertThat(parse(record, record.length)).isEqualTo(new ServerName("example.com"));
  }

  @Test
  void jdkClientHelloWithoutServerNames() throws Exception {
    byte[] record = jdkClientHello(null);
    assertThat(parse(record, record.length)).isEqualTo(new NoServerName());
  }

  @Test
  void everyPrefixIsIncomplete() throws Exception {
    byte[] record = jdkClientHello("example.com");
    for (int n = 0; n < record.length; n++) {
      // A copy of exactly n bytes, so reading past n would throw.
      Result result = parse(Arrays.copyOf(record, n), n);
      assertThat(result)
          .as("prefix of %d bytes", n)
          .isEqualTo(new Incomplete(n < 5 ? 5 : record.length));
    }
  }

  @Test
  void ignoresBytesAfterTheFirstRecord() throws Exception {
    byte[] record = jdkClientHello("example.com");
    byte[] more = Arrays.copyOf(record, record.length + 100);
    assertThat(parse(more, more.length)).isEqualTo(new ServerName("example.com"));
  }

  @Test
  void flippingBitsNeverThrows() throws Exception {
    byte[] record = jdkClientHello("example.com");
    for (int i = 0; i < record.length; i++) {
      for (int bit = 0; bit < 8; bit++) {
        byte[] corrupt = record.clone();
        corrupt[i] ^= (byte) (1 << bit);
        assertParsesToSomething(corrupt, "bit " + bit + " of byte " + i);
      }
    }
  }

  @Test
  void randomCorruptionNeverThrows() throws Exception {
    byte[] record = jdkClientHello("example.com");
    Random random = new Random(42);
    for (int round = 0; round < 20_000; round++) {
      byte[] corrupt = record.clone();
      int changes = 1 + random.nextInt(4);
      for (int c = 0; c < changes; c++) {
        corrupt[random.nextInt(corrupt.length)] = (byte) random.nextInt(256);
      }
      assertParsesToSomething(corrupt, "round " + round);
    }
  }

  // ---- Not TLS ----

  @Test
  void plainHttpIsNotTls() {
    byte[] http = "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n".getBytes(StandardCharsets.US_ASCII);
    assertThat(parse(http, http.length)).isEqualTo(new NotTls());
    assertThat(parse(http, 1)).isEqualTo(new NotTls());
  }

  // ---- Hand-built ClientHellos ----

  @Test
  void handBuiltClientHello() {
    assertThat(parseAll(record(serverName(hostEntry("api.Example.org")))))
        .isEqualTo(new ServerName("api.example.org"));
  }

  @Test
  void serverNameLengthPastTheEndIsMalformed() {
    byte[] host = ascii("example.com");
    // The host_name says 100 bytes, but only 11 follow; the enclosing lengths are consistent.
    byte[] entry = concat(new byte[] {0, 0, 100}, host);
    assertThat(parseAll(record(serverName(entry)))).isInstanceOf(Malformed.class);
  }

  @Test
  void extensionLengthPastTheEndIsMalformed() {
    byte[] ext = serverName(hostEntry("example.com"));
    ext[3] += 1; // extension length one more than the bytes in the extensions block
    assertThat(parseAll(record(ext))).isInstanceOf(Malformed.class);
  }

  @Test
  void noExtensionsAtAll() {
    assertThat(parseAll(recordWithoutExtensions())).isEqualTo(new NoServerName());
  }

  @Test
  void otherExtensionsOnly() {
    assertThat(parseAll(record(extension(10, new byte[] {0, 2, 0, 29}))))
        .isEqualTo(new NoServerName());
  }

  @Test
  void anEncryptedServerNameIsMalformed() {
    // ECH (or its forerunner, ESNI) seals the name the server will serve; the one shown may be
    // any allowed host of the same front
    for (int type : new int[] {0xfe0d, 0xffce}) {
      byte[] shown = serverName(hostEntry("allowed.example"));
      byte[] sealed = extension(type, new byte[] {0, 1, 0, 1, 0, 0});
      assertThat(parseAll(record(concat(shown, sealed))))
          .as("%x", type)
          .isInstanceOf(Malformed.class);
      assertThat(parseAll(record(concat(sealed, shown))))
          .as("%x", type)
          .isInstanceOf(Malformed.class);
    }
  }

  @Test
  void duplicateServerNameExtensionIsMalformed() {
    byte[] one = serverName(hostEntry("example.com"));
    byte[] two = serverName(hostEntry("evil.example"));
    assertThat(parseAll(record(concat(one, two)))).isInstanceOf(Malformed.class);
  }

  @Test
  void twoHostNameEntriesIsMalformed() {
    byte[] ext = serverName(concat(hostEntry("example.com"), hostEntry("evil.example")));
    assertThat(parseAll(record(ext))).isInstanceOf(Malformed.class);
  }

  @Test
  void trailingDotIsDropped() {
    assertThat(parseAll(record(serverName(hostEntry("example.com.")))))
        .isEqualTo(new ServerName("example.com"));
  }

  @Test
  void badHostNamesAreMalformed() {
    for (String bad :
        List.of(
            "",
            ".",
            "exa_mple.com",
            "example.com:443",
            "a..b",
            ".a",
            "a b",
            "exämple.com",
            "a".repeat(64) + ".com",
            "a.".repeat(127) + "ab")) {
      assertThat(parseAll(record(serverName(hostEntry(bad)))))
          .as(bad)
          .isInstanceOf(Malformed.class);
    }
    byte[] nul = concat(new byte[] {0, 0, 4}, new byte[] {'a', 0, 'b', 'c'});
    assertThat(parseAll(record(serverName(nul)))).isInstanceOf(Malformed.class);
  }

  @Test
  void longestHostNameIsAccepted() {
    String host = ("a".repeat(63) + ".").repeat(3) + "a".repeat(61); // 253 characters
    assertThat(parseAll(record(serverName(hostEntry(host))))).isEqualTo(new ServerName(host));
  }

  @Test
  void recordHeaderChecks() {
    byte[] good = record(serverName(hostEntry("example.com")));

    byte[] badVersion = good.clone();
    badVersion[1] = 2;
    assertThat(parse(badVersion, 2)).isInstanceOf(Malformed.class);

    byte[] tooLong = {22, 3, 1, 0x40, 0x01}; // 16385 bytes
    assertThat(parse(tooLong, 5)).isInstanceOf(Malformed.class);

    byte[] longest = {22, 3, 1, 0x40, 0x00}; // 16384 bytes: the most it will ask for
    assertThat(parse(longest, 5)).isEqualTo(new Incomplete(ClientHello.MAX_NEEDED));

    byte[] empty = {22, 3, 1, 0, 0};
    assertThat(parse(empty, 5)).isInstanceOf(Malformed.class);

    byte[] notHello = good.clone();
    notHello[5] = 2;
    assertThat(parse(notHello, 6)).isInstanceOf(Malformed.class);
  }

  @Test
  void clientHelloSpanningRecordsIsMalformed() {
    byte[] good = record(serverName(hostEntry("example.com")));
    byte[] split = good.clone();
    split[8] += 1; // handshake length one more than the record holds
    assertThat(parse(split, 9)).isInstanceOf(Malformed.class);
    assertThat(parseAll(split)).isInstanceOf(Malformed.class);
  }

  // ---- Helpers ----

  private static void assertParsesToSomething(byte[] bytes, String description) {
    assertThatCode(
            () -> {
              Result result = parse(bytes, bytes.length);
              assertThat(result).as(description).isNotNull();
              if (result instanceof ServerName name) {
                assertThat(name.host()).as(description).matches("[a-z0-9.-]{1,253}");
              }
              if (result instanceof Incomplete incomplete) {
                assertThat(incomplete.needed())
                    .as(description)
                    .isBetween(bytes.length + 1, ClientHello.MAX_NEEDED);
              }
            })
        .as(description)
        .doesNotThrowAnyException();
  }

  /** The first record a JDK TLS client sends, naming {@code host} if it is not null. */
  private static byte[] jdkClientHello(String host) throws Exception {
    SSLEngine engine = SSLContext.getDefault().createSSLEngine();
    engine.setUseClientMode(true);
    if (host != null) {
      SSLParameters parameters = engine.getSSLParameters();
      parameters.setServerNames(List.of(new SNIHostName(host)));
      engine.setSSLParameters(parameters);
    }
    ByteBuffer out = ByteBuffer.allocate(engine.getSession().getPacketBufferSize());
    engine.wrap(ByteBuffer.allocate(0), out);
    out.flip();
    byte[] bytes = new byte[out.remaining()];
    out.get(bytes);
    assertThat(bytes.length).isGreaterThan(5);
    int recordLength = ((bytes[3] & 0xff) << 8) | (bytes[4] & 0xff);
    assertThat(bytes).hasSize(5 + recordLength); // wrap() gave exactly one record
    return bytes;
  }

  private static Result parseAll(byte[] bytes) {
    return parse(bytes, bytes.length);
  }

  private static byte[] hostEntry(String host) {
    byte[] name = host.getBytes(StandardCharsets.UTF_8);
    return concat(new byte[] {0}, u16(name.length), name);
  }

  private static byte[] serverName(byte[] entries) {
    return extension(0, concat(u16(entries.length), entries));
  }

  private static byte[] extension(int type, byte[] data) {
    return concat(u16(type), u16(data.length), data);
  }

  private static byte[] record(byte[] extensions) {
    return wrapHello(concat(helloStart(), u16(extensions.length), extensions));
  }

  private static byte[] recordWithoutExtensions() {
    return wrapHello(helloStart());
  }

  /** Client version, random, empty session id, one cipher suite, null compression. */
  private static byte[] helloStart() {
    return concat(
        new byte[] {3, 3},
        new byte[32],
        new byte[] {0},
        new byte[] {0, 2, 0x13, 0x01},
        new byte[] {1, 0});
  }

  private static byte[] wrapHello(byte[] body) {
    byte[] handshake =
        concat(
            new byte[] {
              1, (byte) (body.length >> 16), (byte) (body.length >> 8), (byte) body.length
            },
            body);
    return concat(new byte[] {22, 3, 1}, u16(handshake.length), handshake);
  }

  private static byte[] u16(int value) {
    return new byte[] {(byte) (value >> 8), (byte) value};
  }

  private static byte[] ascii(String s) {
    return s.getBytes(StandardCharsets.US_ASCII);
  }

  private static byte[] concat(byte[]... parts) {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    for (byte[] part : parts) {
      out.writeBytes(part);
    }
    return out.toByteArray();
  }
}
