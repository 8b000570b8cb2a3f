package dev.corral.egress;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;

import dev.corral.common.AddressRules;
import io.vertx.core.buffer.Buffer;
import java.net.InetAddress;
import java.nio.charset.StandardCharsets;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * The egress proxy's rules without a sandbox: which addresses are never reachable, how allow-list
 * patterns match, how a request target is read and rewritten, and how a request body is framed.
 */
class EgressRulesTest {

  private final AddressRules rules = new AddressRules(List.of("10.9.0.0/16"));

  @Test
  void everyNonPublicAddressIsRefusedAndOnlyAnOpenedPrivateNetworkPasses() throws Exception {
    for (String address :
        List.of(
            "127.0.0.1",
            "127.255.0.9",
            "::1",
            "169.254.169.254",
            "fe80::1",
            "0.0.0.0",
            "::",
            "10.0.0.1",
            "172.16.3.4",
            "192.168.1.1",
            "100.64.0.1",
            "198.18.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:10.0.0.1",
            "64:ff9b::7f00:1",
            "64:ff9b:1::a00:1",
            "::ffff:0:7f00:1",
            "2002:7f00:1::1")) {
      assertThat(rules.refusal(InetAddress.getByName(address))).as(address).isPresent();
    }
    for (String address : List.of("93.184.215.14", "2606:4700::1111", "10.9.3.4")) {
      assertThat(rules.refusal(InetAddress.getByName(address))).as(address).isEmpty();
    }
    // Loopback and link-local stay closed whatever networks an operator opens.
    AddressRules everything = new AddressRules(List.of("0.0.0.0/0", "::/0"));
    assertThat(everything.refusal(InetAddress.getByName("127.0.0.1"))).isPresent();
    assertThat(everything.refusal(InetAddress.getByName("169.254.169.254"))).isPresent();
    assertThat(everything.refusal(InetAddress.getByName("::ffff:127.0.0.1"))).isPresent();
    // and so do cloud platforms' services outside link-local, for corral's own calls too
    AddressRules serverCalls = AddressRules.forServerCalls(List.of("0.0.0.0/0", "::/0"));
    for (String address :
        List.of(
            "168.63.129.16",
            "fd00:ec2::254",
            "fd00:ec2::23",
            "fd20:ce::254",
            "fd00:42::42",
            "100.100.100.200",
            "::ffff:168.63.129.16")) {
      assertThat(everything.refusal(InetAddress.getByName(address))).as(address).isPresent();
      assertThat(serverCalls.refusal(InetAddress.getByName(address))).as(address).isPresent();
      assertThat(rules.refusal(InetAddress.getByName(address))).as(address).isPresent();
    }
    assertThat(serverCalls.refusal(InetAddress.getByName("127.0.0.1"))).isEmpty();
  }

  @Test
  void allowListPatternsMatchExactNamesAndSubdomainsOnly() {
    List<String> allowed = List.of("api.github.com", "*.pypi.org", "203.0.113.7");

    assertThat(HostPatterns.allows(allowed, "api.github.com")).isTrue();
    assertThat(HostPatterns.allows(allowed, "API.GitHub.com.")).isTrue();
    assertThat(HostPatterns.allows(allowed, "files.pypi.org")).isTrue();
    assertThat(HostPatterns.allows(allowed, "a.b.pypi.org")).isTrue();
    assertThat(HostPatterns.allows(allowed, "203.0.113.7")).isTrue();
    assertThat(HostPatterns.allows(allowed, "pypi.org")).isFalse();
    assertThat(HostPatterns.allows(allowed, "evilpypi.org")).isFalse();
    assertThat(HostPatterns.allows(allowed, "github.com")).isFalse();
    assertThat(HostPatterns.allows(allowed, "api.github.com.evil.io")).isFalse();
    assertThat(HostPatterns.allows(allowed, "203.0.113.70")).isFalse();
  }

