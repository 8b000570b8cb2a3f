package dev.corral.session;

import java.util.Optional;

/**
 * Decides whether an append of user work on this replica should claim the session's lease (the
 * harness side implements it: only a replica that runs harnesses and has room claims).
 */
public interface LeaseClaims {

  Optional<LeaseClaim> claimFor(String sessionId);
}
