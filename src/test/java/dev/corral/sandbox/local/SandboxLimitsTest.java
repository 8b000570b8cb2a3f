package dev.corral.sandbox.local;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import dev.corral.proto.v1.ExecuteResponse;
import dev.corral.proto.v1.GetSandboxRequest;
import dev.corral.proto.v1.LimitEnforcement;
import dev.corral.proto.v1.LimitScope;
import dev.corral.proto.v1.ProvisionRequest;
import dev.corral.proto.v1.ReleaseSandboxRequest;
import dev.corral.proto.v1.Sandbox;
import dev.corral.proto.v1.SandboxResources;
import dev.corral.proto.v1.SandboxServiceGrpc;
import dev.corral.proto.v1.SandboxState;
import io.quarkus.grpc.GrpcClient;
import io.quarkus.test.junit.QuarkusTest;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * A sandbox that misbehaves (a fork bomb, a disk fill, a memory hog) is stopped by its own limits,
 * and another sandbox keeps answering meanwhile.
 */
@QuarkusTest
class SandboxLimitsTest {

  private static final SandboxResources SMALL =
      SandboxResources.newBuilder()
          .setMaxProcesses(32)
          .setDiskBytes(16L << 20)
          .setMemoryBytes(256L << 20)
          .setCallTimeoutMs(4_000)
          .build();

  @GrpcClient("corral")
  SandboxServiceGrpc.SandboxServiceBlockingStub sandboxes;

  private final List<String> provisioned = new ArrayList<>();

  @AfterEach
  void release() {
    provisioned.forEach(
        id ->
            sandboxes.releaseSandbox(ReleaseSandboxRequest.newBuilder().setSandboxId(id).build()));
  }

  @Test
  void aForkBombIsContainedAndAnotherSandboxKeepsAnswering() throws Exception {
    // Given
    String bomb = provision();
    String neighbour = provision();

    // When one sandbox forks without end while the other is called
    long processesBefore = ProcessHandle.current().descendants().count();
    CompletableFuture<ExecuteResponse> bombing =
        CompletableFuture.supplyAsync(
            () -> execute(bomb, "bomb() { bomb | bomb & }; bomb; sleep 30"));
    await()
        .atMost(Duration.ofSeconds(10))
        .until(() -> ProcessHandle.current().descendants().count() >= processesBefore + 20);
    long start = System.nanoTime();
    ExecuteResponse answer = execute(neighbour, "echo still here; ls /proc | grep -c '^[0-9]'");
    long neighbourMs = (System.nanoTime() - start) / 1_000_000;
    ExecuteResponse bombed = bombing.get(30, TimeUnit.SECONDS);

    // Then the neighbour answered at once and saw none of the bomb's processes
    assertThat(answer.getOutput().lines().toList()).first().isEqualTo("still here");
    assertThat(Integer.parseInt(answer.getOutput().lines().toList().get(1))).isLessThan(10);
    assertThat(neighbourMs).isLessThan(3_000);
    // and the bomb was cut at the call's time limit, its processes killed, the sandbox usable
    assertThat(bombed.getIsError()).isTrue();
    assertThat(bombed.getOutput()).contains("killed");
    ExecuteResponse after = execute(bomb, "ls /proc | grep -c '^[0-9]'");
    assertThat(after.getIsError()).as(after.getOutput()).isFalse();
    assertThat(Integer.parseInt(after.getOutput().strip())).isLessThan(10);
  }

  @Test
  void fourBusyProcessesGetNoMoreCpuThanTheSandboxsShareOfACore() {
    // Given a sandbox of half a core
    String id =
        sandboxes
            .provision(
                ProvisionRequest.newBuilder()
                    .setResources(SMALL.toBuilder().setCpuMillis(500).setCallTimeoutMs(20_000))
                    .build())
            .getSandbox()
            .getId();
    provisioned.add(id);

    // When four processes spin for 3 s, and the shell adds up the CPU time they used
    ExecuteResponse spun =
        execute(
            id,
            "for i in 1 2 3 4; do timeout 3 sh -c 'while :; do :; done' & done; wait;"
                + " read -r -a s < /proc/$$/stat; echo $(( s[15] + s[16] )) $(getconf CLK_TCK)");

    // Then they shared half a core (with a little slack for the quota's periods), where on their
    // own they would have taken every core of the host
    String[] ticks = spun.getOutput().strip().split(" ");
    double cores = Double.parseDouble(ticks[0]) / Double.parseDouble(ticks[1]) / 3.0;
    assertThat(cores).as(spun.getOutput()).isBetween(0.2, 0.65);
  }

