package dev.corral.common;

/** The request carries no credential, or one that is not (or no longer) valid. */
public class UnauthenticatedException extends CorralException {

  public UnauthenticatedException(String message) {
    super(message);
  }
}
