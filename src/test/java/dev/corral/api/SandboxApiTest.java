package dev.corral.api;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowableOfType;

import dev.corral.proto.v1.AgentServiceGrpc;
import dev.corral.proto.v1.ArchiveEnvironmentRequest;
import dev.corral.proto.v1.ArchiveSessionRequest;
import dev.corral.proto.v1.CreateEnvironmentRequest;
import dev.corral.proto.v1.CreateSessionRequest;
import dev.corral.proto.v1.DeleteSessionRequest;
import dev.corral.proto.v1.Environment;
import dev.corral.proto.v1.EnvironmentServiceGrpc;
import dev.corral.proto.v1.ExecuteRequest;
import dev.corral.proto.v1.ExecuteResponse;
import dev.corral.proto.v1.GetEnvironmentRequest;
import dev.corral.proto.v1.GetSandboxRequest;
import dev.corral.proto.v1.ListEnvironmentsRequest;
import dev.corral.proto.v1.ListSandboxesRequest;
import dev.corral.proto.v1.NetworkMode;
import dev.corral.proto.v1.Networking;
import dev.corral.proto.v1.ProvisionRequest;
import dev.corral.proto.v1.ReleaseSandboxRequest;
import dev.corral.proto.v1.Sandbox;
import dev.corral.proto.v1.SandboxDriver;
import dev.corral.proto.v1.SandboxResources;
import dev.corral.proto.v1.SandboxServiceGrpc;
import dev.corral.proto.v1.SandboxState;
import dev.corral.proto.v1.Session;
import dev.corral.proto.v1.SessionServiceGrpc;
import dev.corral.proto.v1.SetupCommands;
import dev.corral.proto.v1.UpdateEnvironmentRequest;
import dev.corral.testing.Fixtures;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.quarkus.grpc.GrpcClient;
import io.quarkus.test.junit.QuarkusTest;
import java.util.List;
import java.util.function.Supplier;
import org.assertj.core.api.SoftAssertions;
import org.junit.jupiter.api.Test;

/** EnvironmentService and SandboxService through generated clients: lifecycle and bad input. */
@QuarkusTest
class SandboxApiTest {

  private static final String UNKNOWN_SANDBOX = "sbx_00000000000000000000000000";
  private static final String UNKNOWN_ENVIRONMENT = "env_00000000000000000000000000";
  private static final String UNKNOWN_SESSION = "sesn_00000000000000000000000000";

  @GrpcClient("corral")
  SandboxServiceGrpc.SandboxServiceBlockingStub sandboxes;

  @GrpcClient("corral")
  EnvironmentServiceGrpc.EnvironmentServiceBlockingStub environments;

  @GrpcClient("corral")
  SessionServiceGrpc.SessionServiceBlockingStub sessions;

  @GrpcClient("corral")
  AgentServiceGrpc.AgentServiceBlockingStub agents;

  @jakarta.inject.Inject dev.corral.sandbox.local.LocalDriver local;

  @jakarta.inject.Inject io.vertx.mutiny.sqlclient.Pool pool;

  @Test
  void environmentsAskingMoreThanTheCeilingsAreRefusedWhenMadeOrChanged() throws Exception {
    // When a member creates an environment above the server's ceilings (64 GiB of memory, 16
    // cores by default), though within the API's maxima
    StatusRuntimeException created =
        catchThrowableOfType(
            StatusRuntimeException.class,
            () ->
                createEnvironment(
                    b ->
                        b.setName("too-big")
                            .setResources(
                                SandboxResources.newBuilder().setMemoryBytes(100L << 30))));
    // Then it is refused at once, naming the field and the setting, and nothing is stored
    assertThat(created.getStatus().getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT);
    assertThat(created.getStatus().getDescription())
        .contains("resources.memory_bytes", "corral.sandbox.ceilings.memory-bytes");
    assertThat(
            environments
                .listEnvironments(ListEnvironmentsRequest.newBuilder().setPageSize(100).build())
                .getEnvironmentsList())
        .noneMatch(environment -> environment.getName().equals("too-big"));

    // And raising an environment's limit above a ceiling is refused and changes nothing
    Environment small =
        createEnvironment(b -> b.setResources(SandboxResources.newBuilder().setCpuMillis(500)));
    StatusRuntimeException raised =
        catchThrowableOfType(
            StatusRuntimeException.class,
            () ->
                environments.updateEnvironment(
                    UpdateEnvironmentRequest.newBuilder()
                        .setEnvironmentId(small.getId())
                        .setResources(SandboxResources.newBuilder().setCpuMillis(64_000))
                        .build()));
    assertThat(raised.getStatus().getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT);
    assertThat(raised.getStatus().getDescription()).contains("resources.cpu_millis");
    assertThat(getEnvironment(small.getId()).getVersion()).isEqualTo(small.getVersion());

    // When an environment already holds a value above a ceiling (the operator lowered it later)
    Fixtures.rewriteEnvironment(
        pool,
        small.getId(),
        environment ->
            environment.setResources(SandboxResources.newBuilder().setMemoryBytes(100L << 30)));
    // Then its other fields can still change, and provisioning from it says which setting refuses
    Environment renamed =
        environments
            .updateEnvironment(
                UpdateEnvironmentRequest.newBuilder()
                    .setEnvironmentId(small.getId())
                    .setName("renamed")
                    .build())
            .getEnvironment();
    assertThat(renamed.getName()).isEqualTo("renamed");
    StatusRuntimeException provisioned =
        catchThrowableOfType(StatusRuntimeException.class, () -> provision(small.getId()));
    assertThat(provisioned.getStatus().getCode()).isEqualTo(Status.Code.FAILED_PRECONDITION);
    assertThat(provisioned.getStatus().getDescription())
        .contains("corral.sandbox.ceilings.memory-bytes");
  }

