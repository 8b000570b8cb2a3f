package dev.corral.bench;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.stream.Stream;

/**
 * CPU time used by the benchmark client, the corral server and PostgreSQL, read from /proc (utime +
 * stime of every process of each group, in clock ticks).
 */
final class CpuMeter {

  private static final double TICKS_PER_SECOND = 100.0;

  private final long serverPid;

  CpuMeter(long serverPid) {
    this.serverPid = serverPid;
  }

  /** CPU ticks of each group; also used for differences and sums of them. */
  record Ticks(long client, long server, long postgres) {
    Ticks minus(Ticks earlier) {
      return new Ticks(
          client - earlier.client, server - earlier.server, postgres - earlier.postgres);
    }

    Ticks plus(Ticks more) {
      return new Ticks(client + more.client, server + more.server, postgres + more.postgres);
    }

    String perOperation(long operations) {
      return String.format(
          "CPU per op: client %.0f us, corral %.0f us, postgres %.0f us",
          micros(client, operations), micros(server, operations), micros(postgres, operations));
    }

    private static double micros(long ticks, long operations) {
      return operations == 0 ? 0 : ticks / TICKS_PER_SECOND * 1e6 / operations;
    }
  }

  Ticks now() {
    return new Ticks(
        ticks(ProcessHandle.current().pid()),
        serverPid < 0 ? 0 : ticks(serverPid),
        postgresTicks());
  }

  private static long postgresTicks() {
    try (Stream<Path> processes = Files.list(Path.of("/proc"))) {
      return processes
          .filter(path -> path.getFileName().toString().chars().allMatch(Character::isDigit))
          .filter(CpuMeter::isPostgres)
          .mapToLong(path -> ticks(Long.parseLong(path.getFileName().toString())))
          .sum();
    } catch (IOException e) {
      return 0;
    }
  }

  private static boolean isPostgres(Path process) {
    try {
      return Files.readString(process.resolve("comm")).trim().equals("postgres");
    } catch (IOException e) {
      return false;
    }
  }

  /**
   * utime + stime of one process, and cutime + cstime of its children that ended and were waited
   * for (a sandbox's processes, once released); 0 if it is gone.
   */
  private static long ticks(long pid) {
    try {
      String stat = Files.readString(Path.of("/proc", Long.toString(pid), "stat"));
      String[] fields = stat.substring(stat.lastIndexOf(')') + 2).split(" ");
      return Long.parseLong(fields[11])
          + Long.parseLong(fields[12])
          + Long.parseLong(fields[13])
          + Long.parseLong(fields[14]);
    } catch (IOException | RuntimeException e) {
      return 0;
    }
  }
}