  @Test
  void aDiskFillStopsAtTheSandboxsDiskLimitAndAnotherSandboxCanStillWrite() {
    // Given
    String filler = provision();
    String neighbour = provision();

    // When
    ExecuteResponse filled =
        execute(filler, "head -c 100000000 /dev/zero > big; echo rc=$?; du -m big | cut -f1");
    ExecuteResponse tmp = execute(filler, "head -c 100000000 /dev/zero > /tmp/big; echo rc=$?");
    ExecuteResponse written = execute(neighbour, "head -c 1000000 /dev/zero > f && wc -c < f");
    ExecuteResponse shm =
        execute(
            filler,
            "for i in 1 2 3 4 5 6 7 8; do head -c 10000000 /dev/zero > /dev/shm/$i; done;"
                + " du -sm /dev/shm | cut -f1");
    ExecuteResponse dev =
        execute(
            filler,
            "mkdir /dev/more 2>/dev/null || echo dev-refused;"
                + " { head -c 1000 /dev/zero > /dev/huge; } 2>/dev/null || echo file-refused;"
                + " echo ok > /dev/null && echo null-writable");

    // Then
    assertThat(filled.getOutput()).contains("rc=1");
    assertThat(Integer.parseInt(filled.getOutput().lines().reduce((a, b) -> b).orElseThrow()))
        .isLessThanOrEqualTo(16);
    assertThat(tmp.getOutput()).contains("rc=1");
    assertThat(written.getOutput().strip()).isEqualTo("1000000");
    // /dev/shm holds no more than the disk limit either, and /dev itself takes no files
    assertThat(Integer.parseInt(shm.getOutput().lines().reduce((a, b) -> b).orElseThrow().strip()))
        .isLessThanOrEqualTo(16);
    assertThat(dev.getOutput().lines())
        .containsExactly("dev-refused", "file-refused", "null-writable");
  }

  @Test
  void aProcessCannotTakeMoreMemoryThanTheSandboxAllows() {
    // Given
    String hog = provision();

    // When bash tries to hold 512 MiB in a variable
    ExecuteResponse answer =
        execute(hog, "x=$(head -c 536870912 /dev/zero | tr '\\\\0' a); echo ${#x}");

    // Then the allocation fails, and the sandbox answers afterwards
    assertThat(answer.getOutput()).doesNotContain("536870912");
    assertThat(execute(hog, "echo fine").getOutput()).isEqualTo("fine");
  }

  @Test
  void eightProcessesOf150MiBDoNotGetMoreThanTheSandboxsMemory() {
    // Given a 256 MiB sandbox and its neighbour
    String balloon = provision();
    String neighbour = provision();
    Sandbox sandbox = get(balloon);
    boolean perSandbox =
        sandbox.getLimitsEnforcedList().stream()
            .anyMatch(
                limit ->
                    limit.getLimit().equals("memory_bytes")
                        && limit.getScope() == LimitScope.LIMIT_SCOPE_SANDBOX);

    // When eight processes each try to hold 150 MiB at once
    ExecuteResponse answer =
        execute(
            balloon,
            "for i in 1 2 3 4 5 6 7 8; do perl -e '$x = 1 x (150 << 20); sleep 2; print qq(held\\n)' &"
                + " done; wait");

    // Then (with its cgroup) no two of them held it together: the kernel stopped the others, the
    // call says so, and the sandbox and its neighbour still answer
    if (perSandbox) {
      assertThat(answer.getIsError()).as(answer.getOutput()).isTrue();
      assertThat(answer.getOutput())
          .contains("the sandbox ran out of memory (its limit is 256 MiB");
      assertThat(answer.getOutput().lines().filter("held"::equals).count()).isLessThanOrEqualTo(1);
    } else {
      // without cgroups, memory is limited per process only, and GetSandbox says so
      assertThat(sandbox.getLimitsEnforcedList())
          .anyMatch(
              limit ->
                  limit.getLimit().equals("memory_bytes")
                      && limit.getScope() == LimitScope.LIMIT_SCOPE_PROCESS);
    }
    assertThat(execute(balloon, "echo usable").getOutput()).isEqualTo("usable");
    assertThat(execute(neighbour, "echo fine").getOutput()).isEqualTo("fine");
  }

