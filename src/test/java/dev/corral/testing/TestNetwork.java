package dev.corral.testing;

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