  @Test
  void anEnvironmentsMetadataIsReplacedByAnUpdateAndCheckedAsAtCreation() {
    // Given an environment with metadata
    Environment environment =
        environments
            .createEnvironment(
                CreateEnvironmentRequest.newBuilder()
                    .setName("labelled")
                    .putMetadata("team", "a")
                    .putMetadata("old", "x")
                    .build())
            .getEnvironment();

    // When an update sets new metadata
    Environment updated =
        environments
            .updateEnvironment(
                UpdateEnvironmentRequest.newBuilder()
                    .setEnvironmentId(environment.getId())
                    .setMetadata(dev.corral.proto.v1.Metadata.newBuilder().putEntries("team", "b"))
                    .build())
            .getEnvironment();

    // Then it replaces the old, and metadata a create would refuse is refused, changing nothing
    assertThat(updated.getMetadataMap()).containsExactly(java.util.Map.entry("team", "b"));
    var refused =
        org.junit.jupiter.api.Assertions.assertThrows(
            io.grpc.StatusRuntimeException.class,
            () ->
                environments.updateEnvironment(
                    UpdateEnvironmentRequest.newBuilder()
                        .setEnvironmentId(environment.getId())
                        .setMetadata(
                            dev.corral.proto.v1.Metadata.newBuilder()
                                .putEntries("k".repeat(1000), "v"))
                        .build()));
    assertThat(refused.getStatus().getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT);
    assertThat(refused.getStatus().getDescription()).contains("metadata");
    assertThat(
            environments
                .getEnvironment(
                    dev.corral.proto.v1.GetEnvironmentRequest.newBuilder()
                        .setEnvironmentId(environment.getId())
                        .build())
                .getEnvironment()
                .getVersion())
        .isEqualTo(updated.getVersion());
  }

  @Test
  void networkingUpdatedWithoutAModeReadsBackAsACreateWouldGiveIt() {
    Environment environment =
        environments
            .createEnvironment(CreateEnvironmentRequest.newBuilder().setName("modeless").build())
            .getEnvironment();

    Environment updated =
        environments
            .updateEnvironment(
                UpdateEnvironmentRequest.newBuilder()
                    .setEnvironmentId(environment.getId())
                    .setNetworking(dev.corral.proto.v1.Networking.getDefaultInstance())
                    .build())
            .getEnvironment();

    assertThat(environment.getNetworking().getMode())
        .isEqualTo(dev.corral.proto.v1.NetworkMode.NETWORK_MODE_NONE);
    assertThat(updated.getNetworking().getMode())
        .isEqualTo(dev.corral.proto.v1.NetworkMode.NETWORK_MODE_NONE);
  }

  @Test
  void concurrentEnvironmentUpdatesEachMakeTheirOwnVersionAndOneExpectedVersionHasOneWinner()
      throws Exception {
    // Given
    Environment environment =
        environments
            .createEnvironment(
                CreateEnvironmentRequest.newBuilder()
                    .setName("raced")
                    .setDriver(SandboxDriver.SANDBOX_DRIVER_LOCAL)
                    .build())
            .getEnvironment();
    assertThat(environment.getVersion()).isEqualTo(1);

    // When 16 callers update it at once without an expected version
    List<Environment> updated =
        AgentServiceTest.concurrently(
            16,
            i ->
                environments
                    .updateEnvironment(
                        UpdateEnvironmentRequest.newBuilder()
                            .setEnvironmentId(environment.getId())
                            .setDescription("update " + i)
                            .build())
                    .getEnvironment());

    // Then each made its own consecutive version
    assertThat(updated)
        .extracting(Environment::getVersion)
        .containsExactlyInAnyOrderElementsOf(
            java.util.stream.IntStream.rangeClosed(2, 17).boxed().toList());

    // When 16 callers all expect version 17
    List<Object> outcomes =
        AgentServiceTest.concurrently(
            16,
            i -> {
              try {
                return environments
                    .updateEnvironment(
                        UpdateEnvironmentRequest.newBuilder()
                            .setEnvironmentId(environment.getId())
                            .setExpectedVersion(17)
                            .setDescription("expected " + i)
                            .build())
                    .getEnvironment();
              } catch (io.grpc.StatusRuntimeException refused) {
                return refused.getStatus().getCode();
              }
            });

    // Then exactly one won, and the others were told ABORTED
    assertThat(outcomes.stream().filter(o -> o instanceof Environment)).hasSize(1);
    assertThat(outcomes.stream().filter(o -> !(o instanceof Environment)))
        .hasSize(15)
        .allMatch(code -> code == io.grpc.Status.Code.ABORTED);
    Environment stored =
        environments
            .getEnvironment(
                dev.corral.proto.v1.GetEnvironmentRequest.newBuilder()
                    .setEnvironmentId(environment.getId())
                    .build())
            .getEnvironment();
    assertThat(stored.getVersion()).isEqualTo(18);
  }

