package dev.corral.testing;

import java.util.Map;

/**
 * Processes a scan of /proc could miss, for tests of a call's stop: one whose main thread ends on
 * its own while another thread keeps working (the kernel then shows it as a zombie), and one whose
 * name is not UTF-8 and holds a newline. Each appends to a file of its own in /tmp every 50 ms.
 */
public final class HiddenProcesses {

  private HiddenProcesses() {}

  /** SYS_exit by the JVM's architecture (the sandbox's too). */
  private static final Map<String, Integer> EXIT = Map.of("amd64", 60, "x86_64", 60, "aarch64", 93);

  private static final String COUNTING =
      "while (1) { open(my $f, q(>>), q(%s)); print $f q(x); close $f; sleep 0.05 }";

  /**
   * A bash command that starts both in the background and returns once both have written and the
   * first shows as a zombie (up to 2 s).
   */
  public static String start() {
    Integer exit = EXIT.get(System.getProperty("os.arch"));
    org.junit.jupiter.api.Assumptions.assumeTrue(
        exit != null, "no SYS_exit number known for " + System.getProperty("os.arch"));
    return "perl -Mthreads -MTime::HiRes=sleep -e 'threads->create(sub { "
        + COUNTING.formatted("/tmp/threaded")
        + " })->detach; sleep 0.2; syscall("
        + exit
        + ", 0)' & t=$!; perl -MTime::HiRes=sleep -e '$0 = \"\\xff\\n\\xfe\"; "
        + COUNTING.formatted("/tmp/named")
        + "' & for i in $(seq 100); do [ -s /tmp/threaded ] && [ -s /tmp/named ]"
        + " && grep -q '^State:[[:space:]]*Z' /proc/$t/status && break; sleep 0.02; done;";
  }

  /** A bash command that runs {@code perl} code as the call's own process, renamed not UTF-8. */
  public static String startAsTheCallItself() {
    return "exec perl -MTime::HiRes=sleep -e '$0 = \"\\xff\\xfe\"; "
        + COUNTING.formatted("/tmp/named")
        + "'";
  }

  /**
   * A bash command that prints how many bytes they wrote so far and how many more in the next half
   * second: "N 0" (N > 0) once they are stopped.
   */
  public static String check() {
    return "a=$(cat /tmp/threaded /tmp/named | wc -c); sleep 0.5;"
        + " b=$(cat /tmp/threaded /tmp/named | wc -c); echo $a $((b - a))";
  }

  /** What {@link #check} prints once both are stopped, having run. */
  public static final String STOPPED = "[1-9][0-9]* 0";
}
