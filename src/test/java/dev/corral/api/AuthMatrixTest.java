package dev.corral.api;

import static org.assertj.core.api.Assertions.assertThat;

import com.google.protobuf.Message;
import dev.corral.identity.Role;
import dev.corral.proto.v1.AgentServiceGrpc;
import dev.corral.proto.v1.ApiKeyServiceGrpc;
import dev.corral.proto.v1.ArchiveAgentRequest;
import dev.corral.proto.v1.ArchiveEnvironmentRequest;
import dev.corral.proto.v1.ArchiveSessionRequest;
import dev.corral.proto.v1.CreateAgentRequest;
import dev.corral.proto.v1.CreateApiKeyRequest;
import dev.corral.proto.v1.CreateCredentialRequest;
import dev.corral.proto.v1.CreateEnvironmentRequest;
import dev.corral.proto.v1.CreateSessionRequest;
import dev.corral.proto.v1.CreateTenantRequest;
import dev.corral.proto.v1.DeleteCredentialRequest;
import dev.corral.proto.v1.DeleteSessionRequest;
import dev.corral.proto.v1.DisableTenantRequest;
import dev.corral.proto.v1.EmitEventRequest;
import dev.corral.proto.v1.EnableTenantRequest;
import dev.corral.proto.v1.EnvironmentServiceGrpc;
import dev.corral.proto.v1.ExecuteRequest;
import dev.corral.proto.v1.GetAgentRequest;
import dev.corral.proto.v1.GetApiKeyRequest;
import dev.corral.proto.v1.GetCredentialRequest;
import dev.corral.proto.v1.GetEnvironmentRequest;
import dev.corral.proto.v1.GetEventsRequest;
import dev.corral.proto.v1.GetSandboxRequest;
import dev.corral.proto.v1.GetSessionRequest;
import dev.corral.proto.v1.GetTenantRequest;
import dev.corral.proto.v1.HarnessServiceGrpc;
import dev.corral.proto.v1.ListAgentVersionsRequest;
import dev.corral.proto.v1.ListAgentsRequest;
import dev.corral.proto.v1.ListApiKeysRequest;
import dev.corral.proto.v1.ListCredentialsRequest;
import dev.corral.proto.v1.ListEnvironmentsRequest;
import dev.corral.proto.v1.ListSandboxesRequest;
import dev.corral.proto.v1.ListSessionsRequest;
import dev.corral.proto.v1.ListTenantsRequest;
import dev.corral.proto.v1.ProvisionRequest;
import dev.corral.proto.v1.ReleaseSandboxRequest;
import dev.corral.proto.v1.RevokeApiKeyRequest;
import dev.corral.proto.v1.RewrapCredentialsRequest;
import dev.corral.proto.v1.SandboxServiceGrpc;
import dev.corral.proto.v1.SandboxState;
import dev.corral.proto.v1.SessionServiceGrpc;
import dev.corral.proto.v1.StaticHeaderAuth;
import dev.corral.proto.v1.StreamEventsRequest;
import dev.corral.proto.v1.TenantServiceGrpc;
import dev.corral.proto.v1.UpdateAgentRequest;
import dev.corral.proto.v1.UpdateCredentialRequest;
import dev.corral.proto.v1.UpdateEnvironmentRequest;
import dev.corral.proto.v1.VaultServiceGrpc;
import dev.corral.proto.v1.WakeRequest;
import dev.corral.proto.v1.WhoAmIRequest;
import dev.corral.testing.Calls;
import dev.corral.testing.Fixtures;
import dev.corral.testing.OidcTestProfile;
import dev.corral.testing.TestCredentials;
import dev.corral.testing.Tokens;
import io.grpc.ClientInterceptors;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.MethodDescriptor;
import io.grpc.Status;
import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.TestProfile;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.Function;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Every RPC against every kind of caller: its own tenant, another tenant, no credential, each kind
 * of bad credential and a role too low, with API keys and with OIDC tokens. Refused calls must
 * change nothing, and another tenant's ids must read exactly like ids that do not exist.
 */
@QuarkusTest
@TestProfile(OidcTestProfile.class)
class AuthMatrixTest {

  private static ManagedChannel channel;
  private static Tenant acme;
  private static Tenant globex;

  /** A tenant's resources, and credentials of each role. */
  record Tenant(
      String id,
      Map<Role, String> keys,
      Map<Role, String> tokens,
      String agent,
      String environment,
      String session,
      String sandbox,
      String apiKey,
      String credential,
      String resource,
      String vault) {}

  /** What an RPC does with the ids it is given. */
  enum Kind {
    /** Makes something new in the caller's tenant. */
    CREATE,
    /** Reads or changes one resource named by id. */
    BY_ID,
    /** Lists the caller's tenant's resources. */
    LIST,
    /** About the caller itself. */
    SELF,
    /** Manages tenants: operators only. */
    OPERATOR
  }

  record Rpc(
      MethodDescriptor<Message, Message> method,
      Role role,
      Kind kind,
      Function<Tenant, Message> request) {

    String name() {
      return method.getFullMethodName();
    }
  }

  @BeforeAll
  static void tenants() {
    channel = ManagedChannelBuilder.forAddress("localhost", 18081).usePlaintext().build();
    acme = tenant("acme-" + System.nanoTime());
    globex = tenant("globex-" + System.nanoTime());
  }

  @AfterAll
  static void close() {
    channel.shutdownNow();
  }