  @Test
  void anEnvironmentsSetupCommandsRunOnceInEachNewSandboxAndItsChangesApplyToNewOnes() {
    // Given
    Environment environment =
        environments
            .createEnvironment(
                CreateEnvironmentRequest.newBuilder()
                    .setName("python-ish")
                    .setDriver(SandboxDriver.SANDBOX_DRIVER_LOCAL)
                    .addSetupCommands("echo ready >> setup.log")
                    .addSetupCommands("mkdir -p project")
                    .putMetadata("team", "platform")
                    .build())
            .getEnvironment();

    // When
    Sandbox first = provision(environment.getId());
    Environment updated =
        environments
            .updateEnvironment(
                UpdateEnvironmentRequest.newBuilder()
                    .setEnvironmentId(environment.getId())
                    .setDescription("with a marker")
                    .setSetupCommands(SetupCommands.newBuilder().addCommands("touch marker"))
                    .build())
            .getEnvironment();
    Sandbox second = provision(environment.getId());

    // Then
    assertThat(environment.getNetworking().getMode()).isEqualTo(NetworkMode.NETWORK_MODE_NONE);
    assertThat(run(first, "bash", "{\"command\":\"cat setup.log; ls\"}"))
        .isEqualTo("ready\nproject\nsetup.log");
    assertThat(updated.getDescription()).isEqualTo("with a marker");
    assertThat(updated.getName()).isEqualTo("python-ish");
    assertThat(run(second, "bash", "{\"command\":\"ls\"}")).isEqualTo("marker");
    assertThat(first.getEnvironmentId()).isEqualTo(environment.getId());
    assertThat(
            environments
                .getEnvironment(
                    GetEnvironmentRequest.newBuilder()
                        .setEnvironmentId(environment.getId())
                        .build())
                .getEnvironment()
                .getSetupCommandsList())
        .containsExactly("touch marker");
    assertThat(
            environments
                .listEnvironments(ListEnvironmentsRequest.newBuilder().setPageSize(100).build())
                .getEnvironmentsList())
        .extracting(Environment::getId)
        .contains(environment.getId());
    release(first);
    release(second);
  }

  @Test
  void aProvisionWhoseClientGivesUpIsStoppedAndLeavesNoSandbox() throws Exception {
    // Given an environment whose setup runs for a minute, being provisioned
    Environment slow =
        environments
            .createEnvironment(
                CreateEnvironmentRequest.newBuilder()
                    .setName("slow-setup")
                    .addSetupCommands("sleep 61.919")
                    .build())
            .getEnvironment();
    java.util.concurrent.CompletableFuture<Sandbox> provision =
        java.util.concurrent.CompletableFuture.supplyAsync(
            () ->
                sandboxes
                    .withDeadlineAfter(8, java.util.concurrent.TimeUnit.SECONDS)
                    .provision(ProvisionRequest.newBuilder().setEnvironmentId(slow.getId()).build())
                    .getSandbox());
    org.awaitility.Awaitility.await()
        .atMost(java.time.Duration.ofSeconds(8))
        .until(() -> processes("sleep 61.919") == 1);

    // When its client stops waiting
    Throwable gaveUp =
        catchThrowableOfType(
            java.util.concurrent.ExecutionException.class,
            () -> provision.get(30, java.util.concurrent.TimeUnit.SECONDS));
    assertThat(((StatusRuntimeException) gaveUp.getCause()).getStatus().getCode())
        .isEqualTo(Status.Code.DEADLINE_EXCEEDED);

    // Then its setup is stopped, and no sandbox of the environment is left
    org.awaitility.Awaitility.await()
        .atMost(java.time.Duration.ofSeconds(20))
        .until(() -> processes("sleep 61.919") == 0);
    assertThat(live()).noneMatch(sandbox -> sandbox.getEnvironmentId().equals(slow.getId()));
  }

  /**
   * Processes on this host (sandboxes' included) whose command line is {@code commandLine}, the
   * program named by its path or alone.
   */
  private static long processes(String commandLine) {
    return ProcessHandle.allProcesses()
        .map(process -> process.info().commandLine().orElse(""))
        .filter(line -> line.equals(commandLine) || line.endsWith("/" + commandLine))
        .count();
  }

