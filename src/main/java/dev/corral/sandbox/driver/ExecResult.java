package dev.corral.sandbox.driver;

/**
 * What a command did: its exit code (128 + the signal when a signal ended it), its output (stdout
 * and stderr together, capped), how many bytes it wrote in all, whether it was stopped for running
 * out of time, whether the kernel stopped a process of the sandbox for want of memory while it ran
 * (and whose memory ran out), and whether the sandbox refused to run it at all (its output then
 * says why).
 */
public record ExecResult(
    int exitCode,
    byte[] output,
    long totalBytes,
    boolean timedOut,
    OutOfMemory memory,
    boolean refused) {

  /** Whether, and why, the kernel stopped a process of the sandbox for want of memory. */
  public enum OutOfMemory {
    NO,
    /** The sandbox reached its own memory limit. */
    SANDBOX_LIMIT,
    /**
     * The sandbox was below its own limit: the memory it shares with other sandboxes (or the
     * host's) ran out.
     */
    SHARED
  }

  public ExecResult(
      int exitCode, byte[] output, long totalBytes, boolean timedOut, boolean outOfMemory) {
    this(
        exitCode,
        output,
        totalBytes,
        timedOut,
        outOfMemory ? OutOfMemory.SANDBOX_LIMIT : OutOfMemory.NO,
        false);
  }

  public boolean outOfMemory() {
    return memory != OutOfMemory.NO;
  }

  public boolean truncated() {
    return totalBytes > output.length;
  }
}
