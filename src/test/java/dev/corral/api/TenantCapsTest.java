package dev.corral.api;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.google.common.util.concurrent.ListenableFuture;
import dev.corral.proto.v1.AgentServiceGrpc;
import dev.corral.proto.v1.ArchiveAgentRequest;
import dev.corral.proto.v1.ArchiveEnvironmentRequest;
import dev.corral.proto.v1.CreateEnvironmentRequest;
import dev.corral.proto.v1.CreateSessionRequest;
import dev.corral.proto.v1.CreateSessionResponse;
import dev.corral.proto.v1.DeleteSessionRequest;
import dev.corral.proto.v1.EnvironmentServiceGrpc;
import dev.corral.proto.v1.GetAgentRequest;
import dev.corral.proto.v1.ListAgentsRequest;
import dev.corral.proto.v1.ListEnvironmentsRequest;
import dev.corral.proto.v1.ListSessionsRequest;
import dev.corral.proto.v1.SessionServiceGrpc;
import dev.corral.proto.v1.UpdateAgentRequest;
import dev.corral.testing.Fixtures;
import dev.corral.testing.TestCredentials;
import io.grpc.Channel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.quarkus.grpc.GrpcClient;
import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.QuarkusTestProfile;
import io.quarkus.test.junit.TestProfile;
import io.vertx.mutiny.sqlclient.Pool;
import io.vertx.mutiny.sqlclient.SqlConnection;
import io.vertx.mutiny.sqlclient.Tuple;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.assertj.core.api.ThrowableAssert.ThrowingCallable;
import org.junit.jupiter.api.Test;

/**
 * One tenant cannot fill the database every tenant shares: it holds a number of agents, agent
 * versions, environments and sessions at most, and one more is refused with nothing stored.
 */
@QuarkusTest
@TestProfile(TenantCapsTest.SmallTenants.class)
class TenantCapsTest {

  static final int MAX = 3;

  /** Every cap at {@link #MAX}. */
  public static class SmallTenants implements QuarkusTestProfile {
    @Override
    public Map<String, String> getConfigOverrides() {
      return Map.of(
          "corral.tenant.max-agents", Integer.toString(MAX),
          "corral.tenant.max-agent-versions", Integer.toString(MAX),
          "corral.tenant.max-environments", Integer.toString(MAX),
          "corral.tenant.max-sessions", Integer.toString(MAX),
          "corral.tenant.max-api-keys", Integer.toString(MAX));
    }
  }

  /** The replica's pool (quarkus.datasource.reactive.max-size). */
  static final int POOL_SIZE = 32;

  static final java.time.Duration WAIT = java.time.Duration.ofSeconds(15);

  @GrpcClient("corral")
  Channel channel;

  @jakarta.inject.Inject Pool pool;

  @Test
  void aTenantHoldsAtMostItsAgentsArchivedOrNotAndOthersAreNotHeldUp() {
    // Given a tenant with as many agents as it may hold, one of them archived
    var agents =
        AgentServiceGrpc.newBlockingStub(TestCredentials.memberOfNewTenant(channel, "cap"));
    List<String> held = new ArrayList<>();
    for (int i = 0; i < MAX; i++) {
      held.add(Fixtures.createAgent(agents));
    }
    agents.archiveAgent(ArchiveAgentRequest.newBuilder().setAgentId(held.get(0)).build());

    // When it creates one more, it is refused, naming the setting, and nothing is stored
    assertExhausted(() -> Fixtures.createAgent(agents), "corral.tenant.max-agents");
    assertThat(
            agents
                .listAgents(ListAgentsRequest.newBuilder().setIncludeArchived(true).build())
                .getAgentsList())
        .hasSize(MAX);

    // Then another tenant still creates its own
    var other = AgentServiceGrpc.newBlockingStub(TestCredentials.memberOfNewTenant(channel, "cap"));
    assertThat(Fixtures.createAgent(other)).isNotEmpty();
  }

