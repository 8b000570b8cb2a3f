package dev.corral.sandbox.driver;

import dev.corral.common.FailedPreconditionException;

/** The sandbox died or vanished (its process or pod is gone); the call did not complete. */
public class SandboxLostException extends FailedPreconditionException {

  public SandboxLostException(String sandboxId, String reason) {
    super("sandbox " + sandboxId + " was lost: " + reason);
  }
}
