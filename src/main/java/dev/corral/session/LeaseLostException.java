package dev.corral.session;

import dev.corral.common.FailedPreconditionException;

/**
 * The writer's lease epoch is not the session's current one, or the lease expired (database time).
 * A harness that gets this must stop working the session.
 */
public class LeaseLostException extends FailedPreconditionException {

  public LeaseLostException(String sessionId, long epoch) {
    super("lease epoch " + epoch + " is not the live lease of session " + sessionId);
  }
}
