package dev.corral.sandbox.kubernetes;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

/** The egress proxy's address, as the pods' proxy URLs write it. */
class ProxyAddressTest {

  @Test
  void anIpv6AddressIsWrittenInBracketsAnIpv4AddressAsItIs() {
    // an IPv6 ClusterIP written bare made http://sbx:token@fd00::a:3128, which no client parses
    assertThat(KubernetesDriver.resolve("fd00::a")).isEqualTo("[fd00:0:0:0:0:0:0:a]");
    assertThat(KubernetesDriver.resolve("[fd00::a]")).isEqualTo("[fd00:0:0:0:0:0:0:a]");
    assertThat(KubernetesDriver.resolve("10.96.0.12")).isEqualTo("10.96.0.12");
    assertThat(java.net.URI.create("http://sbx:t@" + KubernetesDriver.resolve("fd00::a") + ":3128"))
        .satisfies(uri -> assertThat(uri.getPort()).isEqualTo(3128));
  }
}
