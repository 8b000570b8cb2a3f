package dev.corral.common;

/**
 * The resource is not in a state that allows the operation (archived, terminated, lease lost).
 * Retrying the same request will not help until the state changes.
 */
public class FailedPreconditionException extends CorralException {

  public FailedPreconditionException(String message) {
    super(message);
  }
}
