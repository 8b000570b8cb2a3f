package dev.corral.vault;

import static org.assertj.core.api.Assertions.assertThat;

import dev.corral.proto.v1.AgentServiceGrpc;
import dev.corral.proto.v1.CreateCredentialRequest;
import dev.corral.proto.v1.ListCredentialsRequest;
import dev.corral.proto.v1.StaticHeaderAuth;
import dev.corral.proto.v1.VaultServiceGrpc;
import dev.corral.testing.Fixtures;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.quarkus.grpc.GrpcClient;
import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.QuarkusTestProfile;
import io.quarkus.test.junit.TestProfile;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** Without a key-encryption key the vault refuses to store, and everything else works. */
@QuarkusTest
@TestProfile(VaultWithoutKeysTest.NoKeys.class)
class VaultWithoutKeysTest {

  public static class NoKeys implements QuarkusTestProfile {
    @Override
    public Map<String, String> getConfigOverrides() {
      return Map.of("corral.vault.keys", "");
    }
  }

  @GrpcClient("corral")
  VaultServiceGrpc.VaultServiceBlockingStub vault;

  @GrpcClient("corral")
  AgentServiceGrpc.AgentServiceBlockingStub agents;

  @Test
  void theVaultRefusesClearlyAndNothingElseNotices() {
    assertThat(refusedStaticHeader("https://mcp.example.com"))
        .satisfies(
            e -> {
              assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.FAILED_PRECONDITION);
              assertThat(e.getStatus().getDescription()).contains("CORRAL_VAULT_KEYS");
            });
    // and a request that could never be stored names its field, whatever the server's keys
    assertThat(refusedStaticHeader("ftp://mcp.example.com"))
        .satisfies(
            e -> {
              assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT);
              assertThat(e.getStatus().getDescription()).contains("mcp_server_url");
            });
    assertThat(
            vault
                .listCredentials(ListCredentialsRequest.getDefaultInstance())
                .getCredentialsCount())
        .isZero();
    assertThat(Fixtures.createAgent(agents)).startsWith("agent_");
  }

  @Test
  void aRestSessionThatCouldNeverBeMadeNamesItsFieldBeforeAnyTokenIsStored() throws Exception {
    // When a session is asked for over REST with a title longer than a title may be, and a
    // repository whose token would go into the vault
    String agent = Fixtures.createAgent(agents);
    java.net.http.HttpResponse<String> created =
        java.net.http.HttpClient.newHttpClient()
            .send(
                java.net.http.HttpRequest.newBuilder(
                        java.net.URI.create("http://localhost:18081/v1/sessions"))
                    .header("x-api-key", dev.corral.testing.TestCredentials.ADMIN_KEY)
                    .header("content-type", "application/json")
                    .POST(
                        java.net.http.HttpRequest.BodyPublishers.ofString(
                            "{\"agent\":\""
                                + agent
                                + "\",\"title\":\""
                                + "t".repeat(300)
                                + "\",\"resources\":[{\"type\":\"github_repository\","
                                + "\"url\":\"https://github.com/acme/app.git\","
                                + "\"authorization_token\":\"ghp_x\"}]}"))
                    .build(),
                java.net.http.HttpResponse.BodyHandlers.ofString());

    // Then the title is named (the session's own checks come before the token is stored, which
    // this server could not do), and nothing is stored
    assertThat(created.statusCode()).as(created.body()).isEqualTo(400);
    assertThat(created.body()).contains("title").doesNotContain("CORRAL_VAULT_KEYS");
  }

  /** How the vault refuses a static-header credential for {@code mcpServerUrl}. */
  private StatusRuntimeException refusedStaticHeader(String mcpServerUrl) {
    return org.assertj.core.api.Assertions.catchThrowableOfType(
        StatusRuntimeException.class,
        () ->
            vault.createCredential(
                CreateCredentialRequest.newBuilder()
                    .setName("x")
                    .setStaticHeader(
                        StaticHeaderAuth.newBuilder()
                            .setMcpServerUrl(mcpServerUrl)
                            .setValue("Bearer x"))
                    .build()));
  }
}
