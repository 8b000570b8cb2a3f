package dev.corral.sandbox.driver;

/**
 * What a command did: its exit code (128 + the signal when a signal ended it), its output (stdout
 * and stderr together, capped), how many bytes it wrote in all, whether it was stopped for running
 * out of time, whether the kernel stopped a process of the sandbox for want of memory while it ran,
 * and whether the sandbox refused to run it at all (its output then says why).
 */
public record ExecResult(
    int exitCode,
    byte[] output,
    long totalBytes,
    boolean timedOut,
    boolean outOfMemory,
    boolean refused) {

  public ExecResult(
      int exitCode, byte[] output, long totalBytes, boolean timedOut, boolean outOfMemory) {
    this(exitCode, output, totalBytes, timedOut, outOfMemory, false);
  }

  public boolean truncated() {
    return totalBytes > output.length;
  }
}
