package dev.corral.sandbox.local;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.corral.proto.v1.ListSandboxesRequest;
import dev.corral.proto.v1.ProvisionRequest;
import dev.corral.proto.v1.ReleaseSandboxRequest;
import dev.corral.proto.v1.Sandbox;
import dev.corral.proto.v1.SandboxServiceGrpc;
import dev.corral.proto.v1.SandboxState;
import dev.corral.testing.TestCredentials;
import io.grpc.Channel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.quarkus.grpc.GrpcClient;
import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.TestProfile;
import jakarta.inject.Inject;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.Test;

/** One tenant cannot take every sandbox a deployment runs: it has a number of live ones at most. */
@QuarkusTest
@TestProfile(SmallReplica.class)
class TenantSandboxLimitTest {

  @GrpcClient("corral")
  Channel channel;

  @Inject LocalDriver local;

  @Test
  void aTenantAtItsLimitGetsNoMoreUntilItReleasesOne() {
    // Given a tenant with as many live sandboxes as it may have
    var member =
        SandboxServiceGrpc.newBlockingStub(TestCredentials.memberOfNewTenant(channel, "sbx"));
    List<Sandbox> live = new ArrayList<>();
    for (int i = 0; i < SmallReplica.MAX_LIVE_PER_TENANT; i++) {
      live.add(member.provision(ProvisionRequest.getDefaultInstance()).getSandbox());
    }

    // When it asks for one more, it is refused, and no sandbox is started or recorded for it
    Set<String> hostedBefore = local.hosted().keySet();
    assertThatThrownBy(() -> member.provision(ProvisionRequest.getDefaultInstance()))
        .isInstanceOfSatisfying(
            StatusRuntimeException.class,
            e -> {
              assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.RESOURCE_EXHAUSTED);
              assertThat(e.getStatus().getDescription())
                  .contains("max-live-per-tenant")
                  .contains(Integer.toString(SmallReplica.MAX_LIVE_PER_TENANT));
            });
    assertThat(local.hosted().keySet()).isEqualTo(hostedBefore);
    assertThat(liveOf(member)).hasSize(SmallReplica.MAX_LIVE_PER_TENANT);

    // And another tenant is not held up by it
    var other =
        SandboxServiceGrpc.newBlockingStub(TestCredentials.memberOfNewTenant(channel, "sbx"));
    Sandbox others = other.provision(ProvisionRequest.getDefaultInstance()).getSandbox();
    assertThat(others.getState()).isEqualTo(SandboxState.SANDBOX_STATE_READY);

    // Then once it releases one, it gets one again
    member.releaseSandbox(
        ReleaseSandboxRequest.newBuilder().setSandboxId(live.get(0).getId()).build());
    assertThat(member.provision(ProvisionRequest.getDefaultInstance()).getSandbox().getState())
        .isEqualTo(SandboxState.SANDBOX_STATE_READY);

