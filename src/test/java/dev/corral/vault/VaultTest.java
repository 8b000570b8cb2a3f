package dev.corral.vault;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.google.protobuf.Message;
import dev.corral.common.Tenant;
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

  @GrpcClient("corral")
  io.grpc.Channel channel;

  @Inject Pool pool;

  @Inject Credentials credentials;

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
  void rotationTakesTheSameBindingsSpelledAnotherWay() {
    // Given a basic credential for two hosts, and an OAuth credential
    Credential basic =
        create(
            CreateCredentialRequest.newBuilder()
                .setName("git")
                .setBasic(
                    BasicAuth.newBuilder()
                        .addHosts("a.example.com")
                        .addHosts("b.example.com")
                        .setPassword("p1"))
                .build());
    Credential oauth =
        create(
            CreateCredentialRequest.newBuilder()
                .setName("oauth")
                .setOauth2(
                    OAuth2Auth.newBuilder()
                        .setMcpServerUrl("https://mcp.example.com/spelled")
                        .setAccessToken("a1")
                        .setTokenUrl("https://login.example.com/token")
                        .setClientId("corral"))
                .build());

    // When each is rotated with its bindings in another order or spelling
    vault.updateCredential(
        UpdateCredentialRequest.newBuilder()
            .setCredentialId(basic.getId())
            .setBasic(
                BasicAuth.newBuilder()
                    .addHosts("b.example.com:443")
                    .addHosts("a.example.com")
                    .setPassword("p2"))
            .build());
    vault.updateCredential(
        UpdateCredentialRequest.newBuilder()
            .setCredentialId(oauth.getId())
            .setOauth2(
                OAuth2Auth.newBuilder()
                    .setMcpServerUrl("https://mcp.example.com/spelled")
                    .setAccessToken("a2")
                    .setTokenUrl("https://LOGIN.example.com:443/token")
                    .setClientId("corral"))
            .build());

    // Then both are taken; another host is still refused
    assertInvalid(
        () ->
            vault.updateCredential(
                UpdateCredentialRequest.newBuilder()
                    .setCredentialId(basic.getId())
                    .setBasic(
                        BasicAuth.newBuilder()
                            .addHosts("a.example.com")
                            .addHosts("c.example.com")
                            .setPassword("p3"))
                    .build()),
        "basic.hosts");
  }

  @Test
  void anAccessTokenWithoutRefreshIsRotatedLikeAnyOther() {
    // Given an OAuth credential with an access token and nothing to refresh it with
    Credential oauth =
        create(
            CreateCredentialRequest.newBuilder()
                .setName("static bearer")
                .setOauth2(
                    OAuth2Auth.newBuilder()
                        .setMcpServerUrl("https://mcp.example.com/bearer")
                        .setAccessToken("a1"))
                .build());

    // When its token is rotated, with or without the server's URL
    vault.updateCredential(
        UpdateCredentialRequest.newBuilder()
            .setCredentialId(oauth.getId())
            .setOauth2(OAuth2Auth.newBuilder().setAccessToken("a2"))
            .build());
    vault.updateCredential(
        UpdateCredentialRequest.newBuilder()
            .setCredentialId(oauth.getId())
            .setOauth2(
                OAuth2Auth.newBuilder()
                    .setMcpServerUrl("https://mcp.example.com/bearer")
                    .setAccessToken("a3"))
            .build());

    // Then both are taken (they were refused for a token_url never sent); binding it to a token
    // endpoint it never had is still a change of its binding
    assertInvalid(
        () ->
            vault.updateCredential(
                UpdateCredentialRequest.newBuilder()
                    .setCredentialId(oauth.getId())
                    .setOauth2(
                        OAuth2Auth.newBuilder()
                            .setAccessToken("a4")
                            .setRefreshToken("r4")
                            .setTokenUrl("https://login.example.com/token")
                            .setClientId("corral"))
                    .build()),
        "oauth2.token_url");
  }

  @Test
  void rotatingAHeadersValueKeepsTheHeaderItGoesIn() {
    // Given a credential sent as X-Api-Key
    Credential credential =
        create(
            staticHeader("https://mcp.example.com/keyed", "k1").toBuilder()
                .setStaticHeader(
                    StaticHeaderAuth.newBuilder()
                        .setMcpServerUrl("https://mcp.example.com/keyed")
                        .setHeaderName("X-Api-Key")
                        .setValue("k1"))
                .build());

    // When its value is rotated without naming the header
    Credential rotated =
        vault
            .updateCredential(
                UpdateCredentialRequest.newBuilder()
                    .setCredentialId(credential.getId())
                    .setStaticHeader(
                        StaticHeaderAuth.newBuilder()
                            .setMcpServerUrl("https://mcp.example.com/keyed")
                            .setValue("k2"))
                    .build())
            .getCredential();

    // Then it still goes in X-Api-Key, not in the default Authorization
    assertThat(rotated.getStaticHeader().getHeaderName()).isEqualTo("X-Api-Key");
  }

  @Test
  void aCredentialCreatedWhileItsVaultIsDeletedIsEitherDeletedWithItOrRefused() throws Exception {
    var pool = java.util.concurrent.Executors.newFixedThreadPool(2);
    try {
      for (int round = 0; round < 20; round++) {
        // Given a vault
        String vaultId =
            vault
                .createVault(
                    dev.corral.proto.v1.CreateVaultRequest.newBuilder()
                        .setDisplayName("racing " + round)
                        .build())
                .getVault()
                .getId();

        // When a credential is created in it while it is deleted
        var start = new java.util.concurrent.CountDownLatch(1);
        var create =
            pool.submit(
                () -> {
                  start.await();
                  try {
                    return create(githubBasic("racer", vaultId)).getId();
                  } catch (StatusRuntimeException e) {
                    assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.NOT_FOUND);
                    return null;
                  }
                });
        var delete =
            pool.submit(
                () -> {
                  start.await();
                  vault.deleteVault(
                      dev.corral.proto.v1.DeleteVaultRequest.newBuilder()
                          .setVaultId(vaultId)
                          .build());
                  return null;
                });
        start.countDown();

        // Then both answer cleanly (never INTERNAL), and no credential outlives its vault
        String created = create.get();
        delete.get();
        if (created != null) {
          String id = created;
          var gone =
              org.assertj.core.api.Assertions.catchThrowableOfType(
                  StatusRuntimeException.class,
                  () ->
                      vault.getCredential(
                          dev.corral.proto.v1.GetCredentialRequest.newBuilder()
                              .setCredentialId(id)
                              .build()));
          assertThat(gone.getStatus().getCode()).isEqualTo(Status.Code.NOT_FOUND);
        }
      }
    } finally {
      pool.shutdownNow();
    }
  }

  @Test
  void createsRacingAtATenantsLimitNeverPassIt() throws Exception {
    // Given a new tenant 5 vaults short of its limit of 100
    var member =
        VaultServiceGrpc.newBlockingStub(
            dev.corral.testing.TestCredentials.memberOfNewTenant(channel, "limits"));
    for (int i = 0; i < 95; i++) {
      member.createVault(
          dev.corral.proto.v1.CreateVaultRequest.newBuilder().setDisplayName("v" + i).build());
    }

    // When 20 more are created at once
    var pool = java.util.concurrent.Executors.newFixedThreadPool(20);
    var start = new java.util.concurrent.CountDownLatch(1);
    List<java.util.concurrent.Future<Status.Code>> outcomes = new java.util.ArrayList<>();
    for (int i = 0; i < 20; i++) {
      int n = i;
      outcomes.add(
          pool.submit(
              () -> {
                start.await();
                try {
                  member.createVault(
                      dev.corral.proto.v1.CreateVaultRequest.newBuilder()
                          .setDisplayName("r" + n)
                          .build());
                  return Status.Code.OK;
                } catch (StatusRuntimeException e) {
                  return e.getStatus().getCode();
                }
              }));
    }
    start.countDown();
    List<Status.Code> codes = new java.util.ArrayList<>();
    for (var outcome : outcomes) {
      codes.add(outcome.get(30, java.util.concurrent.TimeUnit.SECONDS));
    }
    pool.shutdown();

    // Then exactly 5 got in, the others were told the limit, and the tenant holds 100
    assertThat(codes.stream().filter(Status.Code.OK::equals).count())
        .as(codes.toString())
        .isEqualTo(5);
    assertThat(codes.stream().filter(Status.Code.RESOURCE_EXHAUSTED::equals).count()).isEqualTo(15);
    int held = 0;
    String token = "";
    do {
      var page =
          member.listVaults(
              dev.corral.proto.v1.ListVaultsRequest.newBuilder()
                  .setPageSize(100)
                  .setPageToken(token)
                  .build());
      held += page.getVaultsCount();
      token = page.getNextPageToken();
    } while (!token.isEmpty());
    assertThat(held).isEqualTo(100);
  }

  @Test
  void aVaultHoldsOneCredentialPerMcpServerEvenWhenCreatesRace() throws Exception {
    // Given a vault of a new tenant
    var member =
        VaultServiceGrpc.newBlockingStub(
            dev.corral.testing.TestCredentials.memberOfNewTenant(channel, "one-per-url"));
    String vaultId =
        member
            .createVault(
                dev.corral.proto.v1.CreateVaultRequest.newBuilder().setDisplayName("v").build())
            .getVault()
            .getId();

    // When eight credentials for one MCP server (spelled three ways, of two kinds) are created at
    // once
    List<String> spellings =
        List.of(
            "https://mcp.example.com/mcp",
            "https://MCP.example.com/mcp",
            "https://mcp.example.com:443/mcp");
    var threads = java.util.concurrent.Executors.newFixedThreadPool(8);
    var start = new java.util.concurrent.CountDownLatch(1);
    List<java.util.concurrent.Future<Status.Code>> outcomes = new java.util.ArrayList<>();
    for (int i = 0; i < 8; i++) {
      String url = spellings.get(i % spellings.size());
      CreateCredentialRequest request =
          i % 2 == 0
              ? staticHeader(url, "s3cret-" + i).toBuilder().setVaultId(vaultId).build()
              : CreateCredentialRequest.newBuilder()
                  .setName("oauth")
                  .setVaultId(vaultId)
                  .setOauth2(OAuth2Auth.newBuilder().setMcpServerUrl(url).setAccessToken("t-" + i))
                  .build();
      outcomes.add(
          threads.submit(
              () -> {
                start.await();
                try {
                  member.createCredential(request);
                  return Status.Code.OK;
                } catch (StatusRuntimeException e) {
                  if (e.getStatus().getCode() == Status.Code.ALREADY_EXISTS) {
                    assertThat(e.getStatus().getDescription())
                        .contains("vault " + vaultId)
                        .contains("https://mcp.example.com/mcp")
                        .doesNotContain("s3cret")
                        .doesNotContain("t-");
                  }
                  return e.getStatus().getCode();
                }
              }));
    }
    start.countDown();
    List<Status.Code> codes = new java.util.ArrayList<>();
    for (var outcome : outcomes) {
      codes.add(outcome.get(30, java.util.concurrent.TimeUnit.SECONDS));
    }
    threads.shutdown();

    // Then one got in and seven were told which credential holds the server
    assertThat(codes.stream().filter(Status.Code.OK::equals).count())
        .as(codes.toString())
        .isEqualTo(1);
    assertThat(codes.stream().filter(Status.Code.ALREADY_EXISTS::equals).count()).isEqualTo(7);
    var held =
        member
            .listCredentials(
                dev.corral.proto.v1.ListCredentialsRequest.newBuilder().setVaultId(vaultId).build())
            .getCredentialsList();
    assertThat(held).hasSize(1);

    // And another server's, a git credential, and the same server in another vault or outside
    // any vault are all taken
    member.createCredential(
        staticHeader("https://other.example.com/mcp", "v").toBuilder().setVaultId(vaultId).build());
    member.createCredential(githubBasic("git", vaultId));
    member.createCredential(staticHeader("https://mcp.example.com/mcp", "v"));
    String otherVault =
        member
            .createVault(
                dev.corral.proto.v1.CreateVaultRequest.newBuilder().setDisplayName("w").build())
            .getVault()
            .getId();
    member.createCredential(
        staticHeader("https://mcp.example.com/mcp", "v").toBuilder()
            .setVaultId(otherVault)
            .build());

    // And once the holder is deleted, the server takes a new credential
    member.deleteCredential(
        dev.corral.proto.v1.DeleteCredentialRequest.newBuilder()
            .setCredentialId(held.get(0).getId())
            .build());
    member.createCredential(
        staticHeader("https://mcp.example.com/mcp", "v").toBuilder().setVaultId(vaultId).build());
  }

  @Test
  void aVaultHoldsAtMostTwentyCredentials() {
    // Given a vault of a new tenant holding 20 credentials
    var member =
        VaultServiceGrpc.newBlockingStub(
            dev.corral.testing.TestCredentials.memberOfNewTenant(channel, "twenty"));
    String vaultId =
        member
            .createVault(
                dev.corral.proto.v1.CreateVaultRequest.newBuilder().setDisplayName("v").build())
            .getVault()
            .getId();
    for (int i = 0; i < 20; i++) {
      member.createCredential(
          staticHeader("https://mcp" + i + ".example.com/mcp", "v").toBuilder()
              .setVaultId(vaultId)
              .build());
    }

    // When a 21st is created, then it is refused naming the vault's limit
    assertThatThrownBy(() -> member.createCredential(githubBasic("git", vaultId)))
        .isInstanceOfSatisfying(
            StatusRuntimeException.class,
            e -> {
              assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.RESOURCE_EXHAUSTED);
              assertThat(e.getStatus().getDescription()).contains("vault " + vaultId, "20");
            });
    // And a credential outside the vault is still taken
    member.createCredential(githubBasic("git", ""));
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
            create(oauth2(OAuth2Auth.newBuilder().setAccessToken(secret).setRefreshToken(secret))),
        "oauth2.token_url");
    for (com.google.protobuf.Timestamp expiresAt :
        List.of(
            com.google.protobuf.Timestamp.newBuilder().setSeconds(Long.MAX_VALUE).build(),
            com.google.protobuf.Timestamp.newBuilder().setSeconds(-1).build(),
            com.google.protobuf.Timestamp.newBuilder().setSeconds(1).setNanos(-1).build(),
            com.google.protobuf.Timestamp.newBuilder()
                .setSeconds(1)
                .setNanos(1_000_000_000)
                .build())) {
      assertInvalid(
          () ->
              create(
                  oauth2(OAuth2Auth.newBuilder().setAccessToken(secret).setExpiresAt(expiresAt))),
          "oauth2.expires_at");
    }
    assertInvalid(
        () ->
            create(
                CreateCredentialRequest.newBuilder()
                    .setName("x")
                    .setBasic(
                        BasicAuth.newBuilder()
                            .addHosts("https://git.example.com/org")
                            .setPassword(secret))
                    .build()),
        "basic.hosts[0]");
    for (String host :
        List.of(
            "ftp://git.example.com",
            "https://user@git.example.com",
            "git.example.com:0",
            "git.example.com:70000",
            "https://git.example.com:99999",
            "https://git.example.com:0",
            "https://git.example.com:0443",
            "Git.example.com",
            "https://git.example.com?x")) {
      assertInvalid(
          () ->
              create(
                  CreateCredentialRequest.newBuilder()
                      .setName("x")
                      .setBasic(BasicAuth.newBuilder().addHosts(host).setPassword(secret))
                      .build()),
          "basic.hosts[0]");
    }
    // two entries that name one origin; a client secret corral would never send
    assertInvalid(
        () ->
            create(
                CreateCredentialRequest.newBuilder()
                    .setName("x")
                    .setBasic(
                        BasicAuth.newBuilder()
                            .addHosts("git.example.com")
                            .addHosts("https://git.example.com:443")
                            .setPassword(secret))
                    .build()),
        "basic.hosts[1]");
    assertInvalid(
        () ->
            create(oauth2(OAuth2Auth.newBuilder().setAccessToken(secret).setClientSecret(secret))),
        "oauth2.client_secret");
    assertInvalid(
        () ->
            create(
                oauth2(
                    OAuth2Auth.newBuilder()
                        .setAccessToken(secret)
                        .setRefreshToken(secret)
                        .setTokenUrl("https://auth.example.com/token")
                        .setClientId("corral")
                        .setClientSecret(secret)
                        .setTokenEndpointAuth(
                            dev.corral.proto.v1.TokenEndpointAuth.TOKEN_ENDPOINT_AUTH_NONE))),
        "oauth2.client_secret");
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

  @Test
  void aBasicCredentialIsSentOnlyToTheSchemeHostAndPortItIsBoundTo() {
    // Given a password bound to github.com (https, port 443) and to one plain-http origin
    String id =
        create(
                CreateCredentialRequest.newBuilder()
                    .setName("bound")
                    .setBasic(
                        BasicAuth.newBuilder()
                            .addHosts("github.com")
                            .addHosts("git.example.com:8443")
                            .addHosts("http://git.internal:8080")
                            .setUsername("u")
                            .setPassword("p"))
                    .build())
            .getId();

    // Then it goes to exactly those, and nowhere else on the same hosts
    for (String url :
        List.of(
            "https://github.com/o/r.git",
            "https://GitHub.com:443/o/r.git",
            "https://git.example.com:8443/r.git",
            "http://git.internal:8080/r.git")) {
      assertThat(credentials.authFor(Tenant.DEFAULT, id, url).await().indefinitely())
          .as(url)
          .isNotNull();
    }
    for (String url :
        List.of(
            "http://github.com/o/r.git",
            "https://github.com:8443/o/r.git",
            "https://git.example.com/r.git",
            "http://git.internal/r.git",
            "https://git.internal:8080/r.git",
            "https://evil.github.com/o/r.git")) {
      assertThatThrownBy(() -> credentials.authFor(Tenant.DEFAULT, id, url).await().indefinitely())
          .as(url)
          .isInstanceOf(CredentialUnusableException.class)
          .hasMessageContaining("is bound to");
    }
  }

  @Test
  void anOAuthRotationOfTheAccessTokenAloneKeepsTheRefreshTokenAndClientSecret() {
    // Given an OAuth credential with a refresh token and a client secret
    OAuth2Auth.Builder bound =
        OAuth2Auth.newBuilder()
            .setTokenUrl("https://auth.example.com/token")
            .setClientId("corral-test");
    Credential credential =
        create(
            oauth2(
                bound
                    .clone()
                    .setAccessToken("at-old")
                    .setRefreshToken("rt-kept")
                    .setClientSecret("cs-kept")
                    .setScope("read")
                    .setTokenEndpointAuth(
                        dev.corral.proto.v1.TokenEndpointAuth
                            .TOKEN_ENDPOINT_AUTH_CLIENT_SECRET_POST)));

    // When a client rotates the access token only
    Credential rotated =
        vault
            .updateCredential(
                UpdateCredentialRequest.newBuilder()
                    .setCredentialId(credential.getId())
                    .setOauth2(
                        bound
                            .clone()
                            .setMcpServerUrl("https://mcp.example.com")
                            .setAccessToken("at-new"))
                    .build())
            .getCredential();

    // Then the refresh token is still there (and so corral can still refresh), with the new access
    // token
    assertThat(rotated.getOauth2().getHasRefreshToken()).isTrue();
    assertThat(rotated.getOauth2().getScope()).isEqualTo("read");
    assertThat(rotated.getOauth2().getTokenEndpointAuth())
        .isEqualTo(dev.corral.proto.v1.TokenEndpointAuth.TOKEN_ENDPOINT_AUTH_CLIENT_SECRET_POST);
    assertThat(bearerOf(credential)).isEqualTo("at-new");

    // And when it then rotates the refresh token alone, the access token stays
    Credential again =
        vault
            .updateCredential(
                UpdateCredentialRequest.newBuilder()
                    .setCredentialId(credential.getId())
                    .setOauth2(OAuth2Auth.newBuilder().setRefreshToken("rt-new"))
                    .build())
            .getCredential();
    assertThat(again.getOauth2().getHasRefreshToken()).isTrue();
    assertThat(again.getOauth2().getTokenUrl()).isEqualTo("https://auth.example.com/token");

    // And one that says the token endpoint takes no client secret now drops the kept one rather
    // than being refused for a secret it did not send
    Credential open =
        vault
            .updateCredential(
                UpdateCredentialRequest.newBuilder()
                    .setCredentialId(credential.getId())
                    .setOauth2(
                        OAuth2Auth.newBuilder()
                            .setTokenEndpointAuth(
                                dev.corral.proto.v1.TokenEndpointAuth.TOKEN_ENDPOINT_AUTH_NONE))
                    .build())
            .getCredential();
    assertThat(open.getOauth2().getTokenEndpointAuth())
        .isEqualTo(dev.corral.proto.v1.TokenEndpointAuth.TOKEN_ENDPOINT_AUTH_NONE);
    assertThat(bearerOf(credential)).isEqualTo("at-new");
  }

  /** The token the credential gives a call to https://mcp.example.com. */
  private String bearerOf(Credential credential) {
    return credentials
        .authFor(Tenant.DEFAULT, credential.getId(), "https://mcp.example.com")
        .await()
        .indefinitely()
        .bearerToken();
  }

  @Test
  void aCredentialOfAnArchivedVaultIsNeitherUsedNorNamed() {
    // Given a credential for an MCP server in a vault that an agent names
    String url = "https://mcp.example.com/archived-" + UUID.randomUUID();
    String vaultId =
        vault
            .createVault(
                dev.corral.proto.v1.CreateVaultRequest.newBuilder().setDisplayName("old").build())
            .getVault()
            .getId();
    String id =
        create(staticHeader(url, "Bearer old").toBuilder().setVaultId(vaultId).build()).getId();
    agentsOfVaults.createAgent(agentCalling(url, id));
    assertThat(credentials.authFor(Tenant.DEFAULT, id, url).await().indefinitely()).isNotNull();

    // When the vault is archived
    vault.archiveVault(
        dev.corral.proto.v1.ArchiveVaultRequest.newBuilder().setVaultId(vaultId).build());

    // Then no call carries its credential any more, and no new agent may name it
    assertThatThrownBy(() -> credentials.authFor(Tenant.DEFAULT, id, url).await().indefinitely())
        .isInstanceOf(CredentialUnusableException.class)
        .hasMessageContaining("archived");
    var refused =
        org.junit.jupiter.api.Assertions.assertThrows(
            io.grpc.StatusRuntimeException.class,
            () -> agentsOfVaults.createAgent(agentCalling(url, id)));
    assertThat(refused.getStatus().getCode()).isEqualTo(Status.Code.FAILED_PRECONDITION);
    assertThat(refused.getStatus().getDescription())
        .contains("mcp_servers[0].credential_id")
        .contains("archived");
  }

  private Credential create(CreateCredentialRequest request) {
    return vault.createCredential(request).getCredential();
  }

  /** An OAuth credential named x for https://mcp.example.com with {@code auth}'s fields. */
  private static CreateCredentialRequest oauth2(OAuth2Auth.Builder auth) {
    return CreateCredentialRequest.newBuilder()
        .setName("x")
        .setOauth2(auth.setMcpServerUrl("https://mcp.example.com"))
        .build();
  }

  /** A basic credential {@code name} for github.com in {@code vaultId}. */
  private static CreateCredentialRequest githubBasic(String name, String vaultId) {
    return CreateCredentialRequest.newBuilder()
        .setName(name)
        .setVaultId(vaultId)
        .setBasic(BasicAuth.newBuilder().addHosts("github.com").setUsername("u").setPassword("p"))
        .build();
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

  @GrpcClient("corral")
  dev.corral.proto.v1.SessionServiceGrpc.SessionServiceBlockingStub sessionsOfVaults;

  @GrpcClient("corral")
  dev.corral.proto.v1.AgentServiceGrpc.AgentServiceBlockingStub agentsOfVaults;

  @Test
  void vaultsGroupCredentialsAndSessionsNameOnlyUsableVaultsOfTheirTenant() {
    // Given a vault with a credential, and a credential outside it
    var created =
        vault
            .createVault(
                dev.corral.proto.v1.CreateVaultRequest.newBuilder()
                    .setDisplayName("team")
                    .putMetadata("owner", "ops")
                    .build())
            .getVault();
    var inside =
        vault
            .createCredential(
                dev.corral.proto.v1.CreateCredentialRequest.newBuilder()
                    .setName("inside")
                    .setVaultId(created.getId())
                    .setStaticHeader(
                        dev.corral.proto.v1.StaticHeaderAuth.newBuilder()
                            .setMcpServerUrl("https://mcp.example.com/mcp")
                            .setHeaderName("Authorization")
                            .setValue("Bearer inside-secret"))
                    .build())
            .getCredential();
    var outside =
        vault
            .createCredential(
                dev.corral.proto.v1.CreateCredentialRequest.newBuilder()
                    .setName("outside")
                    .setStaticHeader(
                        dev.corral.proto.v1.StaticHeaderAuth.newBuilder()
                            .setMcpServerUrl("https://mcp.example.com/mcp")
                            .setHeaderName("Authorization")
                            .setValue("Bearer outside-secret"))
                    .build())
            .getCredential();
    String agent = dev.corral.testing.Fixtures.createAgent(agentsOfVaults);

    // When it is listed, renamed and named by a session
    var listed =
        vault
            .listCredentials(
                dev.corral.proto.v1.ListCredentialsRequest.newBuilder()
                    .setVaultId(created.getId())
                    .build())
            .getCredentialsList();
    var renamed =
        vault
            .updateVault(
                dev.corral.proto.v1.UpdateVaultRequest.newBuilder()
                    .setVaultId(created.getId())
                    .setDisplayName("platform")
                    .build())
            .getVault();
    var session =
        sessionsOfVaults
            .createSession(
                dev.corral.proto.v1.CreateSessionRequest.newBuilder()
                    .setAgentId(agent)
                    .addVaultIds(created.getId())
                    .build())
            .getSession();

    // Then
    assertThat(inside.getVaultId()).isEqualTo(created.getId());
    assertThat(listed).extracting(c -> c.getId()).containsExactly(inside.getId());
    assertThat(renamed.getDisplayName()).isEqualTo("platform");
    assertThat(renamed.getMetadataMap()).containsEntry("owner", "ops");
    assertThat(session.getVaultIdsList()).containsExactly(created.getId());

    // And a session may not name an unknown, malformed, repeated or archived vault
    for (var bad :
        List.of(
            List.of("vlt_00000000000000000000000000"),
            List.of("vlt_x"),
            List.of(created.getId(), created.getId()))) {
      var failure =
          org.assertj.core.api.Assertions.catchThrowableOfType(
              io.grpc.StatusRuntimeException.class,
              () ->
                  sessionsOfVaults.createSession(
                      dev.corral.proto.v1.CreateSessionRequest.newBuilder()
                          .setAgentId(agent)
                          .addAllVaultIds(bad)
                          .build()));
      assertThat(failure.getStatus().getCode())
          .as(bad.toString())
          .isIn(io.grpc.Status.Code.NOT_FOUND, io.grpc.Status.Code.INVALID_ARGUMENT);
      assertThat(failure.getStatus().getDescription()).contains("vault");
    }
    // And an update that changes nothing, and a second archive, leave the vault as it was
    var unchanged =
        vault
            .updateVault(
                dev.corral.proto.v1.UpdateVaultRequest.newBuilder()
                    .setVaultId(created.getId())
                    .build())
            .getVault();
    assertThat(unchanged).isEqualTo(renamed);
    var archivedOnce = archiveVault(created.getId());
    var archivedTwice = archiveVault(created.getId());
    assertThat(archivedTwice).isEqualTo(archivedOnce);
    var archived =
        org.assertj.core.api.Assertions.catchThrowableOfType(
            io.grpc.StatusRuntimeException.class,
            () -> create(githubBasic("late", created.getId())));
    assertThat(archived.getStatus().getCode()).isEqualTo(io.grpc.Status.Code.FAILED_PRECONDITION);
    assertThat(archived.getStatus().getDescription()).contains("archived");
    // And an update of the archived vault, or of none, to metadata that no vault may hold names
    // the field, not the vault's state
    var seventeen = dev.corral.proto.v1.Metadata.newBuilder();
    for (int i = 0; i < 17; i++) {
      seventeen.putEntries("key" + i, "value");
    }
    for (String target : List.of(created.getId(), dev.corral.common.IdKind.VAULT.next())) {
      var tooMany =
          org.assertj.core.api.Assertions.catchThrowableOfType(
              io.grpc.StatusRuntimeException.class,
              () ->
                  vault.updateVault(
                      dev.corral.proto.v1.UpdateVaultRequest.newBuilder()
                          .setVaultId(target)
                          .setMetadata(seventeen)
                          .build()));
      assertThat(tooMany.getStatus().getCode()).isEqualTo(io.grpc.Status.Code.INVALID_ARGUMENT);
      assertThat(tooMany.getStatus().getDescription()).startsWith("metadata.entries");
    }

    // And deleting the vault deletes its credentials, not others
    vault.deleteVault(
        dev.corral.proto.v1.DeleteVaultRequest.newBuilder().setVaultId(created.getId()).build());
    var gone =
        org.assertj.core.api.Assertions.catchThrowableOfType(
            io.grpc.StatusRuntimeException.class,
            () ->
                vault.getCredential(
                    dev.corral.proto.v1.GetCredentialRequest.newBuilder()
                        .setCredentialId(inside.getId())
                        .build()));
    assertThat(gone.getStatus().getCode()).isEqualTo(io.grpc.Status.Code.NOT_FOUND);
    assertThat(
            vault
                .getCredential(
                    dev.corral.proto.v1.GetCredentialRequest.newBuilder()
                        .setCredentialId(outside.getId())
                        .build())
                .getCredential()
                .getName())
        .isEqualTo("outside");
  }

  private dev.corral.proto.v1.Vault archiveVault(String vaultId) {
    return vault
        .archiveVault(
            dev.corral.proto.v1.ArchiveVaultRequest.newBuilder().setVaultId(vaultId).build())
        .getVault();
  }

  @Test
  void agentsAndSessionsMayNameOnlyCredentialsOfTheirTenantBoundToWhatTheyCall() {
    // Given a credential for one MCP server and one for github.com
    String url = "https://mcp.example.com/bound-" + UUID.randomUUID();
    Credential header = create(staticHeader(url, "Bearer x"));
    Credential github = create(githubBasic("github", "").toBuilder().clearVaultId().build());
    String unknown = "cred_00000000000000000000000000";
    var other =
        dev.corral.proto.v1.AgentServiceGrpc.newBlockingStub(
            dev.corral.testing.TestCredentials.memberOfNewTenant(channel, "borrower"));

    // Then an agent may name the credential for its own server
    agentsOfVaults.createAgent(agentCalling(url, header.getId()));
    // But not for another server, nor a credential that does not exist, nor another tenant's
    assertInvalid(
        () ->
            agentsOfVaults.createAgent(
                agentCalling("https://elsewhere.example/mcp", header.getId())),
        "mcp_servers[0].credential_id");
    assertStatus(
        () -> agentsOfVaults.createAgent(agentCalling(url, unknown)), Status.Code.NOT_FOUND);
    assertStatus(() -> other.createAgent(agentCalling(url, header.getId())), Status.Code.NOT_FOUND);
    // And an update that would name one is refused and makes no version
    var agent = agentsOfVaults.createAgent(agentCalling(url, "")).getAgent();
    assertStatus(
        () ->
            agentsOfVaults.updateAgent(
                dev.corral.proto.v1.UpdateAgentRequest.newBuilder()
                    .setAgentId(agent.getId())
                    .setMcpServers(
                        dev.corral.proto.v1.McpServerList.newBuilder()
                            .addMcpServers(agentCalling(url, unknown).getMcpServers(0)))
                    .build()),
        Status.Code.NOT_FOUND);
    assertThat(
            agentsOfVaults
                .getAgent(
                    dev.corral.proto.v1.GetAgentRequest.newBuilder()
                        .setAgentId(agent.getId())
                        .build())
                .getAgent()
                .getVersion())
        .isEqualTo(agent.getVersion());

    // And an update's list is checked before any credential is looked up
    dev.corral.proto.v1.McpServerList.Builder many = dev.corral.proto.v1.McpServerList.newBuilder();
    for (int i = 0; i < 25; i++) {
      many.addMcpServers(agentCalling(url, unknown).getMcpServers(0).toBuilder().setName("s" + i));
    }
    assertInvalid(
        () ->
            agentsOfVaults.updateAgent(
                dev.corral.proto.v1.UpdateAgentRequest.newBuilder()
                    .setAgentId(agent.getId())
                    .setMcpServers(many)
                    .build()),
        "mcp_servers");
    // And a credential the agent already names is not looked up again: deleted since, the agent's
    // other fields still change with the same list sent back
    Credential doomed = create(staticHeader(url, "Bearer y"));
    var naming = agentsOfVaults.createAgent(agentCalling(url, doomed.getId())).getAgent();
    vault.deleteCredential(
        DeleteCredentialRequest.newBuilder().setCredentialId(doomed.getId()).build());
    var renamed =
        agentsOfVaults
            .updateAgent(
                dev.corral.proto.v1.UpdateAgentRequest.newBuilder()
                    .setAgentId(naming.getId())
                    .setName("renamed")
                    .setMcpServers(
                        dev.corral.proto.v1.McpServerList.newBuilder()
                            .addAllMcpServers(naming.getMcpServersList()))
                    .build())
            .getAgent();
    assertThat(renamed.getName()).isEqualTo("renamed");

    // And a session's repository may name only a credential bound to its host
    var withRepository =
        dev.corral.proto.v1.CreateSessionRequest.newBuilder()
            .setAgentId(agent.getId())
            .addResources(repository(github.getId()))
            .build();
    var session = sessionsOfVaults.createSession(withRepository).getSession();
    assertInvalid(
        () ->
            sessionsOfVaults.createSession(
                withRepository.toBuilder().setResources(0, repository(header.getId())).build()),
        "resources[0].git_repository.credential_id");
    // nor an MCP server's credential, even one bound to the repository's very URL
    Credential mcpAtTheRepository = create(staticHeader("https://github.com/acme/app.git", "x"));
    assertInvalid(
        () ->
            sessionsOfVaults.createSession(
                withRepository.toBuilder()
                    .setResources(0, repository(mcpAtTheRepository.getId()))
                    .build()),
        "resources[0].git_repository.credential_id");
    assertStatus(
        () ->
            sessionsOfVaults.addSessionResource(
                dev.corral.proto.v1.AddSessionResourceRequest.newBuilder()
                    .setSessionId(session.getId())
                    .setResource(
                        repository(unknown).toBuilder()
                            .setGitRepository(
                                repository(unknown).getGitRepository().toBuilder()
                                    .setMountPath("other")))
                    .build()),
        Status.Code.NOT_FOUND);
  }

  private static dev.corral.proto.v1.CreateAgentRequest agentCalling(
      String url, String credentialId) {
    return dev.corral.proto.v1.CreateAgentRequest.newBuilder()
        .setName("mcp")
        .setModel("claude-test")
        .addMcpServers(
            dev.corral.proto.v1.McpServer.newBuilder()
                .setName("tools")
                .setUrl(url)
                .setCredentialId(credentialId))
        .addTools(
            dev.corral.proto.v1.Tool.newBuilder()
                .setMcpToolset(
                    dev.corral.proto.v1.McpToolset.newBuilder().setMcpServerName("tools")))
        .build();
  }

  private static dev.corral.proto.v1.SessionResource repository(String credentialId) {
    return dev.corral.proto.v1.SessionResource.newBuilder()
        .setGitRepository(
            dev.corral.proto.v1.GitRepository.newBuilder()
                .setUrl("https://github.com/acme/app.git")
                .setCredentialId(credentialId))
        .build();
  }

  private static void assertStatus(Runnable call, Status.Code code) {
    assertThatThrownBy(call::run)
        .isInstanceOfSatisfying(
            StatusRuntimeException.class, e -> assertThat(e.getStatus().getCode()).isEqualTo(code));
  }
}