  @Test
  void everyCorralRpcIsInTheMatrix() {
    Set<String> covered = new java.util.HashSet<>();
    rpcs().forEach(rpc -> covered.add(rpc.name()));
    assertThat(covered).containsExactlyInAnyOrderElementsOf(MethodRoles.all().keySet());
  }

  @Test
  void everyRpcRefusesACallWithoutACredentialAndChangesNothing() {
    Map<String, Object> before = state(acme);
    for (Rpc rpc : rpcs()) {
      Calls.Outcome outcome = Calls.call(channel, rpc.method(), rpc.request().apply(acme), null);
      assertThat(outcome.code()).as(rpc.name()).isEqualTo(Status.Code.UNAUTHENTICATED);
      assertThat(outcome.message()).as(rpc.name()).contains("credential");
    }
    assertThat(state(acme)).isEqualTo(before);
  }

  @Test
  void everyRpcRefusesEveryKindOfBadCredentialAndChangesNothing() {
    Map<String, String> bad = new LinkedHashMap<>();
    bad.put("not bearer", "Basic dXNlcjpwYXNz");
    bad.put("empty bearer", "Bearer ");
    bad.put("malformed key", "Bearer crl_short");
    bad.put("unknown key", "Bearer crl_" + "a".repeat(52));
    bad.put("malformed token", "Bearer abc.def");
    bad.put("not a JWT", "Bearer hello");
    bad.put("expired", "Bearer " + Tokens.expired(acme.id()));
    bad.put("not yet valid", "Bearer " + Tokens.notYetValid(acme.id()));
    bad.put("issued in the future", "Bearer " + Tokens.issuedInTheFuture(acme.id()));
    bad.put("wrong issuer", "Bearer " + Tokens.wrongIssuer(acme.id()));
    bad.put("wrong audience", "Bearer " + Tokens.wrongAudience(acme.id()));
    bad.put("alg none", "Bearer " + Tokens.algNone(acme.id()));
    bad.put("HS256 with the public key", "Bearer " + Tokens.symmetric(acme.id()));
    bad.put("unknown kid", "Bearer " + Tokens.unknownKid(acme.id()));
    bad.put("bad signature", "Bearer " + Tokens.badSignature(acme.id()));
    bad.put("no tenant claim", "Bearer " + Tokens.of("alice", null, "admin"));
    bad.put("invalid tenant claim", "Bearer " + Tokens.of("alice", "../etc", "admin"));
    Map<String, Object> before = state(acme);
    for (var credential : bad.entrySet()) {
      for (Rpc rpc : rpcs()) {
        Calls.Outcome outcome =
            Calls.call(channel, rpc.method(), rpc.request().apply(acme), credential.getValue());
        assertThat(outcome.code())
            .as(credential.getKey() + " on " + rpc.name() + ": " + outcome)
            .isEqualTo(Status.Code.UNAUTHENTICATED);
      }
    }
    assertThat(state(acme)).isEqualTo(before);
  }

  @Test
  void aTokenWithinTheClockSkewIsTakenAlikeByAFreshCheckAndACachedOne() {
    // Given a token that expired 5 s ago (the server allows 30 s of clock skew)
    String token = "Bearer " + Tokens.expiredSecondsAgo(acme.id(), 5);

    // When it is used twice in a row (the second check comes from the cache)
    Calls.Outcome first =
        Calls.call(
            channel,
            dev.corral.proto.v1.AgentServiceGrpc.getListAgentsMethod(),
            dev.corral.proto.v1.ListAgentsRequest.getDefaultInstance(),
            token);
    Calls.Outcome second =
        Calls.call(
            channel,
            dev.corral.proto.v1.AgentServiceGrpc.getListAgentsMethod(),
            dev.corral.proto.v1.ListAgentsRequest.getDefaultInstance(),
            token);

    // Then both take it: a cached check ends a token no sooner than a fresh one
    assertThat(first.code()).as(first.toString()).isEqualTo(Status.Code.OK);
    assertThat(second.code()).as(second.toString()).isEqualTo(Status.Code.OK);
  }

  @Test
  void aRoleTooLowIsPermissionDeniedAndChangesNothing() {
    Map<String, Object> before = state(acme);
    for (Rpc rpc : rpcs()) {
      for (Role role : Role.values()) {
        if (role.covers(rpc.role())) {
          continue;
        }
        for (String credential : List.of(acme.keys().get(role), acme.tokens().get(role))) {
          Calls.Outcome outcome =
              Calls.call(channel, rpc.method(), rpc.request().apply(acme), "Bearer " + credential);
          assertThat(outcome.code())
              .as(role + " on " + rpc.name() + ": " + outcome)
              .isEqualTo(Status.Code.PERMISSION_DENIED);
        }
      }
    }
    assertThat(state(acme)).isEqualTo(before);
  }

  @Test
  void aTokenWithoutACorralRoleIsPermissionDenied() {
    String token = Tokens.of("carol", acme.id(), "auditor");
    Calls.Outcome outcome =
        Calls.call(
            channel,
            raw(TenantServiceGrpc.getWhoAmIMethod()),
            WhoAmIRequest.getDefaultInstance(),
            "Bearer " + token);
    assertThat(outcome.code()).isEqualTo(Status.Code.PERMISSION_DENIED);
    assertThat(outcome.message()).contains("no corral role");
  }

