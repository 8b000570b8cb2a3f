package dev.corral.sandbox;

import dev.corral.common.FailedPreconditionException;
import dev.corral.proto.v1.Sandbox;

/**
 * The sandbox was released (or its lifetime ended) while a call ran in it; the call was stopped.
 */
public class SandboxReleasedException extends FailedPreconditionException {

  public SandboxReleasedException(Sandbox sandbox) {
    super(
        "sandbox "
            + sandbox.getId()
            + " was released while the call ran ("
            + sandbox.getReleaseReason()
            + "): everything the call started was stopped");
  }
}