    releaseAll(member);
    releaseAll(other);
  }

  @Test
  void provisionsRacingAtTheLimitNeverPassItNorLeaveSandboxesRunning() throws Exception {
    // Given a tenant with no sandbox
    var member =
        SandboxServiceGrpc.newBlockingStub(TestCredentials.memberOfNewTenant(channel, "sbx"));
    Set<String> hostedBefore = new HashSet<>(local.hosted().keySet());

    // When it asks for three times its limit at once
    int attempts = 3 * SmallReplica.MAX_LIVE_PER_TENANT;
    ExecutorService pool = Executors.newFixedThreadPool(attempts);
    CountDownLatch start = new CountDownLatch(1);
    List<Future<String>> outcomes = new ArrayList<>();
    for (int i = 0; i < attempts; i++) {
      outcomes.add(
          pool.submit(
              () -> {
                start.await();
                try {
                  return member
                      .provision(ProvisionRequest.getDefaultInstance())
                      .getSandbox()
                      .getId();
                } catch (StatusRuntimeException e) {
                  assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.RESOURCE_EXHAUSTED);
                  return null;
                }
              }));
    }
    start.countDown();
    Set<String> provisioned = new HashSet<>();
    for (Future<String> outcome : outcomes) {
      String id = outcome.get();
      if (id != null) {
        provisioned.add(id);
      }
    }
    pool.shutdown();

    // Then exactly its limit were provisioned, recorded live, and run here; the refused ones left
    // nothing running
    assertThat(provisioned).hasSize(SmallReplica.MAX_LIVE_PER_TENANT);
    assertThat(liveOf(member).stream().map(Sandbox::getId))
        .containsExactlyInAnyOrderElementsOf(provisioned);
    Set<String> hostedNow = new HashSet<>(local.hosted().keySet());
    hostedNow.removeAll(hostedBefore);
    assertThat(hostedNow).isEqualTo(provisioned);

    releaseAll(member);
  }

  @Test
  void sandboxesStillRunningTheirSetupCountTowardTheTenantsAndTheReplicasLimits() throws Exception {
    // Given five tenants, each with an environment whose setup takes a while (a sleep whose
    // length names the tenant, so that its processes can be counted on this host)
    int tenants = 5;
    List<SandboxServiceGrpc.SandboxServiceBlockingStub> members = new ArrayList<>();
    List<String> environmentIds = new ArrayList<>();
    for (int t = 0; t < tenants; t++) {
      Channel member = TestCredentials.memberOfNewTenant(channel, "setup");
      members.add(SandboxServiceGrpc.newBlockingStub(member));
      environmentIds.add(
          dev.corral.proto.v1.EnvironmentServiceGrpc.newBlockingStub(member)
              .createEnvironment(
                  dev.corral.proto.v1.CreateEnvironmentRequest.newBuilder()
                      .setName("slow-setup")
                      .setDriver(dev.corral.proto.v1.SandboxDriver.SANDBOX_DRIVER_LOCAL)
                      .addSetupCommands("sleep " + setupSeconds(t))
                      .build())
              .getEnvironment()
              .getId());
    }

    // When each asks for twice its limit at once (20 provisions, against a replica of 12)
    int perTenant = 2 * SmallReplica.MAX_LIVE_PER_TENANT;
    ExecutorService pool = Executors.newFixedThreadPool(tenants * perTenant);
    List<Future<String>> outcomes = new ArrayList<>();
    for (int t = 0; t < tenants; t++) {
      for (int i = 0; i < perTenant; i++) {
        var member = members.get(t);
        ProvisionRequest request =
            ProvisionRequest.newBuilder().setEnvironmentId(environmentIds.get(t)).build();
        outcomes.add(
            pool.submit(
                () -> {
                  try {
                    return member.provision(request).getSandbox().getId();
                  } catch (StatusRuntimeException e) {
                    assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.RESOURCE_EXHAUSTED);
                    return null;
                  }
                }));
      }
    }
    // (counting the setups that run at once on this host until every provision has answered)
    int[] most = new int[tenants];
    int mostInAll = 0;
    while (!outcomes.stream().allMatch(Future::isDone)) {
      int[] now = new int[tenants];
      ProcessHandle.allProcesses()
          .forEach(
              process -> {
                String line = process.info().commandLine().orElse("");
                for (int t = 0; t < tenants; t++) {
                  if (line.equals("/usr/bin/sleep " + setupSeconds(t))) {
                    now[t]++;
                  }
                }
              });
      int all = 0;
      for (int t = 0; t < tenants; t++) {
        most[t] = Math.max(most[t], now[t]);
        all += now[t];
      }
      mostInAll = Math.max(mostInAll, all);
    }
    pool.shutdown();

    // Then no tenant ever ran more setups at once than it may have sandboxes, nor the replica more
    // than it may run
    for (int t = 0; t < tenants; t++) {
      assertThat(most[t]).as("tenant " + t).isLessThanOrEqualTo(SmallReplica.MAX_LIVE_PER_TENANT);
    }
    assertThat(mostInAll).isLessThanOrEqualTo(12);
    long provisioned = 0;
    for (Future<String> outcome : outcomes) {
      provisioned += outcome.get() == null ? 0 : 1;
    }
    assertThat(provisioned).isBetween(1L, 12L);
    members.forEach(TenantSandboxLimitTest::releaseAll);
  }

  @Test
  void aProvisionGivenUpLeavesNoSandboxRunningAndNoPlaceTaken() {
    // Given an environment whose setup runs for a minute
    dev.corral.proto.v1.Environment slow =
        dev.corral.proto.v1.Environment.newBuilder()
            .setId("env_givenup")
            .addSetupCommands("sleep 60.777")
            .build();
    dev.corral.proto.v1.SandboxResources resources =
        dev.corral.proto.v1.SandboxResources.newBuilder()
            .setMaxProcesses(32)
            .setDiskBytes(16L << 20)
            .setMemoryBytes(256L << 20)
            .setCallTimeoutMs(90_000)
            .build();

    long sandboxesBefore = sandboxProcesses();

    // When more provisions than the replica may run are given up while some run their setup and
    // others are still starting
    List<io.smallrye.mutiny.subscription.Cancellable> provisions = new ArrayList<>();
    for (int i = 0; i < 14; i++) {
      var spec =
          new dev.corral.sandbox.driver.SandboxDriver.SandboxSpec(
              "sbx_givenup" + i, "", slow, resources);
      provisions.add(local.provision(spec).subscribe().with(item -> {}, failure -> {}));
    }
    org.awaitility.Awaitility.await()
        .atMost(java.time.Duration.ofSeconds(30))
        .until(() -> setups("sleep 60.777") >= 3);
    provisions.forEach(io.smallrye.mutiny.subscription.Cancellable::cancel);

    // Then their sandboxes end, and the replica's every place is free again
    org.awaitility.Awaitility.await()
        .atMost(java.time.Duration.ofSeconds(30))
        .until(() -> setups("sleep 60.777") == 0);
    org.awaitility.Awaitility.await()
        .atMost(java.time.Duration.ofSeconds(30))
        .until(() -> sandboxProcesses() <= sandboxesBefore); // (warm ones may have made room)
    List<dev.corral.sandbox.driver.SandboxDriver.Provisioned> started = new ArrayList<>();
    for (int i = 0; i < 12; i++) {
      started.add(
          local
              .provision(
                  new dev.corral.sandbox.driver.SandboxDriver.SandboxSpec(
                      "sbx_after" + i,
                      "",
                      dev.corral.proto.v1.Environment.newBuilder().setId("env_after").build(),
                      resources))
              .await()
              .atMost(java.time.Duration.ofSeconds(30)));
    }
    assertThat(started).hasSize(12);
    for (int i = 0; i < 12; i++) {
      local
          .release("sbx_after" + i, started.get(i).host())
          .await()
          .atMost(java.time.Duration.ofSeconds(30));
    }
  }

  @Test
  void provisionsWithEverNewLimitsDoNotGrowTheWarmPoolsWithoutBound() {
    // When sandboxes are provisioned and released with 24 kinds of limits, one after the other
    dev.corral.proto.v1.Environment plain =
        dev.corral.proto.v1.Environment.newBuilder().setId("env_kinds").build();
    for (int i = 0; i < 24; i++) {
      var spec =
          new dev.corral.sandbox.driver.SandboxDriver.SandboxSpec(
              "sbx_kind" + i,
              "",
              plain,
              dev.corral.proto.v1.SandboxResources.newBuilder()
                  .setMaxProcesses(33)
                  .setDiskBytes(16L << 20)
                  .setMemoryBytes(128L << 20)
                  .setCallTimeoutMs(10_000 + i)
                  .build());
      String host = local.provision(spec).await().atMost(java.time.Duration.ofSeconds(30)).host();
      local.release(spec.sandboxId(), host).await().atMost(java.time.Duration.ofSeconds(30));
    }

    // Then the pools of the kinds asked for long ago, emptied to make room, are let go
    org.awaitility.Awaitility.await()
        .atMost(java.time.Duration.ofSeconds(30))
        .until(() -> local.warmKinds() <= 17);
  }

  @Test
  void aProvisionGivenUpJustAsItTakesAWarmSandboxLeavesItRunningNowhere() {
    // Given a warm pool for these limits
    dev.corral.proto.v1.SandboxResources resources =
        dev.corral.proto.v1.SandboxResources.newBuilder()
            .setMaxProcesses(33)
            .setDiskBytes(16L << 20)
            .setMemoryBytes(128L << 20)
            .setCallTimeoutMs(10_000)
            .build();
    dev.corral.proto.v1.Environment plain =
        dev.corral.proto.v1.Environment.newBuilder().setId("env_warm").build();
    var first =
        new dev.corral.sandbox.driver.SandboxDriver.SandboxSpec("sbx_warm", "", plain, resources);
    String host = local.provision(first).await().atMost(java.time.Duration.ofSeconds(30)).host();
    local.release("sbx_warm", host).await().atMost(java.time.Duration.ofSeconds(30));
    org.awaitility.Awaitility.await()
        .atMost(java.time.Duration.ofSeconds(30))
        .until(() -> local.warmFor(first.resources()) >= 2);
    long sandboxesBefore = sandboxProcesses();

    // When provisions are given up at every moment of taking a warm sandbox, and each is then
    // released by its id (as Sandboxes does with one given up once recorded)
    for (int i = 0; i < 40; i++) {
      String id = "sbx_warmgivenup" + i;
      var provision =
          local
              .provision(
                  new dev.corral.sandbox.driver.SandboxDriver.SandboxSpec(id, "", plain, resources))
              .subscribe()
              .with(item -> {}, failure -> {});
      java.util.concurrent.locks.LockSupport.parkNanos((i % 8) * 150_000L);
      provision.cancel();
      local.release(id, host).await().atMost(java.time.Duration.ofSeconds(30));
    }

    // Then no sandbox is left running that nothing counts or owns
    org.awaitility.Awaitility.await()
        .atMost(java.time.Duration.ofSeconds(30))
        .until(TenantSandboxLimitTest::sandboxProcesses, count -> count <= sandboxesBefore);
  }

  /** The bubblewrap processes of local sandboxes on this host. */
  private static long sandboxProcesses() {
    return ProcessHandle.allProcesses()
        .filter(
            process ->
                process.info().command().orElse("").endsWith("bwrap")
                    && process.info().commandLine().orElse("").contains("--as-pid-1"))
        .count();
  }

  private static long setups(String command) {
    return ProcessHandle.allProcesses()
        .filter(process -> process.info().commandLine().orElse("").equals("/usr/bin/" + command))
        .count();
  }

  private static String setupSeconds(int tenant) {
    return "1.5" + (10 + tenant);
  }

  private static List<Sandbox> liveOf(SandboxServiceGrpc.SandboxServiceBlockingStub member) {
    return member
        .listSandboxes(ListSandboxesRequest.newBuilder().setPageSize(100).build())
        .getSandboxesList();
  }

  private static void releaseAll(SandboxServiceGrpc.SandboxServiceBlockingStub member) {
    for (Sandbox sandbox : liveOf(member)) {
      member.releaseSandbox(
          ReleaseSandboxRequest.newBuilder().setSandboxId(sandbox.getId()).build());
    }
  }
}
