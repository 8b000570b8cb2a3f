package dev.corral.sandbox;

import dev.corral.common.AlreadyExistsException;

/**
 * A session has one sandbox at a time: the one a provisioning for it found live (ready or being
 * provisioned, its lifetime not over).
 */
public class SessionSandboxExistsException extends AlreadyExistsException {

  private final String sandboxId;
  private final boolean provisioning;

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
    this.sandboxId = sandboxId;
    this.provisioning = "provisioning".equals(state);
  }

  /** The session's sandbox. */
  public String sandboxId() {
    return sandboxId;
  }

  /** Whether the session's sandbox was still being provisioned (not yet ready). */
  public boolean provisioning() {
    return provisioning;
  }
}
