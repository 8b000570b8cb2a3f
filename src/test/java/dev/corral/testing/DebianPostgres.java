package dev.corral.testing;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.TimeUnit;

/**
 * A database of its own in Debian's PostgreSQL 15 cluster (which {@code bin/prerequisites --test}
 * installs), for tests that need what the embedded binaries lack: {@code pg_dump}, and a data
 * directory they can read. Needs root. The database is dropped on close.
 */
public final class DebianPostgres implements AutoCloseable {

  private static final String VERSION = "15";

  private final String database;
  private final String user;
  private final String password;

  private DebianPostgres(String database, String user, String password) {
    this.database = database;
    this.user = user;
    this.password = password;
  }

  public static DebianPostgres start() throws Exception {
    if (!Files.isExecutable(Path.of("/usr/bin/pg_ctlcluster"))) {
      throw new IllegalStateException(
          "this test needs Debian's PostgreSQL " + VERSION + ": run bin/prerequisites --test");
    }
    Result started = run(List.of("pg_ctlcluster", VERSION, "main", "start"), Map.of());
    if (started.exit() != 0 && started.exit() != 2) { // 2: already running
      throw new IllegalStateException("pg_ctlcluster failed: " + started.output());
    }
    String suffix = UUID.randomUUID().toString().replace("-", "").substring(0, 12);
    DebianPostgres postgres =
        new DebianPostgres("corral_" + suffix, "corral_" + suffix, "pw" + suffix);
    postgres.asPostgres(
        "CREATE ROLE " + postgres.user + " LOGIN SUPERUSER PASSWORD '" + postgres.password + "'");
    postgres.asPostgres("CREATE DATABASE " + postgres.database + " OWNER " + postgres.user);
    return postgres;
  }

  /** The settings that point a corral server at this database. */
  public Map<String, String> environment() {
    String url = "127.0.0.1:5432/" + database;
    return Map.of(
        "QUARKUS_DATASOURCE_REACTIVE_URL",
        "postgresql://" + url,
        "QUARKUS_DATASOURCE_JDBC_URL",
        "jdbc:postgresql://" + url,
        "QUARKUS_DATASOURCE_USERNAME",
        user,
        "QUARKUS_DATASOURCE_PASSWORD",
        password);
  }

  /** The cluster's data directory, after a checkpoint (so that every write is in its files). */
  public Path checkpointedDataDirectory() throws Exception {
    asPostgres("CHECKPOINT");
    Result shown =
        run(
            List.of("runuser", "-u", "postgres", "--", "psql", "-Atc", "SHOW data_directory"),
            Map.of());
    return Path.of(shown.output().strip());
  }

  /** {@code pg_dump} of the database, as plain SQL. */
  public byte[] dump() throws Exception {
    Result dump =
        run(
            List.of("pg_dump", "-h", "127.0.0.1", "-U", user, "--no-password", database),
            Map.of("PGPASSWORD", password));
    if (dump.exit() != 0) {
      throw new IllegalStateException("pg_dump failed: " + dump.output());
    }
    return dump.output().getBytes(StandardCharsets.UTF_8);
  }

  @Override
  public void close() throws Exception {
    asPostgres("DROP DATABASE IF EXISTS " + database + " WITH (FORCE)");
    asPostgres("DROP ROLE IF EXISTS " + user);
  }

  private void asPostgres(String sql) throws Exception {
    Result result =
        run(
            List.of("runuser", "-u", "postgres", "--", "psql", "-v", "ON_ERROR_STOP=1", "-c", sql),
            Map.of());
    if (result.exit() != 0) {
      throw new IllegalStateException("psql failed: " + result.output());
    }
  }

  private record Result(int exit, String output) {}

  private static Result run(List<String> command, Map<String, String> environment)
      throws IOException, InterruptedException {
    ProcessBuilder builder = new ProcessBuilder(new ArrayList<>(command)).redirectErrorStream(true);
    builder.environment().putAll(environment);
    Process process = builder.start();
    byte[] output = process.getInputStream().readAllBytes();
    if (!process.waitFor(60, TimeUnit.SECONDS)) {
      process.destroyForcibly();
      throw new IllegalStateException(command + " did not finish");
    }
    return new Result(process.exitValue(), new String(output, StandardCharsets.UTF_8));
  }
}
