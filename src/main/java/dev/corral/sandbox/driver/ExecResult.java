package dev.corral.sandbox.driver;

/**
 * What a command did: its exit code (128 + the signal when a signal ended it), its output (stdout
 * and stderr together, capped), how many bytes it wrote in all, whether it was stopped for running
 * out of time, and whether the kernel stopped a process of the sandbox for want of memory while it
 * ran.
 */
public record ExecResult(
    int exitCode, byte[] output, long totalBytes, boolean timedOut, boolean outOfMemory) {

  public boolean truncated() {
    return totalBytes > output.length;
  }
}