  @Test
  void aFailingSetupCommandFailsTheProvisioningAndLeavesNoLiveSandbox() {
    // Given
    Environment broken =
        environments
            .createEnvironment(
                CreateEnvironmentRequest.newBuilder()
                    .setName("broken")
                    .addSetupCommands("echo about to fail; exit 7")
                    .build())
            .getEnvironment();

    // When
    StatusRuntimeException failure =
        catchThrowableOfType(
            StatusRuntimeException.class,
            () ->
                sandboxes.provision(
                    ProvisionRequest.newBuilder().setEnvironmentId(broken.getId()).build()));

    // Then
    assertThat(failure.getStatus().getCode()).isEqualTo(Status.Code.FAILED_PRECONDITION);
    assertThat(failure.getStatus().getDescription()).contains("setup command 1").contains("exit 7");
    assertThat(live()).noneMatch(sandbox -> sandbox.getEnvironmentId().equals(broken.getId()));
  }

  @Test
  void sandboxesOfASessionAreListedAndReleasingTwiceReturnsTheReleasedOne() {
    // Given
    Session session = Fixtures.createSession(agents, sessions);
    Sandbox sandbox =
        sandboxes
            .provision(ProvisionRequest.newBuilder().setSessionId(session.getId()).build())
            .getSandbox();

    // When
    List<Sandbox> listed =
        sandboxes
            .listSandboxes(ListSandboxesRequest.newBuilder().setSessionId(session.getId()).build())
            .getSandboxesList();
    Sandbox released = release(sandbox);
    Sandbox again = release(sandbox);

    // Then
    assertThat(listed).extracting(Sandbox::getId).containsExactly(sandbox.getId());
    assertThat(sandbox.getSessionId()).isEqualTo(session.getId());
    assertThat(released.getState()).isEqualTo(SandboxState.SANDBOX_STATE_RELEASED);
    assertThat(again).isEqualTo(released);
    assertThat(
            sandboxes
                .listSandboxes(
                    ListSandboxesRequest.newBuilder().setSessionId(session.getId()).build())
                .getSandboxesList())
        .isEmpty();
  }

  @Test
  void aSessionHasOneSandboxAtATimeAndASecondProvisionNamesIt() {
    // Given a session whose sandbox holds a file
    Session session = Fixtures.createSession(agents, sessions);
    ProvisionRequest forSession =
        ProvisionRequest.newBuilder().setSessionId(session.getId()).build();
    Sandbox first = sandboxes.provision(forSession).getSandbox();
    run(first, "write", "{\"file_path\":\"work.txt\",\"content\":\"the model's work\"}");

    // When it is provisioned for again
    StatusRuntimeException again =
        catchThrowableOfType(StatusRuntimeException.class, () -> sandboxes.provision(forSession));

    // Then the answer names the session's sandbox, which is still the only one and keeps its file
    assertThat(again.getStatus().getCode()).isEqualTo(Status.Code.ALREADY_EXISTS);
    assertThat(again.getStatus().getDescription())
        .contains(session.getId())
        .contains(first.getId());
    assertThat(ofSession(session.getId(), true))
        .extracting(Sandbox::getId)
        .containsExactly(first.getId());
    assertThat(run(first, "read", "{\"file_path\":\"work.txt\"}")).contains("the model's work");

    // And once it is released the session takes a new one
    release(first);
    Sandbox second = sandboxes.provision(forSession).getSandbox();
    assertThat(second.getId()).isNotEqualTo(first.getId());
    assertThat(ofSession(session.getId(), false))
        .extracting(Sandbox::getId)
        .containsExactly(second.getId());
    release(second);
  }

  @Test
  void aSessionsSandboxComesFromTheSessionsEnvironment() {
    // Given a session whose environment's setup leaves a file, and another environment
    Environment own =
        environments
            .createEnvironment(
                CreateEnvironmentRequest.newBuilder()
                    .setName("the session's")
                    .setDriver(SandboxDriver.SANDBOX_DRIVER_LOCAL)
                    .addSetupCommands("echo set up > setup.txt")
                    .build())
            .getEnvironment();
    Environment other =
        environments
            .createEnvironment(
                CreateEnvironmentRequest.newBuilder()
                    .setName("another")
                    .setDriver(SandboxDriver.SANDBOX_DRIVER_LOCAL)
                    .build())
            .getEnvironment();
    Session session = Fixtures.createSession(agents, sessions, own.getId());

    // When a sandbox is provisioned for it from the other environment
    StatusRuntimeException refused =
        catchThrowableOfType(
            StatusRuntimeException.class,
            () ->
                sandboxes.provision(
                    ProvisionRequest.newBuilder()
                        .setSessionId(session.getId())
                        .setEnvironmentId(other.getId())
                        .build()));

    // Then it is refused naming the field and the session's environment, and nothing is made
    assertThat(refused.getStatus().getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT);
    assertThat(io.grpc.protobuf.StatusProto.fromThrowable(refused).getDetailsList().toString())
        .contains("environment_id");
    assertThat(refused.getStatus().getDescription()).contains(own.getId());
    assertThat(ofSession(session.getId(), true)).isEmpty();

    // And one provisioned without an environment comes from the session's, setup included
    Sandbox sandbox =
        sandboxes
            .provision(ProvisionRequest.newBuilder().setSessionId(session.getId()).build())
            .getSandbox();
    assertThat(sandbox.getEnvironmentId()).isEqualTo(own.getId());
    assertThat(run(sandbox, "read", "{\"file_path\":\"setup.txt\"}")).contains("set up");
    release(sandbox);
  }

