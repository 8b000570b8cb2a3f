package dev.corral.sandbox.local;

import java.io.IOException;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;
import java.util.function.Function;

/**
 * Stops processes of one sandbox from outside it (the host's view: host pids). A call is told apart
 * from what earlier calls left running by the sandbox's processes {@link Before} it started: its
 * processes are those in its bash's session, and those that were not there then and descend from no
 * process that was (a daemon it detached is one). With a cgroup the sandbox is frozen while they
 * are killed, so that none can start another meanwhile; without one each is stopped (SIGSTOP)
 * first, then all are killed, again until none is left. Either way none of them runs between the
 * death of one and that of the next to act on it. The launcher and bubblewrap are never touched.
 * Blocking.
 */
final class Stopper {

  private static final int MAX_DEPTH = 4096;

  /** How long processes are stopped for, at most, before they are killed anyway. */
  private static final long SUSPEND_NANOS = 200_000_000L;

  /** How long {@code kill} may take to signal them. */
  private static final long SIGNAL_TIMEOUT_MS = 2_000;

  private final ProcessHandle bubblewrap;
  private final ProcessHandle launcher;
  private final Optional<SandboxCgroup> cgroup;

  /** The launcher's session, once read (-1 until then, or if it could not be). */
  private volatile long launcherSession = -1;

  Stopper(ProcessHandle bubblewrap, ProcessHandle launcher, Optional<SandboxCgroup> cgroup) {
    this.bubblewrap = bubblewrap;
    this.launcher = launcher;
    this.cgroup = cgroup;
  }

  private long launcherSession() {
    if (launcherSession < 0) {
      launcherSession = ProcStat.of(launcher.pid()).map(ProcStat.Stat::session).orElse(-1L);
    }
    return launcherSession;
  }

  /** The processes of a sandbox at one moment: host pid and start, so that a reused pid differs. */
  record Before(Map<Long, Long> startByPid, java.util.Set<Long> sessions) {

    boolean had(long pid, ProcStat.Stat stat) {
      Long start = startByPid.get(pid);
      return start != null && start == stat.startTicks();
    }

    /**
     * Whether {@code session} had a process then: a process of it now is an earlier call's (one
     * joins no session but its parent's or a new one), even if its parent has gone.
     */
    boolean hadSession(long session) {
      return sessions.contains(session);
    }

    /** The same, but {@code pid}: the call's own bash, which may have been started ahead. */
    Before without(long pid) {
      Map<Long, Long> rest = new HashMap<>(startByPid);
      rest.remove(pid);
      return new Before(rest, sessions);
    }
  }

  /** The sandbox's processes now. */
  Before before() throws IOException {
    Map<Long, Long> starts = new HashMap<>();
    java.util.Set<Long> sessions = new java.util.HashSet<>();
    live()
        .forEach(
            (pid, stat) -> {
              starts.put(pid, stat.startTicks());
              sessions.add(stat.session());
            });
    return new Before(starts, sessions);
  }

  /**
   * Every process of the sandbox but its launcher (a shell restart), and waits (up to 2 s) until
   * they are gone, so that the launcher no longer counts on any of them; any still there then is
   * reported as an IOException (the caller gives the sandbox up, as for a call's).
   */
  void all() throws IOException {
    // Every process killed, including any the launcher started meanwhile (a standby bash): the
    // launcher must see them all dead before it is given the next call. They are listed once
    // frozen or stopped, when none can fork: a list taken before would miss one forked after it,
    // which would then stay frozen or stopped for good.
    java.util.Set<Long> killed;
    if (cgroup.isPresent()) {
      cgroup.get().freeze();
      try {
        killed = new java.util.HashSet<>(live().keySet());
        killed.forEach(this::kill);
      } finally {
        cgroup.get().thaw();
      }
    } else {
      suspend(Map::keySet);
      killed = new java.util.HashSet<>(live().keySet());
      killed.forEach(this::kill);
    }
    long deadline = System.nanoTime() + 2_000_000_000L;
    while (killed.stream().anyMatch(this::isLiveVictim) && System.nanoTime() < deadline) {
      for (long pid : live().keySet()) {
        kill(pid);
        killed.add(pid);
      }
      LockSupport.parkNanos(1_000_000);
    }
    long left = killed.stream().filter(this::isLiveVictim).count();
    if (left > 0) {
      throw new IOException(
          left + " of the sandbox's processes were still running 2 s after they were killed");
    }
  }

  /**
   * Every process of the call whose bash is {@code root} (host pid, the leader of its session),
   * told apart from what was there {@code before} it, until none is left (up to 2 s; any left then
   * are reported as an IOException: the caller gives the sandbox up).
   */
  void call(long root, Before before) throws IOException {
    if (cgroup.isPresent()) {
      SandboxCgroup sandbox = cgroup.get();
      sandbox.freeze();
      try {
        killCalls(live(), root, before);
      } finally {
        sandbox.thaw();
      }
    } else {
      suspend(live -> ofCall(live, root, before));
    }
    // Killed processes are gone at once; any still here (one that forked between the scan and
    // the kill, a freeze that did not take, one that takes a moment to die) is killed again, for
    // up to 2 s.
    long deadline = System.nanoTime() + 2_000_000_000L;
    boolean found;
    while ((found = killCalls(live(), root, before)) && System.nanoTime() < deadline) {
      LockSupport.parkNanos(2_000_000);
    }
    // (a scan that found none ends it: a process started after it, a standby bash of a call that
    // ended by itself just before its stop, is no survivor)
    List<Long> left = found ? ofCall(live(), root, before) : List.of();
    if (!left.isEmpty()) {
      // "stopped" must mean stopped: the caller gives the sandbox up rather than say so
      throw new IOException(
          left.size() + " of the call's processes were still running 2 s after they were killed");
    }
  }

