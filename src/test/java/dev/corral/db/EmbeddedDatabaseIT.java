package dev.corral.db;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.corral.proto.v1.AgentServiceGrpc;
import dev.corral.proto.v1.CreateAgentRequest;
import dev.corral.proto.v1.GetAgentRequest;
import dev.corral.testing.ServerProcess;
import io.zonky.test.db.postgres.embedded.EmbeddedPostgres;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.util.Map;
import java.util.Properties;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The packaged server and its database, started the way a user starts it. */
class EmbeddedDatabaseIT {

  @TempDir Path home;

  @Test
  void dataSurvivesARestartAndAKill9() throws Exception {
    // Given a server on a fresh CORRAL_HOME that stored an agent
    String agentId;
    try (ServerProcess server = ServerProcess.start(Map.of("CORRAL_HOME", home.toString()))) {
      agentId = createAgent(server);
      server.stop();
    }
    assertThat(home.resolve("pgdata/PG_VERSION")).exists();

    // When it restarts, and later is killed with -9 and starts again
    try (ServerProcess restarted = ServerProcess.start(Map.of("CORRAL_HOME", home.toString()))) {
      assertThat(agentName(restarted, agentId)).isEqualTo("persistent");
      restarted.kill();
    }
    try (ServerProcess afterKill = ServerProcess.start(Map.of("CORRAL_HOME", home.toString()))) {
      // Then the agent is still there
      assertThat(agentName(afterKill, agentId)).isEqualTo("persistent");
    }
  }

  @Test
  void aDataDirectoryMadeWithoutAPasswordGetsOneAtItsFirstStart() throws Exception {
    // Given a data directory made the way corral made it before, whose superuser logs in on trust
    Path data = home.resolve("pgdata");
    try (EmbeddedPostgres old =
        EmbeddedPostgres.builder().setDataDirectory(data).setCleanDataDirectory(false).start()) {
      try (Connection connection = old.getPostgresDatabase().getConnection()) {
        connection.createStatement().execute("CREATE SCHEMA old; CREATE TABLE old.kept (id int)");
      }
    }

    // When corral starts on it, again, and once more after the kept password was lost
    for (int start = 0; start < 3; start++) {
      if (start == 2) {
        Files.writeString(data.resolve("corral-password"), "");
      }
      try (ServerProcess server = ServerProcess.start(Map.of("CORRAL_HOME", home.toString()))) {
        assertThat(agentName(server, createAgent(server))).isEqualTo("persistent");
        int port = embeddedPort(server.log());

        // Then a login without the password is refused, the data is still there, and the
        // password is kept where only its owner reads it
        String url = "jdbc:postgresql://127.0.0.1:" + port + "/postgres";
        Properties noPassword = new Properties();
        noPassword.setProperty("user", "postgres");
        assertThatThrownBy(() -> DriverManager.getConnection(url, noPassword).close())
            .isInstanceOf(SQLException.class)
            .hasMessageContaining("password");
        Properties withPassword = new Properties();
        withPassword.setProperty("user", "postgres");
        withPassword.setProperty(
            "password", Files.readString(data.resolve("corral-password")).strip());
        try (Connection connection = DriverManager.getConnection(url, withPassword);
            ResultSet rows =
                connection.createStatement().executeQuery("SELECT count(*) FROM old.kept")) {
          rows.next();
          assertThat(rows.getInt(1)).isZero();
        }
        assertThat(
                PosixFilePermissions.toString(
                    Files.getPosixFilePermissions(data.resolve("corral-password"))))
            .isEqualTo("rw-------");
      }
    }
  }

  private static int embeddedPort(String log) {
    Matcher started =
        Pattern.compile("Embedded PostgreSQL started on 127\\.0\\.0\\.1:(\\d+)").matcher(log);
    assertThat(started.find()).as("the start line in the log").isTrue();
    return Integer.parseInt(started.group(1));
  }

  @Test
  void externalDatasourceMeansNoEmbeddedServer() throws Exception {
    // Given an external PostgreSQL
    try (EmbeddedPostgres external = EmbeddedPostgres.builder().start()) {
      String hostPort = "localhost:" + external.getPort() + "/postgres";

      // When corral starts pointed at it
      try (ServerProcess server =
          ServerProcess.start(
              Map.of(
                  "CORRAL_HOME",
                  home.toString(),
                  "QUARKUS_DATASOURCE_REACTIVE_URL",
                  "postgresql://" + hostPort,
                  "QUARKUS_DATASOURCE_JDBC_URL",
                  "jdbc:postgresql://" + hostPort,
                  "QUARKUS_DATASOURCE_USERNAME",
                  "postgres"))) {
        String agentId = createAgent(server);

        // Then it stores there, and starts nothing under its home
        try (Connection connection = external.getPostgresDatabase().getConnection();
            ResultSet rows =
                connection
                    .createStatement()
                    .executeQuery("SELECT count(*) FROM agents WHERE id = '" + agentId + "'")) {
          rows.next();
          assertThat(rows.getInt(1)).isEqualTo(1);
        }
        assertThat(Files.exists(home.resolve("pgdata"))).isFalse();
        assertThat(server.log()).doesNotContain("Embedded PostgreSQL started");
      }
    }
  }

  private static String createAgent(ServerProcess server) {
    return AgentServiceGrpc.newBlockingStub(server.channel())
        .createAgent(
            CreateAgentRequest.newBuilder().setName("persistent").setModel("claude-test").build())
        .getAgent()
        .getId();
  }

  private static String agentName(ServerProcess server, String agentId) {
    return AgentServiceGrpc.newBlockingStub(server.channel())
        .getAgent(GetAgentRequest.newBuilder().setAgentId(agentId).build())
        .getAgent()
        .getName();
  }
}
