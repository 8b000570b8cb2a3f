package dev.corral.common;

import java.net.InetAddress;
import java.net.NetworkInterface;
import java.net.SocketException;
import java.util.Collections;
import java.util.HashSet;
import java.util.Set;

/**
 * The addresses of this host's own interfaces. A connection to one of them reaches the host's
 * services over loopback, past any firewall outside that they trust, whatever the address rules say
 * of the address itself (a public one, on a server with a public interface).
 */
public final class HostAddresses {

  /** How long the host's addresses are trusted before they are listed again. */
  private static final long TTL_NANOS = 5_000_000_000L;

  private static final HostAddresses THIS_HOST = new HostAddresses(null);

  private final Set<InetAddress> fixed;
  private volatile Set<InetAddress> listed;
  private volatile long listedAt;

  HostAddresses(Set<InetAddress> fixed) {
    this.fixed = fixed;
  }

  /** This host's addresses, as its interfaces have them. */
  public static HostAddresses thisHost() {
    return THIS_HOST;
  }

  /**
   * Whether {@code address} reaches this host: one of its interfaces' addresses, or the unspecified
   * address (which connects to the host itself).
   *
   * @throws SocketException if the interfaces cannot be listed
   */
  public boolean reach(InetAddress address) throws SocketException {
    InetAddress checked = AddressRules.unmapped(address);
    return checked.isAnyLocalAddress() || addresses().contains(checked);
  }

  /**
   * The addresses of this host's interfaces, listed at most every 5 s (listing them reads every
   * interface, and every connection asks).
   */
  private Set<InetAddress> addresses() throws SocketException {
    if (fixed != null) {
      return fixed;
    }
    long now = System.nanoTime();
    Set<InetAddress> known = listed;
    if (known != null && now - listedAt < TTL_NANOS) {
      return known;
    }
    Set<InetAddress> found = new HashSet<>();
    for (NetworkInterface nic : Collections.list(NetworkInterface.getNetworkInterfaces())) {
      found.addAll(Collections.list(nic.getInetAddresses()));
    }
    listed = Set.copyOf(found);
    listedAt = now;
    return listed;
  }
}
