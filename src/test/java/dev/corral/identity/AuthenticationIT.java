package dev.corral.identity;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

import dev.corral.proto.v1.ApiKeyServiceGrpc;
import dev.corral.proto.v1.CreateApiKeyRequest;
import dev.corral.proto.v1.CreateApiKeyResponse;
import dev.corral.proto.v1.CredentialKind;
import dev.corral.proto.v1.RevokeApiKeyRequest;
import dev.corral.proto.v1.Role;
import dev.corral.proto.v1.Session;
import dev.corral.proto.v1.StreamEventsRequest;
import dev.corral.proto.v1.TenantServiceGrpc;
import dev.corral.proto.v1.WhoAmIRequest;
import dev.corral.proto.v1.WhoAmIResponse;
import dev.corral.testing.Fixtures;
import dev.corral.testing.ServerProcess;
import dev.corral.testing.StreamRecorder;
import dev.corral.testing.TestCredentials;
import io.grpc.Channel;
import io.grpc.ClientInterceptors;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.zonky.test.db.postgres.embedded.EmbeddedPostgres;
import java.net.Inet4Address;
import java.net.InetAddress;
import java.net.NetworkInterface;
import java.net.Socket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermission;
import java.time.Duration;
import java.time.Instant;
import java.util.Collections;
import java.util.Map;
import java.util.Optional;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The packaged server: its first admin key, authentication off, and revocation across replicas. */
class AuthenticationIT {

  @TempDir Path home;

  @Test
  void theFirstStartWritesAnAdminKeyOnlyItsOwnerCanReadAndNeverLogsIt() throws Exception {
    // Given a server started for the first time, with no key configured
    Map<String, String> environment =
        Map.of("CORRAL_HOME", home.toString(), "CORRAL_AUTH_BOOTSTRAP_KEY", "");
    String key;
    try (ServerProcess server = ServerProcess.start(environment)) {
      // Then it wrote an admin key to $CORRAL_HOME/admin-key, mode 0600
      Path file = home.resolve("admin-key");
      await().atMost(Duration.ofSeconds(10)).until(() -> Files.exists(file));
      assertThat(Files.getPosixFilePermissions(file))
          .containsExactlyInAnyOrder(
              PosixFilePermission.OWNER_READ, PosixFilePermission.OWNER_WRITE);
      key = Files.readString(file).strip();
      assertThat(key).startsWith("crl_");
      assertThat(server.log()).contains(file.toString()).doesNotContain(key.substring(4));

      // And the key is an operator's
      WhoAmIResponse me = whoAmI(server, key);
      assertThat(me.getRole()).isEqualTo(Role.ROLE_ADMIN);
      assertThat(me.getOperator()).isTrue();
      assertThat(me.getTenantId()).isEqualTo("default");

      // And nothing else gets in
      assertThatThrownBy(() -> whoAmI(server, null))
          .isInstanceOfSatisfying(
              StatusRuntimeException.class,
              e -> assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.UNAUTHENTICATED));
    }

