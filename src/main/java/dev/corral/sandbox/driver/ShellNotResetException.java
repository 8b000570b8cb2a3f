package dev.corral.sandbox.driver;

import dev.corral.common.FailedPreconditionException;

/**
 * A shell restart could not forget the shell's state: what the sandbox did to its own /tmp (made
 * the state a directory it cannot remove, took its own write access) keeps it. The sandbox serves
 * on; the caller tells the model.
 */
public class ShellNotResetException extends FailedPreconditionException {

  public ShellNotResetException(String sandboxId, int exitCode) {
    super(
        "the shell of sandbox "
            + sandboxId
            + " could not be restarted: its state "
            + ShellScripts.STATE
            + " could not be removed (exit "
            + exitCode
            + "); is /tmp still writable?");
  }
}
