package dev.corral.testing;

/**
 * Processes a scan of /proc could miss, for tests of a call's stop: one whose main thread ends on
 * its own while another thread keeps working (the kernel then shows it as a zombie), and one whose
 * name is not UTF-8 and holds a newline. Each appends to a file of its own in /tmp every 50 ms.
 */
public final class HiddenProcesses {

  private HiddenProcesses() {}

  /** A bash command that starts both in the background. */
  public static String start() {
    long exit = "aarch64".equals(System.getProperty("os.arch")) ? 93 : 60; // SYS_exit
    String counting =
        "while (1) { open(my $f, q(>>), q(%s)); print $f q(x); close $f; sleep 0.05 }";
    return "perl -Mthreads -MTime::HiRes=sleep -e 'threads->create(sub { "
        + counting.formatted("/tmp/threaded")
        + " })->detach; sleep 0.2; syscall("
        + exit
        + ", 0)' & perl -MTime::HiRes=sleep -e '$0 = \"\\xff\\n\\xfe\"; "
        + counting.formatted("/tmp/named")
        + "' &";
  }

  /**
   * A bash command that prints how many bytes both wrote so far and how many more in the next half
   * second: "N 0" (N > 0) once they are stopped.
   */
  public static String check() {
    return "a=$(cat /tmp/threaded /tmp/named | wc -c); sleep 0.5;"
        + " b=$(cat /tmp/threaded /tmp/named | wc -c); echo $a $((b - a))";
  }

  /** What {@link #check} prints once both are stopped, having run. */
  public static final String STOPPED = "[1-9][0-9]* 0";
}
