package dev.corral.common;

/**
 * A concurrent change won: an optimistic-concurrency check (expected seq, expected version) failed.
 * The client may re-read and retry.
 */
public class ConflictException extends CorralException {

  public ConflictException(String message) {
    super(message);
  }
}
