package dev.corral.session;

import dev.corral.common.FailedPreconditionException;

/** The session is archived or terminated and takes no more events. */
public class SessionClosedException extends FailedPreconditionException {

  SessionClosedException(String sessionId, String state) {
    super("session " + sessionId + " is " + state + " and takes no more events");
  }
}
