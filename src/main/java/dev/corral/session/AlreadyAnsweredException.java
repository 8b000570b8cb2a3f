package dev.corral.session;

import dev.corral.common.FailedPreconditionException;

/**
 * The tool call already has its result (or its confirmation): a log holds at most one of each per
 * call. Nothing was appended.
 */
public class AlreadyAnsweredException extends FailedPreconditionException {

  AlreadyAnsweredException(String sessionId, String what) {
    super("that tool call of session " + sessionId + " was already " + what);
  }
}