  @Test
  void memoryThatNoProcessHoldsIsCountedAndTheModelIsToldWhatRanOut() {
    // Given a sandbox whose memory is counted for the whole sandbox (its cgroup), of the least
    // memory there is and a call time limit far past what filling it takes, so that the memory
    // limit ends the call and not the clock (at 256 MiB and 4 s, a busy machine reached the clock)
    String sandbox =
        sandboxes
            .provision(
                ProvisionRequest.newBuilder()
                    .setResources(
                        SMALL.toBuilder().setMemoryBytes(64L << 20).setCallTimeoutMs(120_000))
                    .build())
            .getSandbox()
            .getId();
    provisioned.add(sandbox);
    boolean perSandbox =
        get(sandbox).getLimitsEnforcedList().stream()
            .anyMatch(
                limit ->
                    limit.getLimit().equals("memory_bytes")
                        && limit.getScope() == LimitScope.LIMIT_SCOPE_SANDBOX);
    if (!perSandbox) {
      // without cgroups, memory is limited per process only, and GetSandbox says so
      assertThat(get(sandbox).getLimitsEnforcedList())
          .anyMatch(
              limit ->
                  limit.getLimit().equals("memory_bytes")
                      && limit.getScope() == LimitScope.LIMIT_SCOPE_PROCESS);
      return;
    }

    // When a call makes empty files until the kernel's memory for them passes the limit
    String said;
    try {
      ExecuteResponse answer =
          execute(
              sandbox,
              "perl -e 'for (1..3_000_000) { open my $h, \">\", \"/workspace/f$_\" or die \"$!\\n\" }'");
      said = answer.getOutput();
    } catch (io.grpc.StatusRuntimeException lost) {
      said = lost.getStatus().getDescription();
    }

    // Then whatever the kernel stopped (the call, or the whole sandbox), what comes back says
    // the sandbox ran out of memory
    assertThat(said).contains("out of memory");
  }

  @Test
  void theDiskLimitIsOneTmpfsSizeAndTheSandboxSaysSo() {
    // Given a sandbox of 16 MiB of disk
    String id = provision();

    // When it fills 12 MiB of its workspace and 12 MiB of /tmp
    ExecuteResponse filled =
        execute(
            id,
            "head -c 12M /dev/zero > /workspace/a && head -c 12M /dev/zero > /tmp/b && echo both");
    ExecuteResponse over = execute(id, "head -c 8M /dev/zero > /workspace/c");

    // Then each is a tmpfs of its own of that size (a file past it does not fit), and what the
    // sandbox reports of the limit says as much rather than a bound on the whole sandbox
    assertThat(filled.getOutput()).isEqualTo("both");
    assertThat(over.getOutput()).contains("No space left on device");
    assertThat(get(id).getLimitsEnforcedList())
        .filteredOn(enforced -> enforced.getLimit().equals("disk_bytes"))
        .singleElement()
        .satisfies(
            enforced ->
                assertThat(enforced.getMechanism())
                    .contains("/workspace, /tmp and /dev/shm")
                    .contains("three times"));
  }

  @Test
  void theSandboxCannotMakeAUserNamespaceOfItsOwnToMountPastItsLimits() {
    // Given a sandbox of 16 MiB of disk
    String id = provision();

    // When its code makes a user namespace, in which it would hold every capability, to mount a
    // tmpfs of no size limit
    ExecuteResponse nested =
        execute(
            id, "unshare -Urm sh -c 'mount -t tmpfs none /tmp && echo mounted'; echo \"rc=$?\"");

    // Then no namespace is made, so nothing is mounted
    assertThat(nested.getOutput()).doesNotContain("mounted").contains("rc=1");
  }