  @Test
  void aTenantHoldsAtMostItsLiveApiKeysAndRevokingOneMakesRoom() {
    // Given a tenant with as many live keys as it may hold (its member's, and more)
    String tenant = "cap-keys-" + System.nanoTime();
    TestCredentials.memberKeyOfNewTenantNamed(channel, tenant);
    var operator =
        dev.corral.proto.v1.ApiKeyServiceGrpc.newBlockingStub(
            io.grpc.ClientInterceptors.intercept(
                channel, TestCredentials.bearer(TestCredentials.ADMIN_KEY)));
    java.util.function.Supplier<dev.corral.proto.v1.CreateApiKeyResponse> create =
        () ->
            operator.createApiKey(
                dev.corral.proto.v1.CreateApiKeyRequest.newBuilder()
                    .setName("one more")
                    .setRole(dev.corral.proto.v1.Role.ROLE_MEMBER)
                    .setTenantId(tenant)
                    .build());
    String last = null;
    for (int i = 1; i < MAX; i++) {
      last = create.get().getApiKey().getId();
    }

    // When one more is made, it is refused, naming the setting, and no key is stored
    assertExhausted(create::get, "corral.tenant.max-api-keys");
    assertThat(
            operator
                .listApiKeys(
                    dev.corral.proto.v1.ListApiKeysRequest.newBuilder()
                        .setTenantId(tenant)
                        .setIncludeRevoked(true)
                        .setPageSize(100)
                        .build())
                .getApiKeysCount())
        .isEqualTo(MAX);

    // Then revoking one makes room for one
    operator.revokeApiKey(
        dev.corral.proto.v1.RevokeApiKeyRequest.newBuilder()
            .setApiKeyId(last)
            .setTenantId(tenant)
            .build());
    assertThat(create.get().getKey()).isNotEmpty();
    assertExhausted(create::get, "corral.tenant.max-api-keys");
  }

  @Test
  void anAgentHasAtMostItsVersionsAndAnUpdateThatChangesNothingStillAnswers() {
    // Given an agent with as many versions as one may have
    var agents =
        AgentServiceGrpc.newBlockingStub(TestCredentials.memberOfNewTenant(channel, "cap"));
    String agent = Fixtures.createAgent(agents);
    for (int version = 2; version <= MAX; version++) {
      agents.updateAgent(rename(agent, "name " + version));
    }

    // When it is changed once more, it is refused, and its latest version stays
    assertExhausted(
        () -> agents.updateAgent(rename(agent, "one too many")),
        "corral.tenant.max-agent-versions");
    var latest = agents.getAgent(GetAgentRequest.newBuilder().setAgentId(agent).build()).getAgent();
    assertThat(latest.getVersion()).isEqualTo(MAX);
    assertThat(latest.getName()).isEqualTo("name " + MAX);

    // Then an update that changes nothing makes no version, and is answered
    assertThat(agents.updateAgent(rename(agent, "name " + MAX)).getAgent().getVersion())
        .isEqualTo(MAX);
  }

  @Test
  void aTenantHoldsAtMostItsEnvironmentsArchivedOrNot() {
    var environments =
        EnvironmentServiceGrpc.newBlockingStub(TestCredentials.memberOfNewTenant(channel, "cap"));
    List<String> held = new ArrayList<>();
    for (int i = 0; i < MAX; i++) {
      held.add(environments.createEnvironment(environment()).getEnvironment().getId());
    }
    environments.archiveEnvironment(
        ArchiveEnvironmentRequest.newBuilder().setEnvironmentId(held.get(0)).build());

    assertExhausted(
        () -> environments.createEnvironment(environment()), "corral.tenant.max-environments");
    assertThat(
            environments
                .listEnvironments(
                    ListEnvironmentsRequest.newBuilder().setIncludeArchived(true).build())
                .getEnvironmentsList())
        .hasSize(MAX);
  }

