package dev.corral.identity;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

import dev.corral.proto.v1.ApiKey;
import dev.corral.proto.v1.ApiKeyServiceGrpc;
import dev.corral.proto.v1.CreateApiKeyRequest;
import dev.corral.proto.v1.CreateApiKeyResponse;
import dev.corral.proto.v1.CreateTenantRequest;
import dev.corral.proto.v1.CredentialKind;
import dev.corral.proto.v1.DisableTenantRequest;
import dev.corral.proto.v1.EnableTenantRequest;
import dev.corral.proto.v1.GetApiKeyRequest;
import dev.corral.proto.v1.ListApiKeysRequest;
import dev.corral.proto.v1.RevokeApiKeyRequest;
import dev.corral.proto.v1.Role;
import dev.corral.proto.v1.Session;
import dev.corral.proto.v1.StreamEventsRequest;
import dev.corral.proto.v1.TenantServiceGrpc;
import dev.corral.proto.v1.WhoAmIRequest;
import dev.corral.proto.v1.WhoAmIResponse;
import dev.corral.testing.Fixtures;
import dev.corral.testing.StreamRecorder;
import dev.corral.testing.TestCredentials;
import io.grpc.Channel;
import io.grpc.ClientInterceptors;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.quarkus.test.junit.QuarkusTest;
import io.vertx.mutiny.sqlclient.Pool;
import io.vertx.mutiny.sqlclient.Row;
import jakarta.inject.Inject;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.HexFormat;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

@QuarkusTest
class ApiKeysTest {

  @Inject Pool pool;

  @Inject Authenticator authenticator;

  private ManagedChannel channel;

  @BeforeEach
  void open() {
    channel = ManagedChannelBuilder.forAddress("localhost", 18081).usePlaintext().build();
  }

  @AfterEach
  void close() {
    channel.shutdownNow();
  }

  @Test
  void aNewKeyIsShownOnceAndOnlyItsHashIsStored() {
    // When
    CreateApiKeyResponse created = admin().createApiKey(request("ci", Role.ROLE_MEMBER, ""));

    // Then
    String key = created.getKey();
    assertThat(key).startsWith("crl_").hasSize(56);
    ApiKey record = created.getApiKey();
    assertThat(record.getPrefix()).isEqualTo(key.substring(0, 12));
    assertThat(record.getTenantId()).isEqualTo("default");
    ApiKey read =
        admin()
            .getApiKey(GetApiKeyRequest.newBuilder().setApiKeyId(record.getId()).build())
            .getApiKey();
    assertThat(new String(read.toByteArray(), StandardCharsets.ISO_8859_1)).doesNotContain(key);
    Row row =
        pool.preparedQuery("SELECT * FROM api_keys WHERE id = $1")
            .execute(io.vertx.mutiny.sqlclient.Tuple.of(record.getId()))
            .await()
            .atMost(Duration.ofSeconds(5))
            .iterator()
            .next();
    for (int column = 0; column < row.size(); column++) {
      Object value = row.getValue(column);
      String text =
          value instanceof io.vertx.core.buffer.Buffer buffer
              ? new String(buffer.getBytes(), StandardCharsets.ISO_8859_1)
              : String.valueOf(value);
      assertThat(text).as(row.getColumnName(column)).doesNotContain(key.substring(4));
    }
    assertThat(HexFormat.of().formatHex(row.getBuffer("secret_hash").getBytes()))
        .isEqualTo(HexFormat.of().formatHex(ApiKeySecret.sha256(key)));
  }

