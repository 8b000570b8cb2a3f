package dev.corral.vault;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.google.protobuf.Message;
import dev.corral.proto.v1.BasicAuth;
import dev.corral.proto.v1.CreateCredentialRequest;
import dev.corral.proto.v1.Credential;
import dev.corral.proto.v1.DeleteCredentialRequest;
import dev.corral.proto.v1.GetCredentialRequest;
import dev.corral.proto.v1.ListCredentialsRequest;
import dev.corral.proto.v1.OAuth2Auth;
import dev.corral.proto.v1.RewrapCredentialsRequest;
import dev.corral.proto.v1.StaticHeaderAuth;
import dev.corral.proto.v1.UpdateCredentialRequest;
import dev.corral.proto.v1.VaultServiceGrpc;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.protobuf.StatusProto;
import io.quarkus.grpc.GrpcClient;
import io.quarkus.test.junit.QuarkusTest;
import io.vertx.mutiny.sqlclient.Pool;
import jakarta.inject.Inject;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.UUID;
import java.util.stream.Stream;
import org.eclipse.microprofile.config.inject.ConfigProperty;
import org.junit.jupiter.api.Test;

@QuarkusTest
class VaultTest {

  @GrpcClient("corral")
  VaultServiceGrpc.VaultServiceBlockingStub vault;

  @Inject Pool pool;

  @ConfigProperty(name = "quarkus.datasource.reactive.url")
  String databaseUrl;

  @Test
  void noReadEverReturnsASecretOfAnyKind() {
    // Given one credential of each kind, each holding a canary
    String canary = "canary-" + UUID.randomUUID();
    List<Credential> created =
        List.of(
            create(staticHeader("https://mcp.example.com/mcp", "Bearer " + canary)),
            create(
                CreateCredentialRequest.newBuilder()
                    .setName("oauth")
                    .setOauth2(
                        OAuth2Auth.newBuilder()
                            .setMcpServerUrl("https://mcp.example.com/oauth")
                            .setAccessToken(canary + "-access")
                            .setRefreshToken(canary + "-refresh")
                            .setTokenUrl("https://login.example.com/token")
                            .setClientId("corral")
                            .setClientSecret(canary + "-client"))
                    .build()),
            create(
                CreateCredentialRequest.newBuilder()
                    .setName("git")
                    .setBasic(
                        BasicAuth.newBuilder()
                            .addHosts("git.example.com")
                            .setUsername("x-access-token")
                            .setPassword(canary + "-password"))
                    .build()));

    // When every read is made
    List<Message> answers = new java.util.ArrayList<>(created);
    for (Credential credential : created) {
      answers.add(
          vault.getCredential(
              GetCredentialRequest.newBuilder().setCredentialId(credential.getId()).build()));
    }
    answers.add(
        vault.listCredentials(ListCredentialsRequest.newBuilder().setPageSize(100).build()));

    // Then none holds any of the secrets, but they say what each is bound to
    for (Message answer : answers) {
      assertThat(new String(answer.toByteArray(), StandardCharsets.ISO_8859_1))
          .doesNotContain(canary);
    }
    assertThat(created.get(0).getStaticHeader().getMcpServerUrl())
        .isEqualTo("https://mcp.example.com/mcp");
    assertThat(created.get(0).getStaticHeader().getHeaderName()).isEqualTo("Authorization");
    assertThat(created.get(1).getOauth2().getHasRefreshToken()).isTrue();
    assertThat(created.get(2).getBasic().getHostsList()).containsExactly("git.example.com");
    assertThat(created.get(0).getKeyId()).isEqualTo("test-1");
  }