  @Test
  void anotherTenantsIdsReadExactlyLikeIdsThatDoNotExistAndChangeNothing() {
    Tenant nobody = absentTenant();
    Map<String, Object> before = state(globex);
    for (Rpc rpc : rpcs()) {
      if (rpc.kind() != Kind.BY_ID) {
        continue;
      }
      for (String credential :
          List.of(acme.keys().get(rpc.role()), acme.tokens().get(Role.ADMIN))) {
        Calls.Outcome other =
            Calls.call(channel, rpc.method(), rpc.request().apply(globex), "Bearer " + credential);
        Calls.Outcome absent =
            Calls.call(channel, rpc.method(), rpc.request().apply(nobody), "Bearer " + credential);
        assertThat(other.code()).as(rpc.name() + ": " + other).isEqualTo(Status.Code.NOT_FOUND);
        assertThat(absent.code()).as(rpc.name() + ": " + absent).isEqualTo(Status.Code.NOT_FOUND);
        assertThat(anonymized(other.message(), globex))
            .as(rpc.name())
            .isEqualTo(anonymized(absent.message(), nobody));
      }
    }
    assertThat(state(globex)).isEqualTo(before);
  }

  @Test
  void anIdempotencyKeyUsedInAnotherTenantsSessionRevealsNothing() {
    // Given globex emitted a message with an idempotency key
    var globexMember =
        SessionServiceGrpc.newBlockingStub(
            ClientInterceptors.intercept(
                channel, TestCredentials.bearer(globex.keys().get(Role.MEMBER))));
    globexMember.emitEvent(
        EmitEventRequest.newBuilder()
            .setSessionId(globex.session())
            .setEvent(Fixtures.userMessage("globex secret"))
            .setIdempotencyKey("shared-key")
            .build());
    Map<String, Object> before = state(globex);

    // When acme replays that key against globex's session
    Calls.Outcome outcome =
        Calls.call(
            channel,
            raw(SessionServiceGrpc.getEmitEventMethod()),
            EmitEventRequest.newBuilder()
                .setSessionId(globex.session())
                .setEvent(Fixtures.userMessage("globex secret"))
                .setIdempotencyKey("shared-key")
                .build(),
            "Bearer " + acme.keys().get(Role.MEMBER));

    // Then it is refused as if the session did not exist, and gets no event back
    assertThat(outcome.code()).isEqualTo(Status.Code.NOT_FOUND);
    assertThat(state(globex)).isEqualTo(before);
  }

  @Test
  void theCallersOwnTenantIsServedForEveryRpcItsRoleAllows() {
    for (Rpc rpc : rpcs()) {
      if (rpc.kind() == Kind.OPERATOR) {
        continue;
      }
      for (String credential :
          List.of(acme.keys().get(rpc.role()), acme.tokens().get(rpc.role()))) {
        Tenant target = rpc.kind() == Kind.BY_ID && destructive(rpc) ? throwaway(acme) : acme;
        Calls.Outcome outcome =
            Calls.call(channel, rpc.method(), rpc.request().apply(target), "Bearer " + credential);
        assertThat(outcome.code())
            .as(rpc.name() + ": " + outcome)
            .isNotIn(
                Status.Code.UNAUTHENTICATED,
                Status.Code.PERMISSION_DENIED,
                Status.Code.NOT_FOUND,
                Status.Code.INTERNAL,
                Status.Code.UNKNOWN);
      }
    }
  }

  @Test
  void listsHoldOnlyTheCallersTenant() {
    String token = "Bearer " + acme.keys().get(Role.VIEWER);
    var agents =
        AgentServiceGrpc.newBlockingStub(
                ClientInterceptors.intercept(channel, TestCredentials.bearer(token.substring(7))))
            .listAgents(ListAgentsRequest.newBuilder().setPageSize(100).build());
    assertThat(agents.getAgentsList()).extracting(a -> a.getId()).contains(acme.agent());
    assertThat(agents.getAgentsList()).extracting(a -> a.getId()).doesNotContain(globex.agent());
    var sessions =
        SessionServiceGrpc.newBlockingStub(
                ClientInterceptors.intercept(channel, TestCredentials.bearer(token.substring(7))))
            .listSessions(ListSessionsRequest.newBuilder().setPageSize(100).build());
    assertThat(sessions.getSessionsList()).extracting(s -> s.getId()).contains(acme.session());
    assertThat(sessions.getSessionsList())
        .allSatisfy(session -> assertThat(session.getTenantId()).isEqualTo(acme.id()));
    var sandboxes =
        SandboxServiceGrpc.newBlockingStub(
                ClientInterceptors.intercept(channel, TestCredentials.bearer(token.substring(7))))
            .listSandboxes(ListSandboxesRequest.newBuilder().setPageSize(100).build());
    assertThat(sandboxes.getSandboxesList())
        .allSatisfy(sandbox -> assertThat(sandbox.getTenantId()).isEqualTo(acme.id()));
    var keys =
        ApiKeyServiceGrpc.newBlockingStub(
                ClientInterceptors.intercept(
                    channel, TestCredentials.bearer(acme.keys().get(Role.ADMIN))))
            .listApiKeys(ListApiKeysRequest.newBuilder().setPageSize(100).build());
    assertThat(keys.getApiKeysList())
        .allSatisfy(key -> assertThat(key.getTenantId()).isEqualTo(acme.id()));
  }

