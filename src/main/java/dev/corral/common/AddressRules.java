package dev.corral.common;

import java.net.Inet4Address;
import java.net.Inet6Address;
import java.net.InetAddress;
import java.net.UnknownHostException;
import java.util.List;
import java.util.Optional;

/**
 * Which addresses a sandbox (or a server-side call made for a tenant) may never reach: loopback,
 * link-local (where cloud metadata lives, 169.254.169.254), private and shared networks, and every
 * other range that is not public, in IPv4 and IPv6 (IPv4-mapped IPv6 addresses included). An
 * operator may open chosen private networks: for sandboxes ({@code
 * corral.egress.allowed-private-networks}) never loopback or link-local; for corral's own calls
 * ({@code corral.outbound.allowed-networks}) any range, a sidecar on loopback included.
 */
public final class AddressRules {

  private static final List<Cidr> NOT_PUBLIC =
      List.of(
              "0.0.0.0/8",
              "10.0.0.0/8",
              "100.64.0.0/10",
              "172.16.0.0/12",
              "192.0.0.0/24",
              "192.0.2.0/24",
              "192.88.99.0/24",
              "192.168.0.0/16",
              "198.18.0.0/15",
              "198.51.100.0/24",
              "203.0.113.0/24",
              "224.0.0.0/4",
              "240.0.0.0/4",
              "::/128",
              // IPv4-translated (SIIT) and 6to4: each wraps an IPv4 address, 127.0.0.1 too
              "::ffff:0:0:0/96",
              "2002::/16",
              "64:ff9b::/96",
              "64:ff9b:1::/48",
              "100::/64",
              "2001::/23",
              "2001:db8::/32",
              "fc00::/7",
              "ff00::/8")
          .stream()
          .map(Cidr::parse)
          .toList();

  /**
   * Cloud platforms' own services at addresses outside link-local, refused whatever an operator
   * opens: Azure's WireServer and DNS (168.63.129.16, a public address), AWS's IPv6 metadata
   * (fd00:ec2::254) and EKS Pod Identity agent (fd00:ec2::23), Google Cloud's and Scaleway's IPv6
   * metadata (fd20:ce::254, fd00:42::42), inside ranges opened for pods, and Alibaba's metadata
   * (100.100.100.200, inside the shared range).
   */
  private static final List<Cidr> PLATFORM_SERVICES =
      List.of(
              "168.63.129.16/32",
              "fd00:ec2::254/128",
              "fd00:ec2::23/128",
              "fd20:ce::254/128",
              "fd00:42::42/128",
              "100.100.100.200/32")
          .stream()
          .map(Cidr::parse)
          .toList();

  private final List<Cidr> allowedPrivate;
  private final boolean opensAnyRange;

  /** For sandboxes: {@code allowedPrivateNetworks} open private networks, never loopback. */
  public AddressRules(List<String> allowedPrivateNetworks) {
    this(allowedPrivateNetworks, false);
  }

  private AddressRules(List<String> allowedNetworks, boolean opensAnyRange) {
    this.allowedPrivate = allowedNetworks.stream().map(Cidr::parse).toList();
    this.opensAnyRange = opensAnyRange;
  }

  /**
   * For corral's own calls to a URL a tenant gave (an MCP server, an OAuth token endpoint): {@code
   * allowedNetworks} open any range, loopback and link-local included.
   */
  public static AddressRules forServerCalls(List<String> allowedNetworks) {
    return new AddressRules(allowedNetworks, true);
  }

  /** Why {@code address} may not be reached, or empty if it may. */
  public Optional<String> refusal(InetAddress address) {
    InetAddress checked = unmapped(address);
    if (PLATFORM_SERVICES.stream().anyMatch(range -> range.contains(checked))) {
      return Optional.of("a cloud platform's metadata or host service address");
    }
    if (opensAnyRange && allowedPrivate.stream().anyMatch(range -> range.contains(checked))) {
      return Optional.empty();
    }
    if (checked.isLoopbackAddress()) {
      return Optional.of("a loopback address");
    }
    if (checked.isLinkLocalAddress() || inRange(checked, "169.254.0.0/16", "fe80::/10")) {
      return Optional.of("a link-local address (where cloud metadata lives)");
    }
    if (checked.isAnyLocalAddress()) {
      return Optional.of("an unspecified address");
    }
    boolean notPublic =
        checked.isSiteLocalAddress()
            || checked.isMulticastAddress()
            || NOT_PUBLIC.stream().anyMatch(range -> range.contains(checked));
    if (notPublic && allowedPrivate.stream().noneMatch(range -> range.contains(checked))) {
      return Optional.of("a private or otherwise non-public address");
    }
    return Optional.empty();
  }

  /**
   * Whether {@code address} is one of the non-public addresses an operator opened: where corral's
   * own replicas and database may live too.
   */
  public boolean opened(InetAddress address) {
    InetAddress checked = unmapped(address);
    return allowedPrivate.stream().anyMatch(range -> range.contains(checked))
        && (checked.isLoopbackAddress()
            || checked.isLinkLocalAddress()
            || checked.isSiteLocalAddress()
            || checked.isMulticastAddress()
            || NOT_PUBLIC.stream().anyMatch(range -> range.contains(checked)));
  }

  /** Whether an operator's setting names a range that holds {@code address}. */
  public boolean listed(InetAddress address) {
    InetAddress checked = unmapped(address);
    return allowedPrivate.stream().anyMatch(range -> range.contains(checked));
  }

  private static boolean inRange(InetAddress address, String... ranges) {
    for (String range : ranges) {
      if (Cidr.parse(range).contains(address)) {
        return true;
      }
    }
    return false;
  }

  /** The IPv4 address inside an IPv4-mapped or -compatible IPv6 address, else the address. */
  static InetAddress unmapped(InetAddress address) {
    if (address instanceof Inet6Address) {
      byte[] bytes = address.getAddress();
      boolean mapped = true;
      for (int i = 0; i < 10; i++) {
        mapped &= bytes[i] == 0;
      }
      boolean v4mapped = mapped && bytes[10] == (byte) 0xff && bytes[11] == (byte) 0xff;
      boolean v4compatible =
          mapped && bytes[10] == 0 && bytes[11] == 0 && (bytes[12] | bytes[13] | bytes[14]) != 0;
      if (v4mapped || v4compatible) {
        try {
          return Inet4Address.getByAddress(new byte[] {bytes[12], bytes[13], bytes[14], bytes[15]});
        } catch (UnknownHostException impossible) {
          return address;
        }
      }
    }
    return address;
  }
}
