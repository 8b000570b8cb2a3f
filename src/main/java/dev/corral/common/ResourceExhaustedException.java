package dev.corral.common;

/** The request exceeds a documented limit (event size, page size, capacity). */
public class ResourceExhaustedException extends CorralException {

  public ResourceExhaustedException(String message) {
    super(message);
  }
}