  @Test
  void provisionsRacingForOneSessionLeaveOneSandboxAndStopTheOther() throws Exception {
    // Given a session whose environment's setup takes a while (a sleep long enough that two
    // provisions both start before either is recorded)
    String setup = "sleep 2." + System.nanoTime() % 1000;
    Session session = slowSetupSession(setup);
    ProvisionRequest request = ProvisionRequest.newBuilder().setSessionId(session.getId()).build();

    // When two provisions for it run at once
    java.util.Set<String> hostedBefore = new java.util.HashSet<>(local.hosted().keySet());
    var threads = java.util.concurrent.Executors.newFixedThreadPool(2);
    var start = new java.util.concurrent.CountDownLatch(1);
    List<java.util.concurrent.Future<Object>> outcomes = new java.util.ArrayList<>();
    for (int i = 0; i < 2; i++) {
      outcomes.add(
          threads.submit(
              () -> {
                start.await();
                try {
                  return sandboxes.provision(request).getSandbox();
                } catch (StatusRuntimeException e) {
                  return e;
                }
              }));
    }
    start.countDown();
    List<Object> answers = new java.util.ArrayList<>();
    for (var outcome : outcomes) {
      answers.add(outcome.get(60, java.util.concurrent.TimeUnit.SECONDS));
    }
    threads.shutdown();

    // Then one made the session's sandbox, the other was told its id, and no other was recorded
    // or still runs
    List<Sandbox> made =
        answers.stream().filter(Sandbox.class::isInstance).map(Sandbox.class::cast).toList();
    List<StatusRuntimeException> refused =
        answers.stream()
            .filter(StatusRuntimeException.class::isInstance)
            .map(StatusRuntimeException.class::cast)
            .toList();
    assertThat(made).as(answers.toString()).hasSize(1);
    assertThat(refused).hasSize(1);
    assertThat(refused.get(0).getStatus().getCode()).isEqualTo(Status.Code.ALREADY_EXISTS);
    assertThat(refused.get(0).getStatus().getDescription()).contains(made.get(0).getId());
    assertThat(ofSession(session.getId(), true))
        .extracting(Sandbox::getId)
        .containsExactly(made.get(0).getId());
    java.util.Set<String> hostedNow = new java.util.HashSet<>(local.hosted().keySet());
    hostedNow.removeAll(hostedBefore);
    assertThat(hostedNow).containsExactly(made.get(0).getId());
    release(made.get(0));
  }

  @Test
  void aSessionArchivedWhileItsSandboxIsSetUpGetsNoSandbox() throws Exception {
    // Given a session whose environment's setup takes a while, and a provision for it under way
    String setup = "sleep 3." + System.nanoTime() % 1000;
    Session session = slowSetupSession(setup);
    java.util.Set<String> hostedBefore = new java.util.HashSet<>(local.hosted().keySet());
    var provisioning =
        java.util.concurrent.CompletableFuture.supplyAsync(
            () -> {
              try {
                return (Object)
                    sandboxes
                        .provision(
                            ProvisionRequest.newBuilder().setSessionId(session.getId()).build())
                        .getSandbox();
              } catch (StatusRuntimeException e) {
                return e;
              }
            });
    org.awaitility.Awaitility.await()
        .atMost(java.time.Duration.ofSeconds(20))
        .until(() -> dev.corral.testing.Processes.running(setup));

    // When the session is archived while the setup runs
    sessions.archiveSession(
        ArchiveSessionRequest.newBuilder().setSessionId(session.getId()).build());

    // Then the provision is refused once the setup ends, and no sandbox is recorded or runs
    Object answer = provisioning.get(60, java.util.concurrent.TimeUnit.SECONDS);
    assertThat(answer).as(String.valueOf(answer)).isInstanceOf(StatusRuntimeException.class);
    StatusRuntimeException refused = (StatusRuntimeException) answer;
    assertThat(refused.getStatus().getCode()).isEqualTo(Status.Code.FAILED_PRECONDITION);
    assertThat(refused.getStatus().getDescription()).contains("archived");
    assertThat(ofSession(session.getId(), true)).isEmpty();
    org.awaitility.Awaitility.await()
        .atMost(java.time.Duration.ofSeconds(10))
        .untilAsserted(
            () -> {
              java.util.Set<String> hostedNow = new java.util.HashSet<>(local.hosted().keySet());
              hostedNow.removeAll(hostedBefore);
              assertThat(hostedNow).isEmpty();
            });
  }

