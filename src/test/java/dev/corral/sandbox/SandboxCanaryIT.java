package dev.corral.sandbox;

import static org.assertj.core.api.Assertions.assertThat;

import dev.corral.proto.v1.ExecuteRequest;
import dev.corral.proto.v1.ExecuteResponse;
import dev.corral.proto.v1.ProvisionRequest;
import dev.corral.proto.v1.SandboxServiceGrpc;
import dev.corral.testing.ServerProcess;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import org.junit.jupiter.api.Test;

/**
 * A canary: the packaged server runs with secrets in its environment and in a config file; code in
 * one of its sandboxes looks for them everywhere it might (its environment, every process's
 * environment, the server's config file and data directory) and tries to reach the server's port
 * and PostgreSQL. It must find no trace of any secret and reach nothing.
 */
class SandboxCanaryIT {

  @Test
  void aSandboxFindsNoSecretOfTheServerAndReachesNothing() throws Exception {
    // Not under /tmp, which every sandbox replaces with its own
    Path home = Files.createTempDirectory(Path.of("target").toAbsolutePath(), "canary-home-");
    String environmentSecret = "canary-env-" + UUID.randomUUID();
    String apiKeySecret = "canary-key-" + UUID.randomUUID();
    String configSecret = "canary-config-" + UUID.randomUUID();
    Path config = home.resolve("corral.properties");
    Files.writeString(
        config, "corral.model.api-key=" + apiKeySecret + "\ncorral.canary=" + configSecret + "\n");
    try {
      int databasePort = ServerProcess.freePort();
      try (ServerProcess server =
          ServerProcess.start(
              Map.of(
                  "CORRAL_HOME", home.toString(),
                  "CORRAL_EMBEDDED_POSTGRES_PORT", Integer.toString(databasePort),
                  "CORRAL_CANARY_SECRET", environmentSecret,
                  "QUARKUS_CONFIG_LOCATIONS", config.toString()))) {
        // Given a server that really holds the secrets and a data directory
        assertThat(Files.readString(Path.of("/proc/" + server.pid() + "/environ")))
            .contains(environmentSecret);
        assertThat(home.resolve("pgdata/postgresql.conf")).exists();
        SandboxServiceGrpc.SandboxServiceBlockingStub sandboxes =
            SandboxServiceGrpc.newBlockingStub(server.channel());
        String sandbox =
            sandboxes.provision(ProvisionRequest.getDefaultInstance()).getSandbox().getId();

        // When the sandbox looks for secrets and tries to connect out
        List<String> probes =
            List.of(
                "env",
                "cat /proc/*/environ | tr '\\0' '\\n'",
                "ps e -A -ww",
                "ls -la /proc",
                "cat " + config + " 2>&1",
                "ls -la " + home + " 2>&1; cat " + home + "/*.properties 2>&1",
                "ls "
                    + home.resolve("pgdata")
                    + " 2>&1; cat "
                    + home.resolve("pgdata/postgresql.conf")
                    + " 2>&1",
                "grep -r canary / --exclude-dir=proc --exclude-dir=usr -s | head -n 5",
                connect(server.port()),
                connect(5432),
                connect(databasePort),
                connect(80, "169.254.169.254"));
        StringBuilder everything = new StringBuilder();
        for (String probe : probes) {
          ExecuteResponse answer = run(sandboxes, sandbox, probe);
          everything
              .append("$ ")
              .append(probe)
              .append('\n')
              .append(answer.getOutput())
              .append('\n');
        }

        // Then no secret shows, and every connection failed
        String seen = everything.toString();
        assertThat(seen)
            .as(seen)
            .doesNotContain(environmentSecret)
            .doesNotContain(apiKeySecret)
            .doesNotContain(configSecret)
            .doesNotContain("CORRAL_")
            .doesNotContain("QUARKUS_")
            .doesNotContain("OPEN:");
        assertThat(seen.split("SHUT:", -1)).as(seen).hasSize(5);
        // and the sandbox saw only its own processes
        String processes = run(sandboxes, sandbox, "ps -A -o pid= | wc -l").getOutput().strip();
        assertThat(Integer.parseInt(processes)).as(seen).isLessThan(10);
      }
    } finally {
      deleteTree(home);
    }
  }

  private static String connect(int port) {
    return connect(port, "127.0.0.1");
  }

  /** Prints OPEN:port if a connection succeeds, SHUT:port if not (words the command lacks). */
  private static String connect(int port, String host) {
    return "timeout 3 bash -c 'exec 3<>/dev/tcp/"
        + host
        + "/"
        + port
        + "' 2>/dev/null && echo OP''EN:"
        + port
        + " || echo SH''UT:"
        + port;
  }

  private static void deleteTree(Path root) throws java.io.IOException {
    try (var paths = Files.walk(root)) {
      paths.sorted(java.util.Comparator.reverseOrder()).forEach(path -> path.toFile().delete());
    }
  }

  private static ExecuteResponse run(
      SandboxServiceGrpc.SandboxServiceBlockingStub sandboxes, String sandbox, String command) {
    String input = "{\"command\":\"" + command.replace("\\", "\\\\").replace("\"", "\\\"") + "\"}";
    return sandboxes.execute(
        ExecuteRequest.newBuilder()
            .setSandboxId(sandbox)
            .setName("bash")
            .setInputJson(input)
            .build());
  }
}