  @Test
  void requestTargetsAreReadStrictlyAndRewrittenForTheOrigin() {
    dev.corral.common.ProxyWire.Target connect =
        dev.corral.common.ProxyWire.Target.ofAuthority("Files.PyPI.org:443");
    dev.corral.common.ProxyWire.Target plain =
        dev.corral.common.ProxyWire.Target.ofUrl("http://example.com:8080/a/b?c=d");
    dev.corral.common.ProxyWire.Target v6 =
        dev.corral.common.ProxyWire.Target.ofAuthority("[::1]:22");

    assertThat(connect)
        .isEqualTo(new dev.corral.common.ProxyWire.Target("files.pypi.org", 443, ""));
    assertThat(plain)
        .isEqualTo(new dev.corral.common.ProxyWire.Target("example.com", 8080, "/a/b?c=d"));
    assertThat(v6.host()).isEqualTo("::1");
    for (String bad : List.of("example.com", "example.com:0", ":443", "a b:1")) {
      assertThatThrownBy(() -> dev.corral.common.ProxyWire.Target.ofAuthority(bad))
          .as(bad)
          .isInstanceOf(IllegalArgumentException.class);
    }
    for (String bad :
        List.of("/relative", "https://example.com/", "ftp://x/", "http://user:pw@example.com/")) {
      assertThatThrownBy(() -> dev.corral.common.ProxyWire.Target.ofUrl(bad))
          .as(bad)
          .isInstanceOf(IllegalArgumentException.class);
    }
    String head =
        dev.corral.common.ProxyWire.originForm(
            "GET",
            plain,
            new String[] {
              "GET http://example.com:8080/a/b?c=d HTTP/1.1",
              "Host: example.com:8080",
              "Proxy-Authorization: Basic c2VjcmV0",
              "Connection: keep-alive",
              "Accept: */*"
            });
    assertThat(head)
        .isEqualTo(
            "GET /a/b?c=d HTTP/1.1\r\nHost: example.com:8080\r\nAccept: */*\r\n"
                + "Connection: close\r\n\r\n");
  }

  @Test
  void aPlainRequestGoesOutWithTheHostThePolicyChecked() {
    String head =
        dev.corral.common.ProxyWire.originForm(
            "GET",
            new dev.corral.common.ProxyWire.Target("allowed.example", 80, "/"),
            new String[] {"GET http://allowed.example/ HTTP/1.1", "HOST: attacker.example"});
    assertThat(head)
        .isEqualTo("GET / HTTP/1.1\r\nHost: allowed.example\r\nConnection: close\r\n\r\n");
  }

