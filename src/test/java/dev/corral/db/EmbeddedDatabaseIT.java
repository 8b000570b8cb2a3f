package dev.corral.db;

import static org.assertj.core.api.Assertions.assertThat;

import dev.corral.proto.v1.AgentServiceGrpc;
import dev.corral.proto.v1.CreateAgentRequest;
import dev.corral.proto.v1.GetAgentRequest;
import dev.corral.testing.ServerProcess;
import io.zonky.test.db.postgres.embedded.EmbeddedPostgres;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.ResultSet;
import java.util.Map;
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