  @Test
  void sessionsCreatedAtOnceStopAtTheCapAndADeletedOneMakesRoom() throws Exception {
    // Given a tenant with an agent and no session
    Channel member = TestCredentials.memberOfNewTenant(channel, "cap");
    String agent = Fixtures.createAgent(AgentServiceGrpc.newBlockingStub(member));
    var sessions = SessionServiceGrpc.newBlockingStub(member);
    CreateSessionRequest create =
        CreateSessionRequest.newBuilder()
            .setAgentId(agent)
            .addInitialEvents(Fixtures.userMessage("hello"))
            .build();

    // When it asks for three times its limit all at once
    int asked = 3 * MAX;
    ExecutorService callers = Executors.newFixedThreadPool(asked);
    CountDownLatch start = new CountDownLatch(1);
    List<Future<String>> outcomes = new ArrayList<>();
    try {
      for (int i = 0; i < asked; i++) {
        Callable<String> call =
            () -> {
              start.await();
              try {
                return sessions.createSession(create).getSession().getId();
              } catch (StatusRuntimeException e) {
                return e.getStatus().getCode().name();
              }
            };
        outcomes.add(callers.submit(call));
      }
      start.countDown();
      List<String> results = new ArrayList<>();
      for (Future<String> outcome : outcomes) {
        results.add(outcome.get());
      }

      // Then exactly as many as it may hold were made, and every other was refused
      List<String> made = results.stream().filter(result -> result.startsWith("sesn_")).toList();
      assertThat(made).hasSize(MAX);
      assertThat(results.stream().filter(result -> !made.contains(result)))
          .hasSize(asked - MAX)
          .allMatch(Status.Code.RESOURCE_EXHAUSTED.name()::equals);
      assertThat(
              sessions
                  .listSessions(ListSessionsRequest.newBuilder().setIncludeArchived(true).build())
                  .getSessionsList())
          .hasSize(MAX);

      // And once it deletes one, it may create one again, and only one
      sessions.deleteSession(DeleteSessionRequest.newBuilder().setSessionId(made.get(0)).build());
      assertThat(sessions.createSession(create).getSession().getId()).isNotEmpty();
      assertExhausted(() -> sessions.createSession(create), "corral.tenant.max-sessions");
    } finally {
      callers.shutdownNow();
    }
  }

  @Test
  void creationsWaitingForTheirTenantsTurnHoldNoConnectionOtherTenantsNeed() throws Exception {
    // Given a tenant whose session count is locked elsewhere (another replica's creation, say)
    String tenant = "cap-wait-" + System.nanoTime();
    Channel member = TestCredentials.memberOfNewTenantNamed(channel, tenant);
    String agent = Fixtures.createAgent(AgentServiceGrpc.newBlockingStub(member));
    SqlConnection elsewhere = pool.getConnection().await().atMost(WAIT);
    List<ListenableFuture<CreateSessionResponse>> creations = new ArrayList<>();
    try {
      elsewhere
          .preparedQuery("SELECT pg_advisory_lock(hashtextextended($1, 0))")
          .execute(Tuple.of("corral-limit sessions " + tenant))
          .await()
          .atMost(WAIT);

      // When it asks for more sessions at once than the replica's pool has connections
      var sessions = SessionServiceGrpc.newFutureStub(member);
      for (int i = 0; i < POOL_SIZE + 8; i++) {
        creations.add(
            sessions.createSession(CreateSessionRequest.newBuilder().setAgentId(agent).build()));
      }

      // Then another tenant's calls that need the database are still answered
      var other =
          AgentServiceGrpc.newBlockingStub(TestCredentials.memberOfNewTenant(channel, "cap"));
      for (int i = 0; i < 3; i++) {
        assertThat(
                Fixtures.createAgent(
                    other.withDeadlineAfter(
                        WAIT.toMillis(), java.util.concurrent.TimeUnit.MILLISECONDS)))
            .isNotEmpty();
      }
    } finally {
      elsewhere
          .preparedQuery("SELECT pg_advisory_unlock(hashtextextended($1, 0))")
          .execute(Tuple.of("corral-limit sessions " + tenant))
          .await()
          .atMost(WAIT);
      elsewhere.close().await().atMost(WAIT);
    }

    // And once the lock is free, the tenant's creations end, as many made as its cap allows
    int made = 0;
    for (ListenableFuture<CreateSessionResponse> creation : creations) {
      try {
        creation.get(WAIT.toSeconds(), java.util.concurrent.TimeUnit.SECONDS);
        made++;
      } catch (java.util.concurrent.ExecutionException e) {
        assertThat(Status.fromThrowable(e.getCause()).getCode())
            .isEqualTo(Status.Code.RESOURCE_EXHAUSTED);
      }
    }
    assertThat(made).isEqualTo(MAX);
  }

  private static void assertExhausted(ThrowingCallable call, String setting) {
    assertThatThrownBy(call)
        .isInstanceOfSatisfying(
            StatusRuntimeException.class,
            e -> {
              assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.RESOURCE_EXHAUSTED);
              assertThat(e.getStatus().getDescription())
                  .contains(setting)
                  .contains(Integer.toString(MAX));
            });
  }

  private static UpdateAgentRequest rename(String agent, String name) {
    return UpdateAgentRequest.newBuilder().setAgentId(agent).setName(name).build();
  }

  private static CreateEnvironmentRequest environment() {
    return CreateEnvironmentRequest.newBuilder().setName("env").build();
  }
}
