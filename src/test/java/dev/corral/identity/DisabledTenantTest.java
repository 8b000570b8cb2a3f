package dev.corral.identity;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import dev.corral.proto.v1.AgentServiceGrpc;
import dev.corral.proto.v1.AgentToolset;
import dev.corral.proto.v1.CreateAgentRequest;
import dev.corral.proto.v1.CreateSessionRequest;
import dev.corral.proto.v1.DisableTenantRequest;
import dev.corral.proto.v1.EnableTenantRequest;
import dev.corral.proto.v1.ProvisionRequest;
import dev.corral.proto.v1.Sandbox;
import dev.corral.proto.v1.SandboxServiceGrpc;
import dev.corral.proto.v1.Session;
import dev.corral.proto.v1.SessionServiceGrpc;
import dev.corral.proto.v1.TenantServiceGrpc;
import dev.corral.proto.v1.Tool;
import dev.corral.testing.FakeAnthropic;
import dev.corral.testing.FakeAnthropic.Reply;
import dev.corral.testing.Fixtures;
import dev.corral.testing.HarnessTestProfile;
import dev.corral.testing.InjectFakeAnthropic;
import dev.corral.testing.TestCredentials;
import io.grpc.Channel;
import io.quarkus.grpc.GrpcClient;
import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.TestProfile;
import io.vertx.mutiny.sqlclient.Pool;
import io.vertx.mutiny.sqlclient.Row;
import io.vertx.mutiny.sqlclient.Tuple;
import jakarta.inject.Inject;
import java.time.Duration;
import java.util.UUID;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

/**
 * A disabled tenant runs nothing: its harness runs stop, its sandboxes end, and its pending work
 * waits until it is enabled again. Refusing its credentials alone left all of that running on the
 * operator's model key and the cluster's machines.
 */
@QuarkusTest
@TestProfile(HarnessTestProfile.class)
class DisabledTenantTest {

  @GrpcClient("corral")
  Channel channel;

  @GrpcClient("corral")
  TenantServiceGrpc.TenantServiceBlockingStub tenants;

  @InjectFakeAnthropic FakeAnthropic model;

  @Inject Pool pool;

  @Test
  void aDisabledTenantsSessionsStopAndItsSandboxesEndUntilItIsEnabledAgain() {
    // Given a tenant whose session keeps calling tools, and a sandbox it provisioned on its own
    model.reset();
    String tenant = "disabled-" + System.nanoTime();
    Channel member = TestCredentials.memberOfNewTenantNamed(channel, tenant);
    String marker = "m-" + UUID.randomUUID();
    AtomicInteger calls = new AtomicInteger();
    model.fallback(
        request -> {
          if (!request.path("messages").toString().contains(marker)) {
            return Reply.text("ok");
          }
          int call = calls.incrementAndGet();
          return Reply.stream()
              .toolUse("toolu_" + call, "bash", "{\"command\":\"sleep 0.1; echo " + call + "\"}")
              .stop("tool_use");
        });
    Session session = start(member, marker);
    Sandbox standalone =
        SandboxServiceGrpc.newBlockingStub(member)
            .provision(ProvisionRequest.getDefaultInstance())
            .getSandbox();
    await().atMost(Duration.ofSeconds(20)).until(() -> calls.get() >= 3);

    // When an operator disables the tenant
    tenants.disableTenant(DisableTenantRequest.newBuilder().setTenantId(tenant).build());

    // Then its sandboxes end and the model stops being called for it
    await()
        .atMost(Duration.ofSeconds(10))
        .untilAsserted(() -> assertThat(state(standalone.getId())).isEqualTo("released"));
    await()
        .atMost(Duration.ofSeconds(10))
        .untilAsserted(
            () ->
                assertThat(
                        count(
                            "SELECT count(*) FROM sandboxes WHERE session_id = $1"
                                + " AND state IN ('provisioning', 'ready')",
                            session.getId()))
                    .isZero());
    // A turn under way goes on until the harness finds its lease gone (its next renewal): wait
    // until the calls stop, then see that they stay stopped
    AtomicInteger seen = new AtomicInteger(-1);
    await()
        .atMost(Duration.ofSeconds(10))
        .pollInterval(Duration.ofSeconds(1))
        .until(() -> seen.getAndSet(calls.get()) == calls.get());
    int stoppedAt = calls.get();
    await()
        .during(Duration.ofSeconds(3))
        .atMost(Duration.ofSeconds(5))
        .until(() -> calls.get() == stoppedAt);
    int afterDisabled = calls.get();

    // And once it is enabled again, its session goes on where it was
    tenants.enableTenant(EnableTenantRequest.newBuilder().setTenantId(tenant).build());
    await().atMost(Duration.ofSeconds(20)).until(() -> calls.get() >= afterDisabled + 2);
    assertThat(model.violations()).isEmpty();
    model.fallback(request -> Reply.text("done"));
    SessionServiceGrpc.newBlockingStub(member)
        .archiveSession(
            dev.corral.proto.v1.ArchiveSessionRequest.newBuilder()
                .setSessionId(session.getId())
                .build());
  }

  private String state(String sandboxId) {
    return first("SELECT state FROM sandboxes WHERE id = $1", sandboxId).getString(0);
  }

  private long count(String sql, String id) {
    return first(sql, id).getLong(0);
  }

  private Row first(String sql, String id) {
    return pool.preparedQuery(sql)
        .execute(Tuple.of(id))
        .await()
        .atMost(Duration.ofSeconds(5))
        .iterator()
        .next();
  }

  private static Session start(Channel member, String marker) {
    String agent =
        AgentServiceGrpc.newBlockingStub(member)
            .createAgent(
                CreateAgentRequest.newBuilder()
                    .setName("busy")
                    .setModel("claude-test")
                    .addTools(Tool.newBuilder().setToolset(AgentToolset.getDefaultInstance()))
                    .build())
            .getAgent()
            .getId();
    return SessionServiceGrpc.newBlockingStub(member)
        .createSession(
            CreateSessionRequest.newBuilder()
                .setAgentId(agent)
                .addInitialEvents(Fixtures.userMessage(marker))
                .build())
        .getSession();
  }
}
