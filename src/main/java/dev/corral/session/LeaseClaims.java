package dev.corral.session;

import java.util.Optional;

/**
 * Decides whether an append of user work on this replica should claim the session's lease (the
 * harness side implements it: only a replica that runs harnesses and has room claims).
 */
public interface LeaseClaims {

  /** A claim for {@code tenantId}'s session {@code sessionId}, if this replica should take it. */
  Optional<LeaseClaim> claimFor(String sessionId, String tenantId);
}
