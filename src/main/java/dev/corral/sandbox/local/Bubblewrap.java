package dev.corral.sandbox.local;

import dev.corral.proto.v1.SandboxResources;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * The command line that starts a local sandbox, from the outside in:
 *
 * <ol>
 *   <li>{@code sh} makes itself the first the kernel's OOM killer takes ({@code oom_score_adj}
 *       1000, which only a privileged process may lower), writes its pid into the sandbox's cgroups
 *       (when it has them) and execs the rest, so that every process of the sandbox is in them, and
 *       first to go, from the start: a sandbox that fills memory (its tmpfs pages belong to no
 *       process) under a limit it shares with corral, or on a host without cgroups, is killed
 *       before the server or its database;
 *   <li>{@code env -i}: an empty environment, so that not even bubblewrap's own environment (which
 *       the sandbox could read) holds a variable of the server;
 *   <li>{@code setpriv} to the sandbox's own unprivileged user (when corral runs as root), with no
 *       groups and no capabilities;
 *   <li>{@code prlimit}: file size, open files, CPU time (never less than the lifetime allows), no
 *       core dumps, processes per user, and the address space of each process when there is no
 *       cgroup to limit memory;
 *   <li>{@code bwrap}: a {@link SyscallFilter} (asynchronous I/O contexts and io_uring refused),
 *       every namespace unshared (no network), no user namespace of the sandbox's own (which would
 *       give its code every capability inside it: mounts of unbounded tmpfs, a network namespace to
 *       configure), a new session, no capabilities, a read-only root with read-only system
 *       directories and a read-only /proc, private size-limited /tmp and /workspace;
 *   <li>the launcher ({@code launcher.pl}) as the sandbox's pid 1; with egress, it also forwards
 *       127.0.0.1:3128 (inside the sandbox's own network namespace) to the egress proxy's Unix
 *       socket, bound read-only at /run/corral: the sandbox's only way out.
 * </ol>
 */
final class Bubblewrap {

  private static final List<String> ETC_ENTRIES =
      List.of(
          "alternatives",
          "ld.so.cache",
          "ld.so.conf",
          "ld.so.conf.d",
          "passwd",
          "group",
          "nsswitch.conf",
          "localtime",
          "mime.types",
          "perl",
          "ssl",
          "bash.bashrc",
          "inputrc");

  /**
   * Opens the syscall filter named first (if any) as fd 3, for bubblewrap; raises its OOM score to
   * the most (where the host lets it; otherwise the sandbox keeps its own), joins the cgroup.procs
   * files named before "--", then runs what follows.
   */
  private static final String JOIN =
      "if [ -n \"$1\" ]; then exec 3< \"$1\" || exit 125; fi; shift;"
          + " echo 1000 2>/dev/null > /proc/self/oom_score_adj;"
          + " while [ \"$1\" != -- ]; do echo $$ > \"$1\" || exit 125; shift; done; shift;"
          + " exec \"$@\"";

  private Bubblewrap() {}

  /**
   * @param uid the sandbox's own user id, or -1 to stay corral's user
   * @param cgroupProcs the cgroup.procs files to join (none: no cgroup, memory limited per process)
   * @param egress the directory bound read-only at /run/corral, where the egress proxy's socket
   *     appears if the sandbox gets network; the launcher then forwards 127.0.0.1:{@code proxyPort}
   *     to it. Empty: no egress at all.
   * @param syscallFilter the file of the {@link SyscallFilter} program; empty: none
   */
  static List<String> command(
      String bwrap,
      SandboxResources resources,
      int uid,
      List<Path> cgroupProcs,
      Optional<Path> egress,
      int proxyPort,
      String launcher,
      Optional<Path> syscallFilter) {
    List<String> argv = new ArrayList<>();
    argv.addAll(List.of("/bin/sh", "-c", JOIN, "corral-sandbox"));
    argv.add(syscallFilter.map(Path::toString).orElse(""));
    cgroupProcs.forEach(file -> argv.add(file.toString()));
    argv.add("--");
    argv.addAll(List.of("/usr/bin/env", "-i"));
    if (uid >= 0) {
      argv.addAll(
          List.of(
              "/usr/bin/setpriv",
              "--reuid=" + uid,
              "--regid=" + uid,
              "--clear-groups",
              "--inh-caps=-all",
              "--bounding-set=-all",
              "--no-new-privs",
              "--"));
    }
    argv.addAll(
        List.of(
            "/usr/bin/prlimit",
            "--nproc=" + resources.getMaxProcesses(),
            "--fsize=" + resources.getDiskBytes(),
            "--cpu=" + cpuSeconds(resources, !cgroupProcs.isEmpty()),
            "--nofile=4096",
            "--core=0"));
    if (cgroupProcs.isEmpty()) {
      argv.add("--as=" + resources.getMemoryBytes());
    }
    argv.addAll(List.of("--", bwrap));
    syscallFilter.ifPresent(filter -> argv.addAll(List.of("--seccomp", "3")));
    argv.addAll(
        List.of(
            "--unshare-all",
            "--unshare-user",
            "--disable-userns",
            "--die-with-parent",
            "--new-session",
            "--as-pid-1",
            "--cap-drop",
            "ALL",
            "--hostname",
            "sandbox",
            "--ro-bind",
            "/usr",
            "/usr"));
    for (String top : List.of("bin", "lib", "lib32", "lib64", "libx32", "sbin")) {
      systemDirectory(argv, Path.of("/", top));
    }
    argv.addAll(List.of("--dir", "/etc"));
    for (String entry : ETC_ENTRIES) {
      if (Files.exists(Path.of("/etc", entry))) {
        argv.addAll(List.of("--ro-bind", "/etc/" + entry, "/etc/" + entry));
      }
    }
    egress.ifPresent(
        directory -> argv.addAll(List.of("--ro-bind", directory.toString(), "/run/corral")));
    argv.addAll(
        List.of(
            "--proc",
            "/proc",
            // read-only: the sandbox's code cannot lower its OOM score (where corral's root lacks
            // CAP_SYS_RESOURCE, as in some VMs, the kernel lets any process lower it down to 0)
            // nor write into /proc/PID/mem
            "--remount-ro",
            "/proc",
            "--dev",
            "/dev",
            // /dev is a tmpfs the sandbox's user owns: read-only, but for /dev/shm, which gets the
            // disk limit (without a cgroup, tmpfs pages count against no memory limit)
            "--size",
            Long.toString(resources.getDiskBytes()),
            "--tmpfs",
            "/dev/shm",
            "--remount-ro",
            "/dev",
            "--size",
            Long.toString(resources.getDiskBytes()),
            "--tmpfs",
            "/tmp",
            "--size",
            Long.toString(resources.getDiskBytes()),
            "--tmpfs",
            "/workspace",
            // The root (and so /etc) becomes read-only; /tmp and /workspace stay writable.
            "--remount-ro",
            "/",
            "--chdir",
            "/workspace",
            "--clearenv",
            "--",
            "/usr/bin/perl",
            "-e",
            launcher));
    egress.ifPresent(directory -> argv.addAll(List.of("egress", Integer.toString(proxyPort))));
    return argv;
  }

  /** Merged-/usr systems link /bin and friends into /usr; others need them bound read-only. */
  /**
   * The CPU time a process of the sandbox may use (prlimit's RLIMIT_CPU, which kills it there): as
   * much as it can use in the sandbox's lifetime on every core it may use (its CPU quota's, or the
   * host's without cgroups), so that only the lifetime ends it. A limit of the lifetime alone
   * killed a process of four busy threads at a quarter of it, with no word of why.
   */
  static long cpuSeconds(SandboxResources resources, boolean cgroups) {
    long cores =
        cgroups && resources.getCpuMillis() > 0
            ? (resources.getCpuMillis() + 999) / 1000
            : Runtime.getRuntime().availableProcessors();
    return Math.max(60, resources.getLifetimeSeconds()) * Math.max(1, cores);
  }

  private static void systemDirectory(List<String> argv, Path path) {
    if (Files.isSymbolicLink(path)) {
      try {
        argv.addAll(List.of("--symlink", Files.readSymbolicLink(path).toString(), path.toString()));
      } catch (IOException e) {
        // an unreadable link is left out: the sandbox then has no such directory
      }
    } else if (Files.isDirectory(path)) {
      argv.addAll(List.of("--ro-bind", path.toString(), path.toString()));
    }
  }
}