  @Test
  void asRootEachSandboxHasACgroupCarryingItsLimits() throws java.io.IOException {
    // Given
    org.junit.jupiter.api.Assumptions.assumeTrue(
        "0".equals(Cgroups.currentUid()), "cgroups need root here");
    String id = provision();

    // When
    Sandbox sandbox = get(id);
    execute(id, "sleep 7.123 > /dev/null 2>&1 &");
    ProcessHandle sleeper =
        ProcessHandle.allProcesses()
            .filter(p -> p.info().commandLine().orElse("").equals("/usr/bin/sleep 7.123"))
            .findFirst()
            .orElseThrow();
    String cgroup =
        java.nio.file.Files.readString(
            java.nio.file.Path.of("/proc", Long.toString(sleeper.pid()), "cgroup"));

    // Then every limit says how it is enforced, memory, processes and CPU for the whole sandbox
    assertThat(sandbox.getLimitsEnforcedList())
        .extracting(LimitEnforcement::getLimit)
        .containsExactlyInAnyOrder(
            "memory_bytes",
            "max_processes",
            "cpu_millis",
            "disk_bytes",
            "call_timeout_ms",
            "lifetime_seconds");
    for (String limit : List.of("memory_bytes", "max_processes", "cpu_millis")) {
      assertThat(sandbox.getLimitsEnforcedList())
          .filteredOn(enforced -> enforced.getLimit().equals(limit))
          .singleElement()
          .satisfies(
              enforced -> {
                assertThat(enforced.getScope()).isEqualTo(LimitScope.LIMIT_SCOPE_SANDBOX);
                assertThat(enforced.getMechanism()).startsWith("cgroup v");
              });
    }
    // and its processes are in it, in every controller that carries a limit
    assertThat(cgroup.lines().filter(line -> line.contains("/sbx-")).count())
        .isGreaterThanOrEqualTo(1);
    // and (cgroup v1) its pages are never swapped out, swap accounting or not
    java.util.Optional<String> memory =
        cgroup.lines().filter(line -> line.matches("[0-9]+:memory:/.*")).findFirst();
    if (memory.isPresent()) {
      assertThat(
              java.nio.file.Files.readString(
                      java.nio.file.Path.of(
                          "/sys/fs/cgroup/memory",
                          memory.get().split(":", 3)[2],
                          "memory.swappiness"))
                  .strip())
          .isEqualTo("0");
    }
  }

  @Test
  void aSandboxReadsReleasedTheMomentItsLifetimeEnds() {
    // Given a sandbox that lives two seconds
    Sandbox sandbox =
        sandboxes
            .provision(
                ProvisionRequest.newBuilder()
                    .setResources(SandboxResources.newBuilder().setLifetimeSeconds(2))
                    .build())
            .getSandbox();
    provisioned.add(sandbox.getId());
    java.time.Instant expires =
        java.time.Instant.ofEpochSecond(
            sandbox.getExpiresAt().getSeconds(), sandbox.getExpiresAt().getNanos());

    // When its lifetime ends
    await()
        .atMost(Duration.ofSeconds(4))
        .pollInterval(Duration.ofMillis(20))
        .until(() -> get(sandbox.getId()).getState() == SandboxState.SANDBOX_STATE_RELEASED);
    java.time.Instant seenAt = java.time.Instant.now();

    // Then it was released at that moment, said why, and its processes are gone
    Sandbox released = get(sandbox.getId());
    assertThat(java.time.Duration.between(expires, seenAt)).isLessThan(Duration.ofMillis(500));
    assertThat(released.getReleasedAt()).isEqualTo(sandbox.getExpiresAt());
    assertThat(released.getReleaseReason()).isEqualTo("its lifetime of 2 s ended");
    org.assertj.core.api.Assertions.assertThatThrownBy(() -> execute(sandbox.getId(), "echo no"))
        .isInstanceOfSatisfying(
            io.grpc.StatusRuntimeException.class,
            refused -> {
              assertThat(refused.getStatus().getCode())
                  .isEqualTo(io.grpc.Status.Code.FAILED_PRECONDITION);
              assertThat(refused.getStatus().getDescription())
                  .contains("is released (its lifetime of 2 s ended)");
            });
  }

  private Sandbox get(String id) {
    return sandboxes
        .getSandbox(GetSandboxRequest.newBuilder().setSandboxId(id).build())
        .getSandbox();
  }

  private String provision() {
    String id =
        sandboxes
            .provision(ProvisionRequest.newBuilder().setResources(SMALL).build())
            .getSandbox()
            .getId();
    provisioned.add(id);
    return id;
  }

  private ExecuteResponse execute(String sandbox, String command) {
    return dev.corral.testing.Fixtures.bash(sandboxes, sandbox, command);
  }
}
