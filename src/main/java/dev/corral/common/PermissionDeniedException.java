package dev.corral.common;

/** The caller is known, but its role or tenant does not allow the request. */
public class PermissionDeniedException extends CorralException {

  public PermissionDeniedException(String message) {
    super(message);
  }
}
