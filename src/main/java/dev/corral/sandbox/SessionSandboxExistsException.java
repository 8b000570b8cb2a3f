package dev.corral.sandbox;

import dev.corral.common.AlreadyExistsException;

/**
 * A session has one sandbox at a time: the one a provisioning for it found live (ready or being
 * provisioned, its lifetime not over).
 */
public class SessionSandboxExistsException extends AlreadyExistsException {

  public SessionSandboxExistsException(String sessionId, String sandboxId, String state) {
    super(
        "session "
            + sessionId
            + " already has sandbox "
            + sandboxId
            + " ("
            + state
            + "); a session has one sandbox at a time: use it, or release it first"
            + " (ReleaseSandbox)");
  }
}
