package dev.corral.common;

/** A backing service (database, Kubernetes) cannot be reached right now; retry later. */
public class UnavailableException extends CorralException {

  public UnavailableException(String message, Throwable cause) {
    super(message, cause);
  }
}