  @Test
  void onlyOperatorsManageTenantsOrMakeKeysOfAnotherTenant() {
    for (Rpc rpc : rpcs()) {
      if (rpc.kind() != Kind.OPERATOR) {
        continue;
      }
      for (String credential :
          List.of(acme.keys().get(Role.ADMIN), acme.tokens().get(Role.ADMIN))) {
        Calls.Outcome outcome =
            Calls.call(channel, rpc.method(), rpc.request().apply(globex), "Bearer " + credential);
        assertThat(outcome.code())
            .as(rpc.name() + ": " + outcome)
            .isEqualTo(Status.Code.PERMISSION_DENIED);
      }
      Tenant disposable = absentTenant();
      Calls.call(
          channel,
          raw(TenantServiceGrpc.getCreateTenantMethod()),
          CreateTenantRequest.newBuilder().setTenantId(disposable.id()).build(),
          "Bearer " + TestCredentials.ADMIN_KEY);
      Calls.Outcome operator =
          Calls.call(
              channel,
              rpc.method(),
              rpc.request().apply(disposable),
              "Bearer " + TestCredentials.ADMIN_KEY);
      assertThat(operator.code()).as(rpc.name() + ": " + operator).isEqualTo(Status.Code.OK);
    }
    Calls.Outcome foreignKey =
        Calls.call(
            channel,
            raw(ApiKeyServiceGrpc.getCreateApiKeyMethod()),
            CreateApiKeyRequest.newBuilder()
                .setName("sneaky")
                .setRole(dev.corral.proto.v1.Role.ROLE_ADMIN)
                .setTenantId(globex.id())
                .build(),
            "Bearer " + acme.keys().get(Role.ADMIN));
    assertThat(foreignKey.code()).isEqualTo(Status.Code.PERMISSION_DENIED);
  }

  @Test
  void anAdminTokenOfTheOperatorTenantThatIsNoOperatorCannotMakeOrRevokeAnOperatorsKey() {
    // Given an admin token of the operator tenant whose subject is not among the operators
    String mallory = "Bearer " + Tokens.of("mallory", "default", "admin");
    assertThat(
            Calls.call(
                    channel,
                    raw(TenantServiceGrpc.getListTenantsMethod()),
                    dev.corral.proto.v1.ListTenantsRequest.getDefaultInstance(),
                    mallory)
                .code())
        .isEqualTo(Status.Code.PERMISSION_DENIED);

    // When it makes an admin key of its tenant, which would make the key's holder an operator
    Calls.Outcome adminKey = createKey(dev.corral.proto.v1.Role.ROLE_ADMIN, mallory);

    // Then it is refused, saying why
    assertThat(adminKey.code()).as(adminKey.toString()).isEqualTo(Status.Code.PERMISSION_DENIED);
    assertThat(adminKey.message()).contains("operator");
    // while a member key of its tenant is still its to make
    Calls.Outcome memberKey = createKey(dev.corral.proto.v1.Role.ROLE_MEMBER, mallory);
    assertThat(memberKey.code()).as(memberKey.toString()).isEqualTo(Status.Code.OK);

    // And an operator's admin key is not its to revoke either
    String operatorsKey =
        ApiKeyServiceGrpc.newBlockingStub(
                io.grpc.ClientInterceptors.intercept(
                    channel, TestCredentials.bearer(TestCredentials.ADMIN_KEY)))
            .createApiKey(
                CreateApiKeyRequest.newBuilder()
                    .setName("operator-2")
                    .setRole(dev.corral.proto.v1.Role.ROLE_ADMIN)
                    .build())
            .getApiKey()
            .getId();
    Calls.Outcome revoke =
        Calls.call(
            channel,
            raw(ApiKeyServiceGrpc.getRevokeApiKeyMethod()),
            RevokeApiKeyRequest.newBuilder().setApiKeyId(operatorsKey).build(),
            mallory);
    assertThat(revoke.code()).as(revoke.toString()).isEqualTo(Status.Code.PERMISSION_DENIED);
  }

  /** CreateApiKey of {@code role} in the caller's own tenant, with {@code authorization}. */
  private static Calls.Outcome createKey(dev.corral.proto.v1.Role role, String authorization) {
    return Calls.call(
        channel,
        raw(ApiKeyServiceGrpc.getCreateApiKeyMethod()),
        CreateApiKeyRequest.newBuilder().setName("key-" + role.getNumber()).setRole(role).build(),
        authorization);
  }

  // --- the RPCs ---------------------------------------------------------------------------------

