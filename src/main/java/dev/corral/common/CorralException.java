package dev.corral.common;

/**
 * Base of every exception a domain throws on purpose. The gRPC edge maps each subclass to one
 * status code; the message is safe to show to the client and never holds a secret.
 */
public abstract class CorralException extends RuntimeException {

  protected CorralException(String message) {
    super(message, null, false, false);
  }

  protected CorralException(String message, Throwable cause) {
    super(message, cause, false, false);
  }
}
