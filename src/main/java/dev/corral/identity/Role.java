package dev.corral.identity;

import java.util.Locale;
import java.util.Optional;

/** What a principal may do within its tenant; each role may do everything of the ones below it. */
public enum Role {
  /** Reads and streams. */
  VIEWER,
  /** Agents, environments, sessions and sandboxes. */
  MEMBER,
  /** API keys, and everything a member may do. */
  ADMIN;

  /** Whether this role may do what {@code required} may. */
  public boolean covers(Role required) {
    return compareTo(required) >= 0;
  }

  /** The name stored and shown: admin, member, viewer. */
  public String wireName() {
    return name().toLowerCase(Locale.ROOT);
  }

  public static Optional<Role> fromWireName(String name) {
    for (Role role : values()) {
      if (role.wireName().equals(name)) {
        return Optional.of(role);
      }
    }
    return Optional.empty();
  }
}
