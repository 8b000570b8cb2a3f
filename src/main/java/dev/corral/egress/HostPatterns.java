package dev.corral.egress;

import java.util.List;
import java.util.Locale;

/** An environment's allow-list: exact host names or addresses, and {@code *.suffix} patterns. */
final class HostPatterns {

  private HostPatterns() {}

  /** Whether {@code host} is one of {@code allowed} ({@code *.x} matches a.x and a.b.x, not x). */
  static boolean allows(List<String> allowed, String host) {
    String name = host.toLowerCase(Locale.ROOT);
    if (name.endsWith(".")) {
      name = name.substring(0, name.length() - 1);
    }
    for (String pattern : allowed) {
      if (pattern.startsWith("*.")) {
        if (name.endsWith(pattern.substring(1)) && name.length() > pattern.length() - 1) {
          return true;
        }
      } else if (pattern.equals(name)) {
        return true;
      }
    }
    return false;
  }
}
