package dev.corral.session;

import dev.corral.common.ConflictException;

/** expected_last_seq did not match: another append came first. Nothing was appended. */
public class SequenceConflictException extends ConflictException {

  private final long lastSeq;

  SequenceConflictException(String sessionId, long expected, long lastSeq) {
    super("session " + sessionId + " ends at seq " + lastSeq + ", not the expected " + expected);
    this.lastSeq = lastSeq;
  }

  public long lastSeq() {
    return lastSeq;
  }
}
