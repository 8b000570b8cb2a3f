package dev.corral.common;

import java.net.InetAddress;
import java.net.UnknownHostException;
import java.util.Optional;
import java.util.regex.Pattern;

/**
 * IP address literals, told apart from host names without asking a name server. {@link
 * InetAddress#getByName} parses a literal, but hands anything it cannot parse as one (a name made
 * of hex digits and dots, {@code 1.2.3.4.5}) to the resolver, which blocks: so only text that is a
 * literal in its strict form is parsed here, and everything else is a name for {@link NameLookups}.
 */
public final class IpLiteral {

  private static final String OCTET = "(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])";
  private static final Pattern IPV4 = Pattern.compile(OCTET + "(\\." + OCTET + "){3}");
  // it starts as InetAddress parses a literal (a hex digit or a colon), or it would be looked up
  private static final Pattern IPV6 = Pattern.compile("(?=[^:]*:)[0-9a-fA-F:][0-9a-fA-F:.]*");

  private IpLiteral() {}

  /**
   * The address {@code text} spells: a dotted-quad IPv4 address, or an IPv6 address with or without
   * brackets (no zone); empty for anything else, names included.
   */
  public static Optional<InetAddress> parse(String text) {
    String bare =
        text.length() > 2 && text.startsWith("[") && text.endsWith("]")
            ? text.substring(1, text.length() - 1)
            : text;
    boolean v6 = IPV6.matcher(bare).matches();
    if (!v6 && (bare != text || !IPV4.matcher(bare).matches())) {
      return Optional.empty();
    }
    try {
      // Both forms are parsed without a lookup: a dotted quad always is, and text with a colon is
      // an IPv6 literal or refused outright.
      return Optional.of(InetAddress.getByName(bare));
    } catch (UnknownHostException malformed) {
      return Optional.empty();
    }
  }
}