    // When it starts again
    try (ServerProcess restarted = ServerProcess.start(environment)) {
      // Then the key still works and no new one was written
      assertThat(Files.readString(home.resolve("admin-key")).strip()).isEqualTo(key);
      assertThat(whoAmI(restarted, key).getOperator()).isTrue();
      assertThat(restarted.log()).doesNotContain("Wrote a new admin API key");
    }
  }

  @Test
  void withAuthenticationOffTheServerListensOnLoopbackOnly() throws Exception {
    Optional<InetAddress> external = externalAddress();
    try (ServerProcess server =
        ServerProcess.start(
            Map.of("CORRAL_HOME", home.toString(), "CORRAL_AUTH_ENABLED", "false"))) {
      WhoAmIResponse me = whoAmI(server, null);
      assertThat(me.getCredentialKind()).isEqualTo(CredentialKind.CREDENTIAL_KIND_NONE);
      assertThat(server.log()).contains("Authentication is OFF");
      // A web page in the host's browser reaches 127.0.0.1 too: neither a request of another
      // site (its Origin) nor one by a name that resolves to 127.0.0.1 (its Host) gets in
      assertThat(rawStatus(server.port(), "localhost", null)).isEqualTo(200);
      assertThat(rawStatus(server.port(), "127.0.0.1", "http://localhost:3000")).isEqualTo(200);
      assertThat(rawStatus(server.port(), "attacker.example", null)).isEqualTo(403);
      assertThat(rawStatus(server.port(), "localhost", "https://attacker.example")).isEqualTo(403);
      assertThat(rawStatus(server.port(), "localhost", "null")).isEqualTo(403);
      if (external.isPresent()) {
        assertThatThrownBy(() -> new Socket(external.get(), server.port()).close())
            .isInstanceOf(java.io.IOException.class);
      }
    }
    if (external.isPresent()) {
      try (ServerProcess open =
          ServerProcess.start(
              Map.of(
                  "CORRAL_HOME",
                  home.toString(),
                  "CORRAL_AUTH_ENABLED",
                  "false",
                  "CORRAL_AUTH_ALLOW_REMOTE_UNAUTHENTICATED",
                  "true"))) {
        new Socket(external.get(), open.port()).close();
        assertThat(open.log()).contains("listens on every interface");
      }
    }
  }

  /** The status of a REST list sent by hand, with this Host and (unless null) this Origin. */
  private static int rawStatus(int port, String host, String origin) throws Exception {
    try (Socket socket = new Socket("127.0.0.1", port)) {
      socket.setSoTimeout(10_000);
      String request =
          "GET /v1/agents HTTP/1.1\r\nHost: "
              + host
              + ":"
              + port
              + "\r\n"
              + (origin == null ? "" : "Origin: " + origin + "\r\n")
              + "Connection: close\r\n\r\n";
      socket.getOutputStream().write(request.getBytes(java.nio.charset.StandardCharsets.US_ASCII));
      String statusLine =
          new java.io.BufferedReader(
                  new java.io.InputStreamReader(
                      socket.getInputStream(), java.nio.charset.StandardCharsets.US_ASCII))
              .readLine();
      return Integer.parseInt(statusLine.split(" ")[1]);
    }
  }

  @Test
  void aSwitchOfAuthenticationThatIsNeitherTrueNorFalseStopsTheStart() {
    // Given values that a lenient boolean would read as false ("off", "0") or, with a warning
    // only, as false too (a typo): none may turn authentication off on every interface
    for (String value : java.util.List.of("off", "0", "ture")) {
      assertThatThrownBy(
              () ->
                  ServerProcess.start(
                          Map.of("CORRAL_HOME", home.toString(), "CORRAL_AUTH_ENABLED", value))
                      .close())
          .as(value)
          .isInstanceOf(IllegalStateException.class)
          .hasMessageContaining("corral exited")
          .hasMessageContaining("corral.auth.enabled")
          .hasMessageContaining("must be true or false");
    }
  }

  @Test
  void aKeyRevokedOnOneReplicaIsRefusedOnAnotherWithinFiveSecondsAndItsStreamsEnd()
      throws Exception {
    try (EmbeddedPostgres postgres = EmbeddedPostgres.builder().start()) {
      Map<String, String> database = database(postgres);
      try (ServerProcess first = ServerProcess.start(database);
          ServerProcess second = ServerProcess.start(database)) {
        // Given a key made on the first replica, used and streaming on the second
        CreateApiKeyResponse created =
            ApiKeyServiceGrpc.newBlockingStub(first.channel())
                .createApiKey(
                    CreateApiKeyRequest.newBuilder()
                        .setName("ci")
                        .setRole(Role.ROLE_MEMBER)
                        .build());
        assertThat(whoAmI(second, created.getKey()).getApiKeyId())
            .isEqualTo(created.getApiKey().getId());
        Channel secondAsKey =
            ClientInterceptors.intercept(
                second.channel(), TestCredentials.bearer(created.getKey()));
        Session session =
            Fixtures.createSession(
                dev.corral.proto.v1.AgentServiceGrpc.newBlockingStub(secondAsKey),
                dev.corral.proto.v1.SessionServiceGrpc.newBlockingStub(secondAsKey));
        StreamRecorder stream =
            StreamRecorder.follow(
                secondAsKey,
                StreamEventsRequest.newBuilder().setSessionId(session.getId()).build());

        // When it is revoked on the first
        Instant revoked = Instant.now();
        ApiKeyServiceGrpc.newBlockingStub(first.channel())
            .revokeApiKey(
                RevokeApiKeyRequest.newBuilder().setApiKeyId(created.getApiKey().getId()).build());

        // Then the second refuses it, and ends its stream, within 5 s
        await()
            .atMost(Duration.ofSeconds(5))
            .pollInterval(Duration.ofMillis(100))
            .untilAsserted(
                () ->
                    assertThatThrownBy(() -> whoAmI(second, created.getKey()))
                        .isInstanceOfSatisfying(
                            StatusRuntimeException.class,
                            e ->
                                assertThat(e.getStatus().getCode())
                                    .isEqualTo(Status.Code.UNAUTHENTICATED)));
        await()
            .atMost(Duration.ofSeconds(5).minus(Duration.between(revoked, Instant.now())))
            .untilAsserted(
                () ->
                    assertThat(stream.closedWith())
                        .isNotNull()
                        .extracting(Status::getCode)
                        .isEqualTo(Status.Code.UNAUTHENTICATED));
      }
    }
  }

  @Test
  void aRevokedBootstrapKeyStaysRevokedAndTheServerStillStarts() throws Exception {
    try (EmbeddedPostgres postgres = EmbeddedPostgres.builder().start()) {
      Map<String, String> database = database(postgres);
      // Given an operator who made a second admin key and revoked the configured bootstrap key
      CreateApiKeyResponse second;
      try (ServerProcess server = ServerProcess.start(database)) {
        second =
            ApiKeyServiceGrpc.newBlockingStub(server.channel())
                .createApiKey(
                    CreateApiKeyRequest.newBuilder()
                        .setName("second admin")
                        .setRole(Role.ROLE_ADMIN)
                        .build());
        String bootstrapId = whoAmI(server, TestCredentials.ADMIN_KEY).getApiKeyId();
        ApiKeyServiceGrpc.newBlockingStub(
                ClientInterceptors.intercept(
                    server.channel(), TestCredentials.bearer(second.getKey())))
            .revokeApiKey(RevokeApiKeyRequest.newBuilder().setApiKeyId(bootstrapId).build());
      }

      // When the server starts again with the same bootstrap key configured
      try (ServerProcess restarted = ServerProcess.start(database)) {
        // Then it became ready, the key stays revoked, it says so, and the other key works
        assertThatThrownBy(() -> whoAmI(restarted, TestCredentials.ADMIN_KEY))
            .isInstanceOfSatisfying(
                StatusRuntimeException.class,
                e -> assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.UNAUTHENTICATED));
        assertThat(restarted.log()).contains("which was revoked");
        assertThat(whoAmI(restarted, second.getKey()).getOperator()).isTrue();
      }
    }
  }

  private static WhoAmIResponse whoAmI(ServerProcess server, String key) {
    ManagedChannel plain =
        ManagedChannelBuilder.forAddress("localhost", server.port()).usePlaintext().build();
    try {
      Channel channel =
          key == null ? plain : ClientInterceptors.intercept(plain, TestCredentials.bearer(key));
      return TenantServiceGrpc.newBlockingStub(channel).whoAmI(WhoAmIRequest.getDefaultInstance());
    } finally {
      plain.shutdownNow();
    }
  }

  private static Map<String, String> database(EmbeddedPostgres postgres) {
    String url = "localhost:" + postgres.getPort() + "/postgres";
    return Map.of(
        "QUARKUS_DATASOURCE_REACTIVE_URL",
        "postgresql://" + url,
        "QUARKUS_DATASOURCE_JDBC_URL",
        "jdbc:postgresql://" + url,
        "QUARKUS_DATASOURCE_USERNAME",
        "postgres",
        "CORRAL_HARNESS_ENABLED",
        "false");
  }

  /** An address of this machine other than loopback, if it has one. */
  private static Optional<InetAddress> externalAddress() throws Exception {
    for (NetworkInterface network : Collections.list(NetworkInterface.getNetworkInterfaces())) {
      if (!network.isUp() || network.isLoopback()) {
        continue;
      }
      for (InetAddress address : Collections.list(network.getInetAddresses())) {
        if (address instanceof Inet4Address && !address.isLoopbackAddress()) {
          return Optional.of(address);
        }
      }
    }
    return Optional.empty();
  }
}
