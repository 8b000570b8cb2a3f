package dev.corral.vault;

import dev.corral.common.FailedPreconditionException;

/**
 * A credential cannot be used for a call: it does not exist, is bound elsewhere, or its OAuth token
 * could not be refreshed. The message names the credential and why, never a secret.
 */
public class CredentialUnusableException extends FailedPreconditionException {

  private final boolean authentication;

  public CredentialUnusableException(String message, boolean authentication) {
    super(message);
    this.authentication = authentication;
  }

  /** Whether the failure is about authenticating (a refresh refused), not about configuration. */
  public boolean authentication() {
    return authentication;
  }
}
