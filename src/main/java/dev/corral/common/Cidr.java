package dev.corral.common;

import java.net.InetAddress;

/** An IPv4 or IPv6 network, {@code address/prefix}. */
record Cidr(byte[] network, int prefix) {

  static Cidr parse(String text) {
    int slash = text.indexOf('/');
    String address = slash < 0 ? text : text.substring(0, slash);
    byte[] bytes =
        IpLiteral.parse(address)
            .orElseThrow(() -> new IllegalArgumentException("not an IP network: " + text))
            .getAddress();
    int prefix = slash < 0 ? bytes.length * 8 : Integer.parseInt(text.substring(slash + 1));
    if (prefix < 0 || prefix > bytes.length * 8) {
      throw new IllegalArgumentException("not an IP network: " + text);
    }
    return new Cidr(bytes, prefix);
  }

  boolean contains(InetAddress address) {
    byte[] bytes = address.getAddress();
    if (bytes.length != network.length) {
      return false;
    }
    int whole = prefix / 8;
    for (int i = 0; i < whole; i++) {
      if (bytes[i] != network[i]) {
        return false;
      }
    }
    int rest = prefix % 8;
    if (rest == 0) {
      return true;
    }
    int mask = (0xff << (8 - rest)) & 0xff;
    return (bytes[whole] & mask) == (network[whole] & mask);
  }
}
