package dev.corral.testing;

import java.io.IOException;
import java.io.InputStream;
import java.net.Inet4Address;
import java.net.InetAddress;
import java.net.NetworkInterface;
import java.net.SocketException;
import java.util.Collections;

/**
 * This machine's own non-loopback IPv4 address: test servers that a sandbox should reach through
 * the egress proxy listen there (loopback is closed to the proxy whatever its configuration), and
 * the tests open it with {@code corral.egress.allowed-private-networks}.
 */
public final class TestNetwork {

  private TestNetwork() {}

  /**
   * An HTTP request's or response's head, as a test peer reads it: up to its empty line, or EOF.
   */
  public static String readHead(InputStream in) throws IOException {
    StringBuilder head = new StringBuilder();
    while (!head.toString().endsWith("\r\n\r\n")) {
      int b = in.read();
      if (b < 0) {
        break;
      }
      head.append((char) b);
    }
    return head.toString();
  }

  public static InetAddress outwardAddress() {
    try {
      for (NetworkInterface nic : Collections.list(NetworkInterface.getNetworkInterfaces())) {
        if (!nic.isUp() || nic.isLoopback()) {
          continue;
        }
        for (InetAddress address : Collections.list(nic.getInetAddresses())) {
          if (address instanceof Inet4Address && !address.isLinkLocalAddress()) {
            return address;
          }
        }
      }
    } catch (SocketException e) {
      throw new IllegalStateException(e);
    }
    throw new IllegalStateException(
        "the egress tests need a non-loopback IPv4 address on this machine, and it has none");
  }
}
