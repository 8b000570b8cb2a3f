package dev.corral.testing;

/** What runs below this JVM: sandboxes (local and the fake kubelet's pods) are its descendants. */
public final class Processes {

  private Processes() {}

  /** Whether a descendant of this JVM runs a command line that contains {@code fragment}. */
  public static boolean running(String fragment) {
    return ProcessHandle.current()
        .descendants()
        .anyMatch(process -> process.info().commandLine().orElse("").contains(fragment));
  }
}