  private static List<Rpc> rpcs() {
    List<Rpc> rpcs = new ArrayList<>();
    add(
        rpcs,
        AgentServiceGrpc.getCreateAgentMethod(),
        Role.MEMBER,
        Kind.CREATE,
        t -> createAgent());
    add(
        rpcs,
        AgentServiceGrpc.getGetAgentMethod(),
        Role.VIEWER,
        Kind.BY_ID,
        t -> GetAgentRequest.newBuilder().setAgentId(t.agent()).build());
    add(
        rpcs,
        AgentServiceGrpc.getUpdateAgentMethod(),
        Role.MEMBER,
        Kind.BY_ID,
        t ->
            UpdateAgentRequest.newBuilder()
                .setAgentId(t.agent())
                .setName("renamed " + System.nanoTime())
                .build());
    add(
        rpcs,
        AgentServiceGrpc.getListAgentsMethod(),
        Role.VIEWER,
        Kind.LIST,
        t -> ListAgentsRequest.getDefaultInstance());
    add(
        rpcs,
        AgentServiceGrpc.getListAgentVersionsMethod(),
        Role.VIEWER,
        Kind.BY_ID,
        t -> ListAgentVersionsRequest.newBuilder().setAgentId(t.agent()).build());
    add(
        rpcs,
        AgentServiceGrpc.getArchiveAgentMethod(),
        Role.MEMBER,
        Kind.BY_ID,
        t -> ArchiveAgentRequest.newBuilder().setAgentId(t.agent()).build());

    add(
        rpcs,
        EnvironmentServiceGrpc.getCreateEnvironmentMethod(),
        Role.MEMBER,
        Kind.CREATE,
        t -> CreateEnvironmentRequest.newBuilder().setName("env").build());
    add(
        rpcs,
        EnvironmentServiceGrpc.getGetEnvironmentMethod(),
        Role.VIEWER,
        Kind.BY_ID,
        t -> GetEnvironmentRequest.newBuilder().setEnvironmentId(t.environment()).build());
    add(
        rpcs,
        EnvironmentServiceGrpc.getUpdateEnvironmentMethod(),
        Role.MEMBER,
        Kind.BY_ID,
        t ->
            UpdateEnvironmentRequest.newBuilder()
                .setEnvironmentId(t.environment())
                .setName("renamed " + System.nanoTime())
                .build());
    add(
        rpcs,
        EnvironmentServiceGrpc.getListEnvironmentsMethod(),
        Role.VIEWER,
        Kind.LIST,
        t -> ListEnvironmentsRequest.getDefaultInstance());
    add(
        rpcs,
        EnvironmentServiceGrpc.getArchiveEnvironmentMethod(),
        Role.MEMBER,
        Kind.BY_ID,
        t -> ArchiveEnvironmentRequest.newBuilder().setEnvironmentId(t.environment()).build());

    add(
        rpcs,
        SessionServiceGrpc.getCreateSessionMethod(),
        Role.MEMBER,
        Kind.BY_ID,
        t -> CreateSessionRequest.newBuilder().setAgentId(t.agent()).build());
    add(
        rpcs,
        SessionServiceGrpc.getGetSessionMethod(),
        Role.VIEWER,
        Kind.BY_ID,
        t -> GetSessionRequest.newBuilder().setSessionId(t.session()).build());
    add(
        rpcs,
        SessionServiceGrpc.getListSessionsMethod(),
        Role.VIEWER,
        Kind.LIST,
        t -> ListSessionsRequest.getDefaultInstance());
    add(
        rpcs,
        SessionServiceGrpc.getArchiveSessionMethod(),
        Role.MEMBER,
        Kind.BY_ID,
        t -> ArchiveSessionRequest.newBuilder().setSessionId(t.session()).build());
    add(
        rpcs,
        SessionServiceGrpc.getAddSessionResourceMethod(),
        Role.MEMBER,
        Kind.BY_ID,
        t ->
            dev.corral.proto.v1.AddSessionResourceRequest.newBuilder()
                .setSessionId(t.session())
                .setResource(repository())
                .build());
    add(
        rpcs,
        SessionServiceGrpc.getRemoveSessionResourceMethod(),
        Role.MEMBER,
        Kind.BY_ID,
        t ->
            dev.corral.proto.v1.RemoveSessionResourceRequest.newBuilder()
                .setSessionId(t.session())
                .setResourceId(t.resource())
                .build());
    add(
        rpcs,
        SessionServiceGrpc.getListSessionResourcesMethod(),
        Role.VIEWER,
        Kind.BY_ID,
        t ->
            dev.corral.proto.v1.ListSessionResourcesRequest.newBuilder()
                .setSessionId(t.session())
                .build());
    add(
        rpcs,
        SessionServiceGrpc.getDeleteSessionMethod(),
        Role.MEMBER,
        Kind.BY_ID,
        t -> DeleteSessionRequest.newBuilder().setSessionId(t.session()).build());
    add(
        rpcs,
        SessionServiceGrpc.getEmitEventMethod(),
        Role.MEMBER,
        Kind.BY_ID,
        t ->
            EmitEventRequest.newBuilder()
                .setSessionId(t.session())
                .setEvent(Fixtures.userMessage("hi"))
                .setIdempotencyKey("matrix-1")
                .build());
    add(
        rpcs,
        SessionServiceGrpc.getGetEventsMethod(),
        Role.VIEWER,
        Kind.BY_ID,
        t -> GetEventsRequest.newBuilder().setSessionId(t.session()).build());
    add(
        rpcs,
        SessionServiceGrpc.getStreamEventsMethod(),
        Role.VIEWER,
        Kind.BY_ID,
        t -> StreamEventsRequest.newBuilder().setSessionId(t.session()).build());

    add(
        rpcs,
        HarnessServiceGrpc.getWakeMethod(),
        Role.MEMBER,
        Kind.BY_ID,
        t -> WakeRequest.newBuilder().setSessionId(t.session()).build());

    add(
        rpcs,
        SandboxServiceGrpc.getProvisionMethod(),
        Role.MEMBER,
        Kind.BY_ID,
        t ->
            // (not for t.session(): it has a repository, which only its harness clones)
            ProvisionRequest.newBuilder().setEnvironmentId(t.environment()).build());
    add(
        rpcs,
        SandboxServiceGrpc.getExecuteMethod(),
        Role.MEMBER,
        Kind.BY_ID,
        t ->
            ExecuteRequest.newBuilder()
                .setSandboxId(t.sandbox())
                .setName("bash")
                .setInputJson("{\"command\":\"echo hi\"}")
                .build());
    add(
        rpcs,
        SandboxServiceGrpc.getGetSandboxMethod(),
        Role.VIEWER,
        Kind.BY_ID,
        t -> GetSandboxRequest.newBuilder().setSandboxId(t.sandbox()).build());
    add(
        rpcs,
        SandboxServiceGrpc.getListSandboxesMethod(),
        Role.VIEWER,
        Kind.LIST,
        t -> ListSandboxesRequest.getDefaultInstance());
    add(
        rpcs,
        SandboxServiceGrpc.getReleaseSandboxMethod(),
        Role.MEMBER,
        Kind.BY_ID,
        t -> ReleaseSandboxRequest.newBuilder().setSandboxId(t.sandbox()).build());

    add(
        rpcs,
        ApiKeyServiceGrpc.getCreateApiKeyMethod(),
        Role.ADMIN,
        Kind.CREATE,
        t ->
            CreateApiKeyRequest.newBuilder()
                .setName("matrix")
                .setRole(dev.corral.proto.v1.Role.ROLE_VIEWER)
                .build());
    add(
        rpcs,
        ApiKeyServiceGrpc.getGetApiKeyMethod(),
        Role.ADMIN,
        Kind.BY_ID,
        t -> GetApiKeyRequest.newBuilder().setApiKeyId(t.apiKey()).build());
    add(
        rpcs,
        ApiKeyServiceGrpc.getListApiKeysMethod(),
        Role.ADMIN,
        Kind.LIST,
        t -> ListApiKeysRequest.getDefaultInstance());
    add(
        rpcs,
        ApiKeyServiceGrpc.getRevokeApiKeyMethod(),
        Role.ADMIN,
        Kind.BY_ID,
        t -> RevokeApiKeyRequest.newBuilder().setApiKeyId(t.apiKey()).build());

    add(
        rpcs,
        VaultServiceGrpc.getCreateCredentialMethod(),
        Role.MEMBER,
        Kind.CREATE,
        t -> credential("matrix"));
    add(
        rpcs,
        VaultServiceGrpc.getGetCredentialMethod(),
        Role.VIEWER,
        Kind.BY_ID,
        t -> GetCredentialRequest.newBuilder().setCredentialId(t.credential()).build());
    add(
        rpcs,
        VaultServiceGrpc.getListCredentialsMethod(),
        Role.VIEWER,
        Kind.LIST,
        t -> ListCredentialsRequest.getDefaultInstance());
    add(
        rpcs,
        VaultServiceGrpc.getUpdateCredentialMethod(),
        Role.MEMBER,
        Kind.BY_ID,
        t ->
            UpdateCredentialRequest.newBuilder()
                .setCredentialId(t.credential())
                .setName("renamed")
                .build());
    add(
        rpcs,
        VaultServiceGrpc.getDeleteCredentialMethod(),
        Role.MEMBER,
        Kind.BY_ID,
        t -> DeleteCredentialRequest.newBuilder().setCredentialId(t.credential()).build());
    add(
        rpcs,
        VaultServiceGrpc.getCreateVaultMethod(),
        Role.MEMBER,
        Kind.CREATE,
        t -> dev.corral.proto.v1.CreateVaultRequest.newBuilder().setDisplayName("v").build());
    add(
        rpcs,
        VaultServiceGrpc.getGetVaultMethod(),
        Role.VIEWER,
        Kind.BY_ID,
        t -> dev.corral.proto.v1.GetVaultRequest.newBuilder().setVaultId(t.vault()).build());
    add(
        rpcs,
        VaultServiceGrpc.getListVaultsMethod(),
        Role.VIEWER,
        Kind.LIST,
        t -> dev.corral.proto.v1.ListVaultsRequest.getDefaultInstance());
    add(
        rpcs,
        VaultServiceGrpc.getUpdateVaultMethod(),
        Role.MEMBER,
        Kind.BY_ID,
        t ->
            dev.corral.proto.v1.UpdateVaultRequest.newBuilder()
                .setVaultId(t.vault())
                .setDisplayName("renamed")
                .build());
    add(
        rpcs,
        VaultServiceGrpc.getArchiveVaultMethod(),
        Role.MEMBER,
        Kind.BY_ID,
        t -> dev.corral.proto.v1.ArchiveVaultRequest.newBuilder().setVaultId(t.vault()).build());
    add(
        rpcs,
        VaultServiceGrpc.getDeleteVaultMethod(),
        Role.MEMBER,
        Kind.BY_ID,
        t -> dev.corral.proto.v1.DeleteVaultRequest.newBuilder().setVaultId(t.vault()).build());
    add(
        rpcs,
        VaultServiceGrpc.getRewrapCredentialsMethod(),
        Role.ADMIN,
        Kind.OPERATOR,
        t -> RewrapCredentialsRequest.getDefaultInstance());
    add(
        rpcs,
        TenantServiceGrpc.getWhoAmIMethod(),
        Role.VIEWER,
        Kind.SELF,
        t -> WhoAmIRequest.getDefaultInstance());
    add(
        rpcs,
        TenantServiceGrpc.getCreateTenantMethod(),
        Role.ADMIN,
        Kind.OPERATOR,
        t -> CreateTenantRequest.newBuilder().setTenantId(t.id()).build());
    add(
        rpcs,
        TenantServiceGrpc.getGetTenantMethod(),
        Role.ADMIN,
        Kind.OPERATOR,
        t -> GetTenantRequest.newBuilder().setTenantId(t.id()).build());
    add(
        rpcs,
        TenantServiceGrpc.getListTenantsMethod(),
        Role.ADMIN,
        Kind.OPERATOR,
        t -> ListTenantsRequest.getDefaultInstance());
    add(
        rpcs,
        TenantServiceGrpc.getEnableTenantMethod(),
        Role.ADMIN,
        Kind.OPERATOR,
        t -> EnableTenantRequest.newBuilder().setTenantId(t.id()).build());
    add(
        rpcs,
        TenantServiceGrpc.getDisableTenantMethod(),
        Role.ADMIN,
        Kind.OPERATOR,
        t -> DisableTenantRequest.newBuilder().setTenantId(t.id()).build());
    return rpcs;
  }