  /** A session whose local environment's setup runs {@code setup}. */
  private Session slowSetupSession(String setup) {
    Environment slow =
        environments
            .createEnvironment(
                CreateEnvironmentRequest.newBuilder()
                    .setName("slow-setup")
                    .setDriver(SandboxDriver.SANDBOX_DRIVER_LOCAL)
                    .addSetupCommands(setup)
                    .build())
            .getEnvironment();
    return Fixtures.createSession(agents, sessions, slow.getId());
  }

  @Test
  void archivingOrDeletingASessionReleasesItsSandboxes() {
    // Given two sessions with a sandbox each
    Session archived = Fixtures.createSession(agents, sessions);
    Session deleted = Fixtures.createSession(agents, sessions);
    Sandbox first =
        sandboxes
            .provision(ProvisionRequest.newBuilder().setSessionId(archived.getId()).build())
            .getSandbox();
    Sandbox second =
        sandboxes
            .provision(ProvisionRequest.newBuilder().setSessionId(deleted.getId()).build())
            .getSandbox();

    // When
    sessions.archiveSession(
        ArchiveSessionRequest.newBuilder().setSessionId(archived.getId()).build());
    sessions.deleteSession(DeleteSessionRequest.newBuilder().setSessionId(deleted.getId()).build());

    // Then both are released well before the reconciler's next pass (30 s)
    for (Sandbox sandbox : List.of(first, second)) {
      org.awaitility.Awaitility.await()
          .atMost(java.time.Duration.ofSeconds(10))
          .until(
              () ->
                  sandboxes
                          .getSandbox(
                              GetSandboxRequest.newBuilder().setSandboxId(sandbox.getId()).build())
                          .getSandbox()
                          .getState()
                      == SandboxState.SANDBOX_STATE_RELEASED);
    }
  }

