package dev.corral.egress;

import dev.corral.common.PermissionDeniedException;

/** An address or host a sandbox may not reach, and why (a client-safe message). */
public class EgressRefusedException extends PermissionDeniedException {

  private final String reason;

  EgressRefusedException(String reason, String message) {
    super(message);
    this.reason = reason;
  }

  /** A short label for metrics: not_allowed, non_public, unresolvable, networking_none. */
  public String reason() {
    return reason;
  }
}