  private static boolean destructive(Rpc rpc) {
    return Set.of(
            "ArchiveAgent",
            "ArchiveEnvironment",
            "ArchiveSession",
            "DeleteSession",
            "ReleaseSandbox",
            "RevokeApiKey",
            "DeleteCredential",
            "AddSessionResource",
            "RemoveSessionResource",
            "UpdateVault",
            "ArchiveVault",
            "DeleteVault")
        .contains(rpc.method().getBareMethodName());
  }

  @SuppressWarnings("unchecked")
  private static <Q extends Message> void add(
      List<Rpc> rpcs,
      MethodDescriptor<Q, ?> method,
      Role role,
      Kind kind,
      Function<Tenant, Q> request) {
    rpcs.add(
        new Rpc(
            (MethodDescriptor<Message, Message>) (MethodDescriptor<?, ?>) method,
            role,
            kind,
            t -> request.apply(t)));
  }

  @SuppressWarnings("unchecked")
  private static MethodDescriptor<Message, Message> raw(MethodDescriptor<?, ?> method) {
    return (MethodDescriptor<Message, Message>) method;
  }

  private static CreateCredentialRequest credential(String name) {
    return CreateCredentialRequest.newBuilder()
        .setName(name)
        .setStaticHeader(
            StaticHeaderAuth.newBuilder()
                .setMcpServerUrl("https://mcp.example.com/mcp")
                .setValue("Bearer matrix-secret"))
        .build();
  }