  @Test
  void badInputGetsAClearStatusAndChangesNothing() {
    // Given a sandbox with a file, a released sandbox and an archived environment
    Sandbox sandbox = provision("");
    run(sandbox, "write", "{\"file_path\":\"keep.txt\",\"content\":\"original\"}");
    Sandbox released = release(provision(""));
    Environment archived =
        environments
            .createEnvironment(CreateEnvironmentRequest.newBuilder().setName("old").build())
            .getEnvironment();
    environments.archiveEnvironment(
        ArchiveEnvironmentRequest.newBuilder().setEnvironmentId(archived.getId()).build());
    List<String> liveBefore = live().stream().map(Sandbox::getId).toList();

    // When / Then
    SoftAssertions softly = new SoftAssertions();
    String id = sandbox.getId();
    expect(softly, Status.Code.INVALID_ARGUMENT, "name", () -> execute(id, "rm", "{}"));
    expect(softly, Status.Code.INVALID_ARGUMENT, "name", () -> execute(id, "", "{}"));
    expect(
        softly,
        Status.Code.INVALID_ARGUMENT,
        "input_json",
        () -> execute(id, "write", "{\"file_path\":\"keep.txt\""));
    expect(
        softly,
        Status.Code.INVALID_ARGUMENT,
        "input_json.mode",
        () ->
            execute(
                id, "write", "{\"file_path\":\"keep.txt\",\"content\":\"x\",\"mode\":\"0777\"}"));
    expect(
        softly,
        Status.Code.INVALID_ARGUMENT,
        "input_json.command",
        () -> execute(id, "bash", "{\"command\":42}"));
    // 1 MiB is in bytes: 400,000 euro signs are 1.2 MB of UTF-8 in 400,000 characters
    expect(
        softly,
        Status.Code.INVALID_ARGUMENT,
        "input_json",
        () ->
            execute(
                id,
                "write",
                "{\"file_path\":\"keep.txt\",\"content\":\"" + "\u20ac".repeat(400_000) + "\"}"));
    expect(
        softly,
        Status.Code.INVALID_ARGUMENT,
        "input_json.old_string",
        () ->
            execute(
                id,
                "edit",
                "{\"file_path\":\"keep.txt\",\"old_string\":\"\",\"new_string\":\"x\"}"));
    expect(
        softly,
        Status.Code.INVALID_ARGUMENT,
        "input_json.content",
        () -> execute(id, "write", "{\"file_path\":\"keep.txt\",\"content\":\"a\\u0000b\"}"));
    expect(
        softly, Status.Code.INVALID_ARGUMENT, "sandbox_id", () -> execute("sbx_x", "bash", "{}"));
    expect(
        softly,
        Status.Code.NOT_FOUND,
        "sandbox",
        () -> execute(UNKNOWN_SANDBOX, "bash", "{\"command\":\"ls\"}"));
    expect(
        softly,
        Status.Code.FAILED_PRECONDITION,
        "released",
        () -> execute(released.getId(), "bash", "{\"command\":\"ls\"}"));
    expect(
        softly,
        Status.Code.NOT_FOUND,
        "sandbox",
        () ->
            sandboxes.getSandbox(
                GetSandboxRequest.newBuilder().setSandboxId(UNKNOWN_SANDBOX).build()));
    expect(
        softly,
        Status.Code.NOT_FOUND,
        "sandbox",
        () ->
            sandboxes.releaseSandbox(
                ReleaseSandboxRequest.newBuilder().setSandboxId(UNKNOWN_SANDBOX).build()));
    expect(
        softly,
        Status.Code.INVALID_ARGUMENT,
        "resources.memory_bytes",
        () ->
            sandboxes.provision(
                ProvisionRequest.newBuilder()
                    .setResources(SandboxResources.newBuilder().setMemoryBytes(1024))
                    .build()));
    expect(
        softly,
        Status.Code.INVALID_ARGUMENT,
        "resources.max_processes",
        () ->
            sandboxes.provision(
                ProvisionRequest.newBuilder()
                    .setResources(SandboxResources.newBuilder().setMaxProcesses(-1))
                    .build()));
    expect(
        softly,
        Status.Code.NOT_FOUND,
        "environment",
        () ->
            sandboxes.provision(
                ProvisionRequest.newBuilder().setEnvironmentId(UNKNOWN_ENVIRONMENT).build()));
    expect(
        softly,
        Status.Code.FAILED_PRECONDITION,
        "archived",
        () ->
            sandboxes.provision(
                ProvisionRequest.newBuilder().setEnvironmentId(archived.getId()).build()));
    expect(
        softly,
        Status.Code.NOT_FOUND,
        "session",
        () ->
            sandboxes.provision(
                ProvisionRequest.newBuilder().setSessionId(UNKNOWN_SESSION).build()));
    // a session with repositories: its harness, which clones them, would take this sandbox
    dev.corral.proto.v1.Session withRepository =
        dev.corral.testing.Fixtures.createSession(agents, sessions);
    sessions.addSessionResource(
        dev.corral.proto.v1.AddSessionResourceRequest.newBuilder()
            .setSessionId(withRepository.getId())
            .setResource(
                dev.corral.proto.v1.SessionResource.newBuilder()
                    .setGitRepository(
                        dev.corral.proto.v1.GitRepository.newBuilder()
                            .setUrl("https://github.com/acme/app.git")))
            .build());
    expect(
        softly,
        Status.Code.FAILED_PRECONDITION,
        "repositories",
        () ->
            sandboxes.provision(
                ProvisionRequest.newBuilder().setSessionId(withRepository.getId()).build()));
    // more than the server's ceilings (64 GiB of memory, 30 days), though within the API's maxima
    expect(
        softly,
        Status.Code.INVALID_ARGUMENT,
        "resources.memory_bytes",
        () ->
            sandboxes.provision(
                ProvisionRequest.newBuilder()
                    .setResources(SandboxResources.newBuilder().setMemoryBytes(1L << 40))
                    .build()));
    expect(
        softly,
        Status.Code.INVALID_ARGUMENT,
        "page_size",
        () -> sandboxes.listSandboxes(ListSandboxesRequest.newBuilder().setPageSize(-1).build()));
    expect(
        softly, Status.Code.INVALID_ARGUMENT, "name", () -> createEnvironment(b -> b.setName("")));
    expect(
        softly,
        Status.Code.INVALID_ARGUMENT,
        "networking.mode",
        () -> createEnvironment(b -> b.setNetworking(Networking.newBuilder().setModeValue(7))));
    expect(
        softly,
        Status.Code.INVALID_ARGUMENT,
        "warm_pool_size",
        () -> createEnvironment(b -> b.setWarmPoolSize(-1)));
    expect(
        softly,
        Status.Code.INVALID_ARGUMENT,
        "runtime_class_name",
        () -> createEnvironment(b -> b.setRuntimeClassName("Not A Label")));
    expect(
        softly,
        Status.Code.INVALID_ARGUMENT,
        "image",
        () -> createEnvironment(b -> b.setImage("bad image!")));
    // settings of the kubernetes driver, on a local environment, where they would do nothing
    expect(
        softly,
        Status.Code.INVALID_ARGUMENT,
        "image",
        () -> createEnvironment(b -> b.setImage("python:3.12")));
    expect(
        softly,
        Status.Code.INVALID_ARGUMENT,
        "runtime_class_name",
        () -> createEnvironment(b -> b.setRuntimeClassName("gvisor")));
    expect(
        softly,
        Status.Code.INVALID_ARGUMENT,
        "warm_pool_size",
        () -> createEnvironment(b -> b.setWarmPoolSize(2)));
    expect(
        softly,
        Status.Code.INVALID_ARGUMENT,
        "setup_commands[0]",
        () -> createEnvironment(b -> b.addSetupCommands("")));
    expect(
        softly,
        Status.Code.FAILED_PRECONDITION,
        "archived",
        () ->
            environments.updateEnvironment(
                UpdateEnvironmentRequest.newBuilder()
                    .setEnvironmentId(archived.getId())
                    .setName("renamed")
                    .build()));
    expect(
        softly,
        Status.Code.NOT_FOUND,
        "environment",
        () ->
            environments.getEnvironment(
                GetEnvironmentRequest.newBuilder().setEnvironmentId(UNKNOWN_ENVIRONMENT).build()));
    String agentId = Fixtures.createAgent(agents);
    expect(
        softly,
        Status.Code.NOT_FOUND,
        "environment",
        () ->
            sessions.createSession(
                CreateSessionRequest.newBuilder()
                    .setAgentId(agentId)
                    .setEnvironmentId(UNKNOWN_ENVIRONMENT)
                    .build()));
    expect(
        softly,
        Status.Code.FAILED_PRECONDITION,
        "archived",
        () ->
            sessions.createSession(
                CreateSessionRequest.newBuilder()
                    .setAgentId(agentId)
                    .setEnvironmentId(archived.getId())
                    .build()));
    expect(
        softly,
        Status.Code.INVALID_ARGUMENT,
        "environment_id",
        () ->
            sessions.createSession(
                CreateSessionRequest.newBuilder()
                    .setAgentId(agentId)
                    .setEnvironmentId("env_nope")
                    .build()));
    // a field's own check comes before any lookup or state
    expect(
        softly,
        Status.Code.INVALID_ARGUMENT,
        "vault_ids[0]",
        () ->
            sessions.createSession(
                CreateSessionRequest.newBuilder()
                    .setAgentId(agentId)
                    .setEnvironmentId(archived.getId())
                    .addVaultIds("vlt_x")
                    .build()));
    expect(
        softly,
        Status.Code.INVALID_ARGUMENT,
        "environment_id",
        () ->
            sandboxes.provision(
                ProvisionRequest.newBuilder()
                    .setSessionId("sesn_00000000000000000000000000")
                    .setEnvironmentId("garbage")
                    .build()));
    softly.assertAll();

    // And nothing changed
    assertThat(run(sandbox, "read", "{\"file_path\":\"keep.txt\"}")).isEqualTo("     1\toriginal");
    assertThat(live().stream().map(Sandbox::getId).toList())
        .containsExactlyInAnyOrderElementsOf(liveBefore);
    assertThat(
            environments
                .getEnvironment(
                    GetEnvironmentRequest.newBuilder().setEnvironmentId(archived.getId()).build())
                .getEnvironment()
                .getName())
        .isEqualTo("old");
    release(sandbox);
  }