  /**
   * Without a cgroup to freeze: stops (SIGSTOP) each live process that {@code victims} picks, again
   * until every one it picks is stopped, so that none runs between the death of one and that of the
   * next (a reader at the end of its input, a shell once its command ended). A stopped process
   * starts no other, so this ends; after {@link #SUSPEND_NANOS} (a process in an uninterruptible
   * wait) they are killed anyway.
   */
  private void suspend(Function<Map<Long, ProcStat.Stat>, Collection<Long>> victims)
      throws IOException {
    long deadline = System.nanoTime() + SUSPEND_NANOS;
    Map<Long, Long> signalled = new HashMap<>(); // pid -> its start, when it was sent SIGSTOP
    while (System.nanoTime() < deadline) {
      Map<Long, ProcStat.Stat> live = live();
      List<Long> unsignalled = new ArrayList<>();
      boolean running = false;
      for (long pid : victims.apply(live)) {
        ProcStat.Stat stat = live.get(pid);
        if (!stat.stopped()) {
          running = true;
          if (!Long.valueOf(stat.startTicks()).equals(signalled.get(pid))) {
            unsignalled.add(pid);
          }
        }
      }
      if (!running) {
        return;
      }
      if (!unsignalled.isEmpty()) {
        signal("STOP", unsignalled);
        for (long pid : unsignalled) {
          long listed = live.get(pid).startTicks();
          signalled.put(pid, listed);
          // a pid that ended meanwhile and went to a process outside the sandbox is let go
          if (ProcStat.of(pid).filter(now -> now.startTicks() != listed).isPresent()) {
            signal("CONT", List.of(pid));
          }
        }
      }
      LockSupport.parkNanos(500_000); // those signalled stop as soon as they are scheduled
    }
  }

  /** Sends {@code signal} to {@code pids} (Java can send no SIGSTOP itself). */
  private static void signal(String signal, List<Long> pids) throws IOException {
    List<String> command = new ArrayList<>();
    command.addAll(
        List.of("/bin/sh", "-c", "kill -s " + signal + " \"$@\" 2>/dev/null; exit 0", "corral"));
    pids.forEach(pid -> command.add(Long.toString(pid)));
    Process kill =
        new ProcessBuilder(command)
            .redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null")))
            .redirectOutput(ProcessBuilder.Redirect.DISCARD)
            .redirectError(ProcessBuilder.Redirect.DISCARD)
            .start();
    try {
      if (!kill.waitFor(SIGNAL_TIMEOUT_MS, TimeUnit.MILLISECONDS)) {
        kill.destroyForcibly();
        throw new IOException("kill -s " + signal + " did not end in " + SIGNAL_TIMEOUT_MS + " ms");
      }
    } catch (InterruptedException interrupted) {
      kill.destroyForcibly();
      Thread.currentThread().interrupt();
      throw new IOException("interrupted while processes were being stopped");
    }
  }

  /** The call's processes among {@code live}. */
  private List<Long> ofCall(Map<Long, ProcStat.Stat> live, long root, Before before) {
    List<Long> ofCall = new ArrayList<>();
    live.forEach(
        (pid, stat) -> {
          if (isOfCall(pid, stat, live, root, before)) {
            ofCall.add(pid);
          }
        });
    return ofCall;
  }

  /** The host pid of the process that is {@code nsPid} inside the sandbox, a child of its pid 1. */
  long hostPidOf(long nsPid) {
    return ProcStat.childWithNamespacePid(launcher.pid(), nsPid).orElse(-1);
  }

  /** Kills the call's processes among {@code live}; true if there was any. */
  private boolean killCalls(Map<Long, ProcStat.Stat> live, long root, Before before) {
    boolean any = false;
    for (long pid : ofCall(live, root, before)) {
      any |= kill(pid);
    }
    return any;
  }

  private boolean isOfCall(
      long pid, ProcStat.Stat stat, Map<Long, ProcStat.Stat> live, long root, Before before) {
    if (stat.session() == root) {
      return true;
    }
    if (stat.session() == launcherSession()) {
      return false; // the launcher's own children (a drain, the forwarder): no call can join it
    }
    if (before.hadSession(stat.session())) {
      return false; // started by an earlier call's job, whose parent may have left it to pid 1
    }
    long at = pid;
    ProcStat.Stat atStat = stat;
    for (int depth = 0; depth < MAX_DEPTH && atStat != null; depth++) {
      if (before.had(at, atStat)) {
        return false;
      }
      at = atStat.parent();
      atStat = live.get(at);
    }
    return true;
  }

  /** The sandbox's live processes (no zombies), but its launcher and bubblewrap. */
  private Map<Long, ProcStat.Stat> live() throws IOException {
    Map<Long, ProcStat.Stat> live = new HashMap<>();
    for (long pid : cgroup.isPresent() ? cgroup.get().processes() : descendants()) {
      if (pid != launcher.pid() && pid != bubblewrap.pid()) {
        ProcStat.of(pid).ifPresent(stat -> live.put(pid, stat));
      }
    }
    return live;
  }

  private boolean isLiveVictim(long pid) {
    return pid != launcher.pid() && pid != bubblewrap.pid() && ProcStat.of(pid).isPresent();
  }

  private List<Long> descendants() {
    return ProcStat.descendants(launcher.pid());
  }

  private boolean kill(long pid) {
    if (pid == launcher.pid() || pid == bubblewrap.pid()) {
      return false;
    }
    ProcessHandle.of(pid).ifPresent(ProcessHandle::destroyForcibly);
    return true;
  }
}