  private static CreateAgentRequest createAgent() {
    return CreateAgentRequest.newBuilder().setName("agent").setModel("claude-test").build();
  }

  // --- fixtures ---------------------------------------------------------------------------------

  /** A tenant with keys of each role (made by the operator) and one of each resource. */
  private static Tenant tenant(String id) {
    Map<Role, String> keys = new LinkedHashMap<>();
    String viewerKeyId = null;
    ApiKeyServiceGrpc.ApiKeyServiceBlockingStub operator =
        ApiKeyServiceGrpc.newBlockingStub(
            ClientInterceptors.intercept(
                channel, TestCredentials.bearer(TestCredentials.ADMIN_KEY)));
    for (Role role : Role.values()) {
      var created =
          operator.createApiKey(
              CreateApiKeyRequest.newBuilder()
                  .setName(role.wireName())
                  .setRole(proto(role))
                  .setTenantId(id)
                  .build());
      keys.put(role, created.getKey());
      if (role == Role.VIEWER) {
        viewerKeyId = created.getApiKey().getId();
      }
    }
    Map<Role, String> tokens = new LinkedHashMap<>();
    for (Role role : Role.values()) {
      tokens.put(role, Tokens.of("user-" + role.wireName(), id, role.wireName()));
    }
    return withResources(id, keys, tokens, viewerKeyId);
  }

  private static Tenant withResources(
      String id, Map<Role, String> keys, Map<Role, String> tokens, String apiKey) {
    var member =
        ClientInterceptors.intercept(channel, TestCredentials.bearer(keys.get(Role.MEMBER)));
    String agent =
        AgentServiceGrpc.newBlockingStub(member).createAgent(createAgent()).getAgent().getId();
    String environment =
        EnvironmentServiceGrpc.newBlockingStub(member)
            .createEnvironment(CreateEnvironmentRequest.newBuilder().setName("env").build())
            .getEnvironment()
            .getId();
    dev.corral.proto.v1.Session created =
        SessionServiceGrpc.newBlockingStub(member)
            .createSession(
                CreateSessionRequest.newBuilder()
                    .setAgentId(agent)
                    .setEnvironmentId(environment)
                    .addInitialEvents(Fixtures.userMessage("hello"))
                    .addResources(repository())
                    .build())
            .getSession();
    String session = created.getId();
    String resource = created.getResources(0).getId();
    String sandbox =
        SandboxServiceGrpc.newBlockingStub(member)
            .provision(ProvisionRequest.newBuilder().setEnvironmentId(environment).build())
            .getSandbox()
            .getId();
    String credential =
        VaultServiceGrpc.newBlockingStub(member)
            .createCredential(credential("matrix"))
            .getCredential()
            .getId();
    String vault =
        VaultServiceGrpc.newBlockingStub(member)
            .createVault(
                dev.corral.proto.v1.CreateVaultRequest.newBuilder()
                    .setDisplayName("matrix")
                    .build())
            .getVault()
            .getId();
    return new Tenant(
        id,
        keys,
        tokens,
        agent,
        environment,
        session,
        sandbox,
        apiKey,
        credential,
        resource,
        vault);
  }

  /** Fresh resources of {@code tenant}, for RPCs that archive, delete, release or revoke. */
  private static Tenant throwaway(Tenant tenant) {
    var operator =
        ApiKeyServiceGrpc.newBlockingStub(
            ClientInterceptors.intercept(
                channel, TestCredentials.bearer(TestCredentials.ADMIN_KEY)));
    String apiKey =
        operator
            .createApiKey(
                CreateApiKeyRequest.newBuilder()
                    .setName("throwaway")
                    .setRole(dev.corral.proto.v1.Role.ROLE_VIEWER)
                    .setTenantId(tenant.id())
                    .build())
            .getApiKey()
            .getId();
    return withResources(tenant.id(), tenant.keys(), tenant.tokens(), apiKey);
  }

