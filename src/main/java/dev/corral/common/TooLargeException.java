package dev.corral.common;

/**
 * A part of the request is larger than a documented limit (an event's bytes): the same request
 * fails again. RESOURCE_EXHAUSTED over gRPC; over REST the API's 413 {@code request_too_large}
 * rather than a 429, which its SDKs read as a rate limit.
 */
public class TooLargeException extends ResourceExhaustedException {

  public TooLargeException(String message) {
    super(message);
  }
}
