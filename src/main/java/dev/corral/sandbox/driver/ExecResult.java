package dev.corral.sandbox.driver;

/**
 * What a command did: its exit code, its output (stdout and stderr together, capped), how many
 * bytes it wrote in all, whether it was killed for running out of time, and whether it ended the
 * sandbox's shell (a fresh one took its place: directory and variables were reset).
 */
public record ExecResult(
    int exitCode, byte[] output, long totalBytes, boolean timedOut, boolean shellExited) {

  public boolean truncated() {
    return totalBytes > output.length;
  }
}