  /** Ids of every kind that name nothing at all. */
  private static Tenant absentTenant() {
    return new Tenant(
        "nobody-" + System.nanoTime(),
        Map.of(),
        Map.of(),
        dev.corral.common.IdKind.AGENT.next(),
        dev.corral.common.IdKind.ENVIRONMENT.next(),
        dev.corral.common.IdKind.SESSION.next(),
        dev.corral.common.IdKind.SANDBOX.next(),
        dev.corral.common.IdKind.API_KEY.next(),
        dev.corral.common.IdKind.CREDENTIAL.next(),
        dev.corral.common.IdKind.SESSION_RESOURCE.next(),
        dev.corral.common.IdKind.VAULT.next());
  }

  private static dev.corral.proto.v1.SessionResource repository() {
    return dev.corral.proto.v1.SessionResource.newBuilder()
        .setGitRepository(
            dev.corral.proto.v1.GitRepository.newBuilder()
                .setUrl("https://github.com/acme/app.git")
                .setMountPath("m" + System.nanoTime()))
        .build();
  }

  /** A message with the tenant's ids replaced by their kind, so that two can be compared. */
  private static String anonymized(String message, Tenant tenant) {
    return message
        .replace(tenant.agent(), "AGENT")
        .replace(tenant.environment(), "ENVIRONMENT")
        .replace(tenant.session(), "SESSION")
        .replace(tenant.sandbox(), "SANDBOX")
        .replace(tenant.apiKey(), "KEY")
        .replace(tenant.credential(), "CREDENTIAL")
        .replace(tenant.resource(), "RESOURCE")
        .replace(tenant.vault(), "VAULT");
  }

  /** What a tenant's resources look like now (what a refused call must not change). */
  private static Map<String, Object> state(Tenant tenant) {
    var admin =
        ClientInterceptors.intercept(
            channel, TestCredentials.bearer(tenant.keys().get(Role.ADMIN)));
    Map<String, Object> state = new LinkedHashMap<>();
    var agent =
        AgentServiceGrpc.newBlockingStub(admin)
            .getAgent(GetAgentRequest.newBuilder().setAgentId(tenant.agent()).build())
            .getAgent();
    state.put("agent", agent.getVersion() + "/" + agent.hasArchivedAt() + "/" + agent.getName());
    var environment =
        EnvironmentServiceGrpc.newBlockingStub(admin)
            .getEnvironment(
                GetEnvironmentRequest.newBuilder().setEnvironmentId(tenant.environment()).build())
            .getEnvironment();
    state.put("environment", environment.getVersion() + "/" + environment.hasArchivedAt());
    var session =
        SessionServiceGrpc.newBlockingStub(admin)
            .getSession(GetSessionRequest.newBuilder().setSessionId(tenant.session()).build())
            .getSession();
    state.put(
        "session",
        session.getLastSeq()
            + "/"
            + session.hasArchivedAt()
            + "/"
            + session.getStatus()
            + "/"
            + session.getResourcesList());
    SandboxState sandbox =
        SandboxServiceGrpc.newBlockingStub(admin)
            .getSandbox(GetSandboxRequest.newBuilder().setSandboxId(tenant.sandbox()).build())
            .getSandbox()
            .getState();
    state.put("sandbox", sandbox);
    var key =
        ApiKeyServiceGrpc.newBlockingStub(admin)
            .getApiKey(GetApiKeyRequest.newBuilder().setApiKeyId(tenant.apiKey()).build())
            .getApiKey();
    state.put("apiKey", key.hasRevokedAt());
    var credential =
        VaultServiceGrpc.newBlockingStub(admin)
            .getCredential(
                GetCredentialRequest.newBuilder().setCredentialId(tenant.credential()).build())
            .getCredential();
    state.put("credential", credential.getName() + "/" + credential.getRotatedAt());
    var vault =
        VaultServiceGrpc.newBlockingStub(admin)
            .getVault(
                dev.corral.proto.v1.GetVaultRequest.newBuilder().setVaultId(tenant.vault()).build())
            .getVault();
    state.put("vault", vault.getDisplayName() + "/" + vault.hasArchivedAt());
    state.put(
        "agents",
        AgentServiceGrpc.newBlockingStub(admin)
            .listAgents(ListAgentsRequest.newBuilder().setPageSize(100).build())
            .getAgentsCount());
    state.put(
        "sessions",
        SessionServiceGrpc.newBlockingStub(admin)
            .listSessions(ListSessionsRequest.newBuilder().setPageSize(100).build())
            .getSessionsCount());
    state.put(
        "keys",
        ApiKeyServiceGrpc.newBlockingStub(admin)
            .listApiKeys(ListApiKeysRequest.newBuilder().setPageSize(100).build())
            .getApiKeysCount());
    return state;
  }

  private static dev.corral.proto.v1.Role proto(Role role) {
    return switch (role) {
      case VIEWER -> dev.corral.proto.v1.Role.ROLE_VIEWER;
      case MEMBER -> dev.corral.proto.v1.Role.ROLE_MEMBER;
      case ADMIN -> dev.corral.proto.v1.Role.ROLE_ADMIN;
    };
  }
}
