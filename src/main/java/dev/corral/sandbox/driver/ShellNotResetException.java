package dev.corral.sandbox.driver;

import dev.corral.common.FailedPreconditionException;

/**
 * A shell restart could not forget the shell's state: what the sandbox did to its own /tmp (made
 * the state a directory it cannot remove, took its own write access) keeps it. The sandbox serves
 * on; the caller tells the model.
 */
public class ShellNotResetException extends FailedPreconditionException {

  /** Fails if {@code reset} (a run of {@link ShellScripts#RESET}) did not run to a clean end. */
  public static void check(String sandboxId, ExecResult reset) {
    if (reset.exitCode() != 0 || reset.timedOut()) {
      throw new ShellNotResetException(sandboxId, reset.exitCode());
    }
  }

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