  private void expect(
      SoftAssertions softly, Status.Code code, String mentions, Supplier<Object> call) {
    StatusRuntimeException failure = null;
    Object answer = null;
    try {
      answer = call.get();
    } catch (StatusRuntimeException e) {
      failure = e;
    }
    softly.assertThat(failure).as(mentions + " fails, but answered " + answer).isNotNull();
    if (failure != null) {
      String description = String.valueOf(failure.getStatus().getDescription());
      softly.assertThat(failure.getStatus().getCode()).as(description).isEqualTo(code);
      softly.assertThat(description).contains(mentions);
      softly
          .assertThat(description)
          .as("leaks internals")
          .doesNotContainPattern("Exception|java\\.|dev\\.corral");
    }
  }

  private Environment createEnvironment(
      java.util.function.UnaryOperator<CreateEnvironmentRequest.Builder> change) {
    return environments
        .createEnvironment(change.apply(CreateEnvironmentRequest.newBuilder().setName("e")).build())
        .getEnvironment();
  }

  private Environment getEnvironment(String environmentId) {
    return environments
        .getEnvironment(GetEnvironmentRequest.newBuilder().setEnvironmentId(environmentId).build())
        .getEnvironment();
  }

  private Sandbox provision(String environmentId) {
    return sandboxes
        .provision(ProvisionRequest.newBuilder().setEnvironmentId(environmentId).build())
        .getSandbox();
  }

  private Sandbox release(Sandbox sandbox) {
    return sandboxes
        .releaseSandbox(ReleaseSandboxRequest.newBuilder().setSandboxId(sandbox.getId()).build())
        .getSandbox();
  }

  private List<Sandbox> ofSession(String sessionId, boolean includeEnded) {
    return sandboxes
        .listSandboxes(
            ListSandboxesRequest.newBuilder()
                .setSessionId(sessionId)
                .setIncludeEnded(includeEnded)
                .build())
        .getSandboxesList();
  }

  private List<Sandbox> live() {
    return sandboxes
        .listSandboxes(ListSandboxesRequest.newBuilder().setPageSize(100).build())
        .getSandboxesList();
  }

  private ExecuteResponse execute(String sandboxId, String name, String inputJson) {
    return sandboxes.execute(
        ExecuteRequest.newBuilder()
            .setSandboxId(sandboxId)
            .setName(name)
            .setInputJson(inputJson)
            .build());
  }

  private String run(Sandbox sandbox, String name, String inputJson) {
    ExecuteResponse response = execute(sandbox.getId(), name, inputJson);
    assertThat(response.getIsError()).as(response.getOutput()).isFalse();
    return response.getOutput();
  }
}
