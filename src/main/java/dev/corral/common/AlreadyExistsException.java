package dev.corral.common;

/** What the request would make is there already, under a key that must stay unique. */
public class AlreadyExistsException extends CorralException {

  public AlreadyExistsException(String message) {
    super(message);
  }
}