  @Test
  void theDatabaseHoldsOnlySealedSecrets() throws Exception {
    // Given a credential with a canary
    String canary = "canary-" + UUID.randomUUID();
    Credential credential = create(staticHeader("https://mcp.example.com/db", canary));

    // When its row, and every file of the database, are read (after a checkpoint)
    var row =
        pool.preparedQuery("SELECT * FROM credentials WHERE id = $1")
            .execute(io.vertx.mutiny.sqlclient.Tuple.of(credential.getId()))
            .await()
            .atMost(Duration.ofSeconds(5))
            .iterator()
            .next();
    pool.query("CHECKPOINT").execute().await().atMost(Duration.ofSeconds(30));
    String dataDirectory =
        pool.query("SHOW data_directory")
            .execute()
            .await()
            .atMost(Duration.ofSeconds(5))
            .iterator()
            .next()
            .getString(0);

    // Then no column and no file holds the canary
    for (int column = 0; column < row.size(); column++) {
      Object value = row.getValue(column);
      String text =
          value instanceof io.vertx.core.buffer.Buffer buffer
              ? new String(buffer.getBytes(), StandardCharsets.ISO_8859_1)
              : String.valueOf(value);
      assertThat(text).as(row.getColumnName(column)).doesNotContain(canary);
    }
    assertThat(filesHolding(Path.of(dataDirectory), canary.getBytes(StandardCharsets.UTF_8)))
        .isEmpty();
  }

  @Test
  void rotationReplacesTheSecretButNotWhatItIsBoundTo() {
    Credential credential = create(staticHeader("https://mcp.example.com/rotate", "Bearer old"));
    Credential rotated =
        vault
            .updateCredential(
                UpdateCredentialRequest.newBuilder()
                    .setCredentialId(credential.getId())
                    .setName("rotated")
                    .setStaticHeader(
                        StaticHeaderAuth.newBuilder()
                            .setMcpServerUrl("https://MCP.example.com:443/rotate")
                            .setValue("Bearer new"))
                    .build())
            .getCredential();
    assertThat(rotated.getName()).isEqualTo("rotated");
    assertThat(
            com.google.protobuf.util.Timestamps.compare(
                rotated.getRotatedAt(), credential.getRotatedAt()))
        .isPositive();
    assertInvalid(
        () ->
            vault.updateCredential(
                UpdateCredentialRequest.newBuilder()
                    .setCredentialId(credential.getId())
                    .setStaticHeader(
                        StaticHeaderAuth.newBuilder()
                            .setMcpServerUrl("https://evil.example.com/rotate")
                            .setValue("Bearer new"))
                    .build()),
        "static_header.mcp_server_url");
    assertInvalid(
        () ->
            vault.updateCredential(
                UpdateCredentialRequest.newBuilder()
                    .setCredentialId(credential.getId())
                    .setBasic(BasicAuth.newBuilder().addHosts("git.example.com").setPassword("p"))
                    .build()),
        "auth");
    Credential renamedOnly =
        vault
            .updateCredential(
                UpdateCredentialRequest.newBuilder()
                    .setCredentialId(credential.getId())
                    .setName("renamed")
                    .build())
            .getCredential();
    assertThat(renamedOnly.getRotatedAt()).isEqualTo(rotated.getRotatedAt());
  }

  @Test
  void badInputNamesTheFieldAndNeverQuotesASecret() {
    String secret = "s3cr3t-" + UUID.randomUUID();
    assertInvalid(
        () -> vault.createCredential(CreateCredentialRequest.newBuilder().setName("x").build()),
        "auth");
    assertInvalid(
        () -> create(staticHeader("ftp://mcp.example.com", secret)),
        "static_header.mcp_server_url");
    assertInvalid(
        () -> create(staticHeader("https://user:pw@mcp.example.com", secret)),
        "static_header.mcp_server_url");
    assertInvalid(() -> create(staticHeader("https://mcp.example.com", "")), "static_header.value");
    assertInvalid(
        () -> create(staticHeader("https://mcp.example.com", secret + "\r\nX-Injected: 1")),
        "static_header.value");
    assertInvalid(
        () ->
            create(
                CreateCredentialRequest.newBuilder()
                    .setName("x")
                    .setStaticHeader(
                        StaticHeaderAuth.newBuilder()
                            .setMcpServerUrl("https://mcp.example.com")
                            .setHeaderName("Host")
                            .setValue(secret))
                    .build()),
        "static_header.header_name");
    assertInvalid(
        () ->
            create(
                CreateCredentialRequest.newBuilder()
                    .setName("x")
                    .setOauth2(
                        OAuth2Auth.newBuilder()
                            .setMcpServerUrl("https://mcp.example.com")
                            .setAccessToken(secret)
                            .setRefreshToken(secret))
                    .build()),
        "oauth2.token_url");
    assertInvalid(
        () ->
            create(
                CreateCredentialRequest.newBuilder()
                    .setName("x")
                    .setBasic(
                        BasicAuth.newBuilder()
                            .addHosts("https://git.example.com")
                            .setPassword(secret))
                    .build()),
        "basic.hosts[0]");
    assertInvalid(
        () -> create(staticHeader("https://mcp.example.com", "x".repeat(8193))),
        "static_header.value");
    for (String field : List.of("name")) {
      assertInvalid(
          () ->
              vault.createCredential(
                  CreateCredentialRequest.newBuilder()
                      .setName("")
                      .setStaticHeader(
                          StaticHeaderAuth.newBuilder()
                              .setMcpServerUrl("https://mcp.example.com")
                              .setValue(secret))
                      .build()),
          field);
    }
    assertThatThrownBy(
            () ->
                vault.createCredential(
                    CreateCredentialRequest.newBuilder()
                        .setName("x")
                        .setStaticHeader(
                            StaticHeaderAuth.newBuilder()
                                .setMcpServerUrl("not a url " + secret)
                                .setValue(secret))
                        .build()))
        .isInstanceOfSatisfying(
            StatusRuntimeException.class,
            e -> assertThat(String.valueOf(e.getStatus().getDescription())).doesNotContain(secret));
  }