  @Test
  void aKeyActsWithItsRoleInItsTenantAndRecordsItsUse() {
    // Given
    CreateApiKeyResponse created = admin().createApiKey(request("reader", Role.ROLE_VIEWER, ""));

    // When
    WhoAmIResponse me =
        TenantServiceGrpc.newBlockingStub(as(created.getKey()))
            .whoAmI(WhoAmIRequest.getDefaultInstance());

    // Then
    assertThat(me.getTenantId()).isEqualTo("default");
    assertThat(me.getRole()).isEqualTo(Role.ROLE_VIEWER);
    assertThat(me.getCredentialKind()).isEqualTo(CredentialKind.CREDENTIAL_KIND_API_KEY);
    assertThat(me.getApiKeyId()).isEqualTo(created.getApiKey().getId());
    assertThat(me.getOperator()).isFalse();
    assertThat(
            admin()
                .getApiKey(
                    GetApiKeyRequest.newBuilder().setApiKeyId(created.getApiKey().getId()).build())
                .getApiKey()
                .hasLastUsedAt())
        .isTrue();
  }

  @Test
  void aRevokedKeyIsRefusedAtOnceAndListedOnlyOnRequest() {
    // Given
    CreateApiKeyResponse created = admin().createApiKey(request("temp", Role.ROLE_MEMBER, ""));
    TenantServiceGrpc.TenantServiceBlockingStub asKey =
        TenantServiceGrpc.newBlockingStub(as(created.getKey()));
    asKey.whoAmI(WhoAmIRequest.getDefaultInstance());

    // When
    ApiKey revoked =
        admin()
            .revokeApiKey(
                RevokeApiKeyRequest.newBuilder().setApiKeyId(created.getApiKey().getId()).build())
            .getApiKey();

    // Then
    assertThat(revoked.hasRevokedAt()).isTrue();
    assertThatThrownBy(() -> asKey.whoAmI(WhoAmIRequest.getDefaultInstance()))
        .isInstanceOfSatisfying(
            StatusRuntimeException.class,
            e -> {
              assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.UNAUTHENTICATED);
              assertThat(e.getStatus().getDescription()).contains("unknown or revoked");
            });
    assertThat(
            admin()
                .revokeApiKey(
                    RevokeApiKeyRequest.newBuilder()
                        .setApiKeyId(created.getApiKey().getId())
                        .build())
                .getApiKey())
        .isEqualTo(revoked);
    assertThat(
            admin()
                .listApiKeys(ListApiKeysRequest.newBuilder().setPageSize(100).build())
                .getApiKeysList())
        .extracting(ApiKey::getId)
        .doesNotContain(revoked.getId());
    assertThat(
            admin()
                .listApiKeys(
                    ListApiKeysRequest.newBuilder()
                        .setPageSize(100)
                        .setIncludeRevoked(true)
                        .build())
                .getApiKeysList())
        .extracting(ApiKey::getId)
        .contains(revoked.getId());
  }

  @Test
  void aLongCommandOfAKeyRevokedMeanwhileIsStopped() throws Exception {
    // Given a member key running a long command in a sandbox of its own
    CreateApiKeyResponse created = admin().createApiKey(request("runner", Role.ROLE_MEMBER, ""));
    Channel asKey = as(created.getKey());
    dev.corral.proto.v1.Sandbox sandbox =
        dev.corral.proto.v1.SandboxServiceGrpc.newBlockingStub(asKey)
            .provision(
                dev.corral.proto.v1.ProvisionRequest.newBuilder()
                    .setSessionId(
                        Fixtures.createSession(
                                dev.corral.proto.v1.AgentServiceGrpc.newBlockingStub(asKey),
                                dev.corral.proto.v1.SessionServiceGrpc.newBlockingStub(asKey))
                            .getId())
                    .build())
            .getSandbox();
    java.util.concurrent.CompletableFuture<Status> ended =
        new java.util.concurrent.CompletableFuture<>();
    dev.corral.proto.v1.SandboxServiceGrpc.newStub(asKey)
        .execute(
            dev.corral.proto.v1.ExecuteRequest.newBuilder()
                .setSandboxId(sandbox.getId())
                .setName("bash")
                .setInputJson("{\"command\":\"sleep 120.731\",\"timeout_ms\":600000}")
                .build(),
            new io.grpc.stub.StreamObserver<>() {
              @Override
              public void onNext(dev.corral.proto.v1.ExecuteResponse value) {}

              @Override
              public void onError(Throwable t) {
                ended.complete(Status.fromThrowable(t));
              }

              @Override
              public void onCompleted() {
                ended.complete(Status.OK);
              }
            });

    // When the key is revoked while the command runs
    // (once it runs: a call refused before it starts proves nothing)
    await().atMost(Duration.ofSeconds(10)).until(() -> runsOnTheHost("sleep 120.731"));
    admin()
        .revokeApiKey(
            RevokeApiKeyRequest.newBuilder().setApiKeyId(created.getApiKey().getId()).build());

    // Then the call ends, refused, within a few re-check intervals rather than in two minutes
    Status status = ended.get(15, java.util.concurrent.TimeUnit.SECONDS);
    assertThat(status.getCode()).isEqualTo(Status.Code.UNAUTHENTICATED);
    // and the command with it
    await().atMost(Duration.ofSeconds(10)).until(() -> !runsOnTheHost("sleep 120.731"));
  }

  /** A check of a key under way, held at the key's row until {@link #release}. */
  private record HeldCheck(
      io.vertx.mutiny.sqlclient.SqlConnection holder,
      io.vertx.mutiny.sqlclient.Transaction lock,
      java.util.concurrent.CompletableFuture<Principal> answer) {
    void release() {
      lock.rollback().await().atMost(Duration.ofSeconds(10));
      holder.close().await().atMost(Duration.ofSeconds(10));
    }
  }

  private HeldCheck checkHeldAtItsRow(String apiKeyId, String authorization) {
    io.vertx.mutiny.sqlclient.SqlConnection holder =
        pool.getConnection().await().atMost(Duration.ofSeconds(10));
    io.vertx.mutiny.sqlclient.Transaction lock =
        holder.begin().await().atMost(Duration.ofSeconds(10));
    holder
        .preparedQuery("SELECT 1 FROM api_keys WHERE id = $1 FOR UPDATE")
        .execute(io.vertx.mutiny.sqlclient.Tuple.of(apiKeyId))
        .await()
        .atMost(Duration.ofSeconds(10));
    return new HeldCheck(
        holder, lock, authenticator.authenticate(authorization).subscribeAsCompletionStage());
  }

  @Test
  void aCheckUnderWayWhenItsKeyIsRevokedHereIsNotCached() {
    // Given a key whose check is under way, held at its row
    CreateApiKeyResponse created = admin().createApiKey(request("racing", Role.ROLE_MEMBER, ""));
    String authorization = "Bearer " + created.getKey();
    HeldCheck check = checkHeldAtItsRow(created.getApiKey().getId(), authorization);

    // When this replica forgets the key (as a revoke here does) before that check answers
    authenticator.forgetKey(created.getApiKey().getId());
    check.release();

    // Then the check answers (it read the key before the revoke), but its answer is not cached
    assertThat(check.answer().join().apiKeyId()).isEqualTo(created.getApiKey().getId());
    assertThat(authenticator.cached(authorization)).isNull();
  }

  @Test
  void revokingOneKeyLeavesTheChecksOfOthersCacheable() {
    // Given another key's check under way, held at its row
    CreateApiKeyResponse other = admin().createApiKey(request("other", Role.ROLE_MEMBER, ""));
    String authorization = "Bearer " + other.getKey();
    HeldCheck check = checkHeldAtItsRow(other.getApiKey().getId(), authorization);

    // When keys are made and revoked meanwhile, in a loop (as a tenant's admin may)
    for (int i = 0; i < 5; i++) {
      CreateApiKeyResponse made = admin().createApiKey(request("made", Role.ROLE_MEMBER, ""));
      admin()
          .revokeApiKey(
              RevokeApiKeyRequest.newBuilder().setApiKeyId(made.getApiKey().getId()).build());
    }
    check.release();

    // Then the other key's check is cached as usual
    assertThat(check.answer().join().apiKeyId()).isEqualTo(other.getApiKey().getId());
    assertThat(authenticator.cached(authorization)).isNotNull();
  }

  @Test
  void revokingARevokedKeyAgainForgetsNothing() {
    // Given a key revoked a moment ago, and another key's check under way, held at its row
    CreateApiKeyResponse gone = admin().createApiKey(request("gone", Role.ROLE_MEMBER, ""));
    RevokeApiKeyRequest revoke =
        RevokeApiKeyRequest.newBuilder().setApiKeyId(gone.getApiKey().getId()).build();
    ApiKey revoked = admin().revokeApiKey(revoke).getApiKey();
    CreateApiKeyResponse other = admin().createApiKey(request("other", Role.ROLE_MEMBER, ""));
    String authorization = "Bearer " + other.getKey();
    HeldCheck check = checkHeldAtItsRow(other.getApiKey().getId(), authorization);

    // When the revoked key is revoked again, in a loop (as a tenant's admin may)
    for (int i = 0; i < 5; i++) {
      assertThat(admin().revokeApiKey(revoke).getApiKey()).isEqualTo(revoked);
    }
    check.release();

    // Then the other key's check is cached as usual: nothing was forgotten
    assertThat(check.answer().join().apiKeyId()).isEqualTo(other.getApiKey().getId());
    assertThat(authenticator.cached(authorization)).isNotNull();
  }

  @Test
  void aStreamOpenWhenItsKeyIsRevokedEndsUnauthenticated() {
    // Given a viewer following a session
    Session session = Fixtures.createSession(agentsAsAdmin(), sessionsAsAdmin());
    CreateApiKeyResponse viewer = admin().createApiKey(request("watcher", Role.ROLE_VIEWER, ""));
    StreamRecorder stream =
        StreamRecorder.follow(
            as(viewer.getKey()),
            StreamEventsRequest.newBuilder().setSessionId(session.getId()).build());
    sessionsAsAdmin().emitEvent(Fixtures.emit(session.getId(), "one"));
    await().atMost(Duration.ofSeconds(5)).until(() -> stream.events().size() == 1);

    // When
    admin()
        .revokeApiKey(
            RevokeApiKeyRequest.newBuilder().setApiKeyId(viewer.getApiKey().getId()).build());

    // Then
    await()
        .atMost(Duration.ofSeconds(5))
        .untilAsserted(
            () -> {
              assertThat(stream.closedWith()).isNotNull();
              assertThat(stream.closedWith().getCode()).isEqualTo(Status.Code.UNAUTHENTICATED);
            });
    sessionsAsAdmin().emitEvent(Fixtures.emit(session.getId(), "two"));
    assertThat(stream.events()).hasSize(1);
  }

  @Test
  void aDisabledTenantIsRefusedEverywhereAndItsStreamsEndUntilItIsEnabled() {
    // Given a tenant with a member following one of its sessions
    String tenant = "tenant-" + System.nanoTime();
    TenantServiceGrpc.newBlockingStub(channelAsAdmin())
        .createTenant(CreateTenantRequest.newBuilder().setTenantId(tenant).build());
    String key = admin().createApiKey(request("member", Role.ROLE_MEMBER, tenant)).getKey();
    Session session =
        Fixtures.createSession(
            dev.corral.proto.v1.AgentServiceGrpc.newBlockingStub(as(key)),
            dev.corral.proto.v1.SessionServiceGrpc.newBlockingStub(as(key)));
    StreamRecorder stream =
        StreamRecorder.follow(
            as(key), StreamEventsRequest.newBuilder().setSessionId(session.getId()).build());

    // When
    TenantServiceGrpc.newBlockingStub(channelAsAdmin())
        .disableTenant(DisableTenantRequest.newBuilder().setTenantId(tenant).build());

    // Then
    await()
        .atMost(Duration.ofSeconds(5))
        .untilAsserted(
            () ->
                assertThat(stream.closedWith())
                    .isNotNull()
                    .extracting(Status::getCode)
                    .isEqualTo(Status.Code.PERMISSION_DENIED));
    assertThatThrownBy(
            () ->
                TenantServiceGrpc.newBlockingStub(as(key))
                    .whoAmI(WhoAmIRequest.getDefaultInstance()))
        .isInstanceOfSatisfying(
            StatusRuntimeException.class,
            e -> {
              assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.PERMISSION_DENIED);
              assertThat(e.getStatus().getDescription()).contains("disabled");
            });
    assertThatThrownBy(() -> admin().createApiKey(request("more", Role.ROLE_VIEWER, tenant)))
        .isInstanceOfSatisfying(
            StatusRuntimeException.class,
            e -> assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.FAILED_PRECONDITION));

    // And when it is enabled again
    TenantServiceGrpc.newBlockingStub(channelAsAdmin())
        .enableTenant(EnableTenantRequest.newBuilder().setTenantId(tenant).build());
    assertThat(
            TenantServiceGrpc.newBlockingStub(as(key))
                .whoAmI(WhoAmIRequest.getDefaultInstance())
                .getTenantId())
        .isEqualTo(tenant);
  }

  @Test
  void theOperatorTenantCannotBeDisabled() {
    assertThatThrownBy(
            () ->
                TenantServiceGrpc.newBlockingStub(channelAsAdmin())
                    .disableTenant(
                        DisableTenantRequest.newBuilder().setTenantId("default").build()))
        .isInstanceOfSatisfying(
            StatusRuntimeException.class,
            e -> assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.FAILED_PRECONDITION));
  }

  @Test
  void badRequestsNameTheFieldAndMakeNoKey() {
    int before =
        admin()
            .listApiKeys(ListApiKeysRequest.newBuilder().setPageSize(100).build())
            .getApiKeysCount();
    assertInvalid(() -> admin().createApiKey(request("", Role.ROLE_VIEWER, "")), "name");
    assertInvalid(
        () -> admin().createApiKey(request("x".repeat(129), Role.ROLE_VIEWER, "")), "name");
    assertInvalid(() -> admin().createApiKey(request("bell\u0007", Role.ROLE_VIEWER, "")), "name");
    assertInvalid(() -> admin().createApiKey(request("ok", Role.ROLE_UNSPECIFIED, "")), "role");
    assertInvalid(() -> admin().createApiKey(request("ok", Role.ROLE_VIEWER, "../x")), "tenant_id");
    assertInvalid(
        () -> admin().revokeApiKey(RevokeApiKeyRequest.newBuilder().setApiKeyId("key_x").build()),
        "api_key_id");
    assertInvalid(
        () -> admin().listApiKeys(ListApiKeysRequest.newBuilder().setPageSize(101).build()),
        "page_size");
    assertThatThrownBy(
            () ->
                admin()
                    .getApiKey(
                        GetApiKeyRequest.newBuilder()
                            .setApiKeyId(dev.corral.common.IdKind.API_KEY.next())
                            .build()))
        .isInstanceOfSatisfying(
            StatusRuntimeException.class,
            e -> assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.NOT_FOUND));
    assertThat(
            admin()
                .listApiKeys(ListApiKeysRequest.newBuilder().setPageSize(100).build())
                .getApiKeysCount())
        .isEqualTo(before);
  }

  @Test
  void anOperatorListsAndRevokesAnotherTenantsKeysAndItsAdminCannotReachBack() {
    // Given a key an operator made for another tenant, whose own admin also has one
    String tenant = "keys-" + System.nanoTime();
    CreateApiKeyResponse made = admin().createApiKey(request("made", Role.ROLE_MEMBER, tenant));
    String tenantAdmin =
        admin().createApiKey(request("their admin", Role.ROLE_ADMIN, tenant)).getKey();

    // When the operator lists that tenant's keys and revokes the one it made
    List<String> listed =
        admin()
            .listApiKeys(ListApiKeysRequest.newBuilder().setTenantId(tenant).build())
            .getApiKeysList()
            .stream()
            .map(ApiKey::getId)
            .toList();
    ApiKey read =
        admin()
            .getApiKey(
                GetApiKeyRequest.newBuilder()
                    .setApiKeyId(made.getApiKey().getId())
                    .setTenantId(tenant)
                    .build())
            .getApiKey();
    ApiKey revoked =
        admin()
            .revokeApiKey(
                RevokeApiKeyRequest.newBuilder()
                    .setApiKeyId(made.getApiKey().getId())
                    .setTenantId(tenant)
                    .build())
            .getApiKey();

    // Then it saw and stopped it, and the key no longer gets in
    assertThat(listed).contains(made.getApiKey().getId());
    assertThat(read.getTenantId()).isEqualTo(tenant);
    assertThat(revoked.hasRevokedAt()).isTrue();
    assertThatThrownBy(
            () ->
                TenantServiceGrpc.newBlockingStub(as(made.getKey()))
                    .whoAmI(WhoAmIRequest.getDefaultInstance()))
        .isInstanceOfSatisfying(
            StatusRuntimeException.class,
            e -> assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.UNAUTHENTICATED));
    // And that tenant's admin, not an operator, cannot name the operator tenant's keys
    ApiKeyServiceGrpc.ApiKeyServiceBlockingStub theirs =
        ApiKeyServiceGrpc.newBlockingStub(as(tenantAdmin));
    for (Runnable call :
        List.<Runnable>of(
            () ->
                theirs.listApiKeys(ListApiKeysRequest.newBuilder().setTenantId("default").build()),
            () ->
                theirs.revokeApiKey(
                    RevokeApiKeyRequest.newBuilder()
                        .setApiKeyId(read.getId())
                        .setTenantId("default")
                        .build()),
            () ->
                theirs.getApiKey(
                    GetApiKeyRequest.newBuilder()
                        .setApiKeyId(read.getId())
                        .setTenantId("default")
                        .build()))) {
      assertThatThrownBy(call::run)
          .isInstanceOfSatisfying(
              StatusRuntimeException.class,
              e -> assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.PERMISSION_DENIED));
    }
  }

  private static void assertInvalid(Runnable call, String field) {
    assertThatThrownBy(call::run)
        .isInstanceOfSatisfying(
            StatusRuntimeException.class,
            e -> {
              assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT);
              assertThat(e.getStatus().getDescription()).isNotBlank();
              var detail = io.grpc.protobuf.StatusProto.fromThrowable(e);
              assertThat(detail.getDetailsList()).isNotEmpty();
              assertThat(detail.getDetails(0).toString()).contains(field);
            });
  }

  private static CreateApiKeyRequest request(String name, Role role, String tenant) {
    return CreateApiKeyRequest.newBuilder().setName(name).setRole(role).setTenantId(tenant).build();
  }

  private Channel as(String key) {
    return ClientInterceptors.intercept(channel, TestCredentials.bearer(key));
  }

  private Channel channelAsAdmin() {
    return as(TestCredentials.ADMIN_KEY);
  }

  private ApiKeyServiceGrpc.ApiKeyServiceBlockingStub admin() {
    return ApiKeyServiceGrpc.newBlockingStub(channelAsAdmin());
  }

  private dev.corral.proto.v1.AgentServiceGrpc.AgentServiceBlockingStub agentsAsAdmin() {
    return dev.corral.proto.v1.AgentServiceGrpc.newBlockingStub(channelAsAdmin());
  }

  private dev.corral.proto.v1.SessionServiceGrpc.SessionServiceBlockingStub sessionsAsAdmin() {
    return dev.corral.proto.v1.SessionServiceGrpc.newBlockingStub(channelAsAdmin());
  }

  /** Whether a process whose command line ends with {@code command} runs on this machine. */
  private static boolean runsOnTheHost(String command) {
    return ProcessHandle.allProcesses()
        .anyMatch(process -> process.info().commandLine().orElse("").endsWith(command));
  }
}