  @Test
  void aTunnelsFirstHttpRequestMustNameTheTunnelsHost() {
    for (String[] opening :
        new String[][] {
          {"GET / HTTP/1.1\r\nHost: allowed.example\r\n\r\n", "request"},
          {"GET / HTTP/1.1\r\nhost:ALLOWED.example.:8443\r\n\r\n", "request"},
          {"GET / HTTP/1.1\r\nHost: allowed.example:9999\r\n\r\n", "refuse"},
          {"GET / HTTP/1.1\r\nHost: attacker.example\r\n\r\n", "refuse"},
          {"GET / HTTP/1.1\r\nX: 1\r\n\r\n", "refuse"},
          {"GET / HTTP/1.1\r\nHost: allowed.example\r\nHost: b\r\n\r\n", "refuse"},
          {"GET / HTTP/1.1\r\nHost: allowed.example\r\n", "more"},
          {"GE", "more"},
          // a request line split across segments is waited for, whatever its length
          {"GET /" + "a".repeat(40), "more"},
          {"GET /" + "a".repeat(40) + " HTTP/1.1\r\nHost: attacker.example\r\n\r\n", "refuse"},
          {"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "refuse"},
          {"\r\n\r\nGET / HTTP/1.1\r\nHost: attacker.example\r\n\r\n", "refuse"},
          {"\r\nGET / HTTP/1.1\r\nHost: allowed.example\r\n\r\nGET /next HTTP/1.1\r\n", "request"},
          {"\r\n", "more"},
          {"\r\n".repeat(9000), "refuse"},
          {"GET http://attacker.example/ HTTP/1.1\r\nHost: allowed.example\r\n\r\n", "refuse"},
          {"get / HTTP/1.1\r\nHost: attacker.example\r\n\r\n", "refuse"},
          {"GE_T / HTTP/1.1\r\nHost: attacker.example\r\n\r\n", "refuse"},
          {"get / HTTP/1.1\r\nHost: allowed.example\r\n\r\n", "request"},
          {
            "GET / HTTP/1.1\r\nHost: allowed.example\r\nX: y\nHost: attacker.example\r\n\r\n",
            "refuse"
          },
          {"GET / HTTP/1.1\r\nHost: allowed.example\r\n attacker.example\r\n\r\n", "refuse"},
          {"GET / HTTP/1.1\r\nHost: allowed.example\r\nHost : attacker.example\r\n\r\n", "refuse"},
          {"SSH-2.0-OpenSSH_9.2\r\n", "pass"},
          // whatever a server might read as a request line is judged as one, strictly: a long
          // method (nginx takes any), a tab between the parts, a space before the method
          {"A".repeat(33) + " / HTTP/1.1\r\nHost: attacker.example\r\n\r\n", "refuse"},
          {"A".repeat(33) + " / HTTP/1.1\r\nHost: allowed.example\r\n\r\n", "refuse"},
          {"GET\t/ HTTP/1.1\r\nHost: attacker.example\r\n\r\n", "refuse"},
          {" GET / HTTP/1.1\r\nHost: attacker.example\r\n\r\n", "refuse"},
          {"\r\n\tGET / HTTP/1.1\r\nHost: attacker.example\r\n\r\n", "refuse"},
          {"A".repeat(100), "more"},
          {"GET\u000b/\u000bHTTP/1.1\r\nHost: attacker.example\r\n\r\n", "refuse"},
          {"GET\u000c/ HTTP/1.1\r\nHost: attacker.example\r\n\r\n", "refuse"},
          {"GET\r/ HTTP/1.1\r\nHost: attacker.example\r\n\r\n", "refuse"},
          {"\u000bGET / HTTP/1.1\r\nHost: attacker.example\r\n\r\n", "refuse"},
          // a PROXY protocol header would name another client to the server
          {"\r\n\r\n\0\r\nQUIT\n!\u0011\0\u000c", "refuse"},
          {"\r\n\r\n\0\r\n", "more"},
          // a binary handshake (PostgreSQL's) passes
          {"\0\0\0\u0008\u0004\u00d2\u0016\u002f", "pass"},
        }) {
      byte[] bytes = opening[0].getBytes(StandardCharsets.ISO_8859_1);
      // however the client splits it
      for (int split : new int[] {bytes.length, 1, 7}) {
        assertThat(verdict(bytes, bytes.length, split, "allowed.example", 8443))
            .as(split + " bytes at a time: " + opening[0])
            .isEqualTo(opening[1]);
      }
    }
  }

  @Test
  void aHostLineOfSpacesIsJudgedInLinearTime() {
    // Given openings whose Host line is nearly all spaces or tabs: a pattern that backtracks
    // over them took most of a second of an event loop for each
    String spaces = " \t".repeat(8_000);
    String half = " \t".repeat(4_000);
    String[][] openings = {
      {"GET / HTTP/1.1\r\nHost: x" + spaces + "x\r\n\r\n", "refuse"},
      {"GET / HTTP/1.1\r\nHost:" + half + "allowed.example" + half + "\r\n\r\n", "request"},
    };
    // Then ten of them are judged well within a second or two, and rightly
    assertTimeoutPreemptively(
        java.time.Duration.ofSeconds(2),
        () -> {
          for (int i = 0; i < 5; i++) {
            for (String[] opening : openings) {
              byte[] bytes = opening[0].getBytes(StandardCharsets.ISO_8859_1);
              assertThat(verdict(bytes, bytes.length, bytes.length, "allowed.example", 8443))
                  .isEqualTo(opening[1]);
            }
          }
        });
  }

  /** The verdict on an opening's first {@code length} bytes, sent {@code split} at a time. */
  private static String verdict(byte[] bytes, int length, int split, String host, int port) {
    TunnelOpening opening = new TunnelOpening(host, port);
    TunnelOpening.Verdict verdict = new TunnelOpening.Verdict.NeedMore();
    for (int sent = 0;
        sent < length && verdict instanceof TunnelOpening.Verdict.NeedMore;
        sent += split) {
      verdict = opening.add(bytes, sent, Math.min(split, length - sent));
    }
    if (verdict instanceof TunnelOpening.Verdict.Request request) {
      // the request alone: its head, and the lines it is read as
      String head = new String(bytes, 0, request.headLength(), StandardCharsets.ISO_8859_1);
      assertThat(String.join("\r\n", request.lines()) + "\r\n\r\n")
          .isEqualTo(head.replaceFirst("^[\r\n]+", ""));
      return "request";
    }
    return verdict instanceof TunnelOpening.Verdict.Pass
        ? "pass"
        : verdict instanceof TunnelOpening.Verdict.Refuse ? "refuse" : "more";
  }

  @Test
  void aTlsTunnelMustNameTheTunnelsHostOrNone() throws Exception {
    for (String[] named :
        new String[][] {
          {"allowed.example", "pass"}, {"attacker.example", "refuse"}, {"", "pass"}
        }) {
      javax.net.ssl.SSLEngine engine =
          javax.net.ssl.SSLContext.getDefault().createSSLEngine("allowed.example", 443);
      engine.setUseClientMode(true);
      javax.net.ssl.SSLParameters parameters = engine.getSSLParameters();
      parameters.setServerNames(
          named[0].isEmpty() ? List.of() : List.of(new javax.net.ssl.SNIHostName(named[0])));
      engine.setSSLParameters(parameters);
      java.nio.ByteBuffer out =
          java.nio.ByteBuffer.allocate(engine.getSession().getPacketBufferSize());
      engine.wrap(java.nio.ByteBuffer.allocate(0), out);
      byte[] hello = java.util.Arrays.copyOf(out.array(), out.position());
      for (int cut : new int[] {3, hello.length / 2}) {
        assertThat(verdict(hello, cut, cut, "allowed.example", 443)).isEqualTo("more");
      }
      for (int split : new int[] {hello.length, 1, 100}) {
        assertThat(verdict(hello, hello.length, split, "allowed.example", 443))
            .as(split + " bytes at a time: " + named[0])
            .isEqualTo(named[1]);
      }
    }
  }

  @Test
  void aChunkedBodyIsDecodedAcrossAnySplitAndNothingAfterItIsTaken() {
    String wire =
        "4\r\nWiki\r\n5;ext=1\r\npedia\r\n0\r\nTrailer: x\r\n\r\nGET /smuggled HTTP/1.1\r\n";
    byte[] bytes = wire.getBytes(StandardCharsets.ISO_8859_1);
    for (int split = 1; split < bytes.length; split++) {
      RequestBody body =
          RequestBody.of(new String[] {"POST / HTTP/1.1", "Transfer-Encoding: chunked"});
      StringBuilder data = new StringBuilder();
      for (int at = 0; at < bytes.length; at += split) {
        Buffer piece = Buffer.buffer().appendBytes(bytes, at, Math.min(split, bytes.length - at));
        body.feed(piece).forEach(b -> data.append(b.toString(StandardCharsets.ISO_8859_1)));
      }
      assertThat(data.toString()).as("split " + split).isEqualTo("Wikipedia");
      assertThat(body.done()).isTrue();
    }
  }

  @Test
  void aLengthBodyStopsAtItsLengthAndAmbiguousFramingIsRefused() {
    RequestBody body = RequestBody.of(new String[] {"POST / HTTP/1.1", "Content-Length: 5"});
    List<Buffer> data = body.feed(Buffer.buffer("helloGET /next HTTP/1.1"));

    assertThat(data).extracting(Buffer::toString).containsExactly("hello");
    assertThat(body.done()).isTrue();
    assertThat(RequestBody.of(new String[] {"GET / HTTP/1.1"}).done()).isTrue();
    for (String[] bad :
        List.of(
            new String[] {"POST / HTTP/1.1", "Content-Length: 5", "Transfer-Encoding: chunked"},
            new String[] {"POST / HTTP/1.1", "Content-Length: 5", "Content-Length: 6"},
            new String[] {"POST / HTTP/1.1", "Transfer-Encoding: gzip, chunked"},
            new String[] {"POST / HTTP/1.1", "Content-Length: -1"},
            new String[] {"POST / HTTP/1.1", "Content-Length: 1e3"})) {
      assertThatThrownBy(() -> RequestBody.of(bad)).isInstanceOf(IllegalArgumentException.class);
    }
    RequestBody chunked =
        RequestBody.of(new String[] {"POST / HTTP/1.1", "Transfer-Encoding: chunked"});
    assertThatThrownBy(() -> chunked.feed(Buffer.buffer("zz\r\n")))
        .isInstanceOf(IllegalArgumentException.class);
    RequestBody overlong =
        RequestBody.of(new String[] {"POST / HTTP/1.1", "Transfer-Encoding: chunked"});
    assertThatThrownBy(() -> overlong.feed(Buffer.buffer("2\r\nabc\r\n")))
        .isInstanceOf(IllegalArgumentException.class);
  }
}