  @Test
  void aDeletedCredentialIsGone() {
    Credential credential = create(staticHeader("https://mcp.example.com/gone", "Bearer x"));
    vault.deleteCredential(
        DeleteCredentialRequest.newBuilder().setCredentialId(credential.getId()).build());
    assertThatThrownBy(
            () ->
                vault.getCredential(
                    GetCredentialRequest.newBuilder().setCredentialId(credential.getId()).build()))
        .isInstanceOfSatisfying(
            StatusRuntimeException.class,
            e -> assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.NOT_FOUND));
    assertThatThrownBy(
            () ->
                vault.deleteCredential(
                    DeleteCredentialRequest.newBuilder()
                        .setCredentialId(credential.getId())
                        .build()))
        .isInstanceOfSatisfying(
            StatusRuntimeException.class,
            e -> assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.NOT_FOUND));
  }

  @Test
  void rewrappingUnderTheActiveKeyChangesNothingTwice() {
    create(staticHeader("https://mcp.example.com/rewrap", "Bearer x"));
    var first = vault.rewrapCredentials(RewrapCredentialsRequest.getDefaultInstance());
    assertThat(first.getActiveKeyId()).isEqualTo("test-1");
    assertThat(first.getRewrapped()).isZero();
  }

  private Credential create(CreateCredentialRequest request) {
    return vault.createCredential(request).getCredential();
  }

  private static CreateCredentialRequest staticHeader(String url, String value) {
    return CreateCredentialRequest.newBuilder()
        .setName("header")
        .setStaticHeader(StaticHeaderAuth.newBuilder().setMcpServerUrl(url).setValue(value))
        .build();
  }

  private static void assertInvalid(Runnable call, String field) {
    assertThatThrownBy(call::run)
        .isInstanceOfSatisfying(
            StatusRuntimeException.class,
            e -> {
              assertThat(e.getStatus().getCode()).as(field).isEqualTo(Status.Code.INVALID_ARGUMENT);
              var details = StatusProto.fromThrowable(e).getDetailsList();
              assertThat(details).isNotEmpty();
              assertThat(details.get(0).toString()).contains(field);
            });
  }

  /** Files under {@code directory} whose bytes contain {@code needle}. */
  static List<Path> filesHolding(Path directory, byte[] needle) throws Exception {
    try (Stream<Path> files = Files.walk(directory)) {
      return files
          .filter(Files::isRegularFile)
          .filter(
              file -> {
                try {
                  return indexOf(Files.readAllBytes(file), needle) >= 0;
                } catch (java.io.IOException unreadable) {
                  return false;
                }
              })
          .toList();
    }
  }

  private static int indexOf(byte[] haystack, byte[] needle) {
    outer:
    for (int i = 0; i + needle.length <= haystack.length; i++) {
      for (int j = 0; j < needle.length; j++) {
        if (haystack[i + j] != needle[j]) {
          continue outer;
        }
      }
      return i;
    }
    return -1;
  }
}
