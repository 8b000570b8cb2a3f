package dev.corral.sandbox.local;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import dev.corral.proto.v1.ExecuteRequest;
import dev.corral.proto.v1.ExecuteResponse;
import dev.corral.proto.v1.ProvisionRequest;
import dev.corral.proto.v1.ReleaseSandboxRequest;
import dev.corral.proto.v1.SandboxResources;
import dev.corral.proto.v1.SandboxServiceGrpc;
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
  void aDiskFillStopsAtTheSandboxsDiskLimitAndAnotherSandboxCanStillWrite() {
    // Given
    String filler = provision();
    String neighbour = provision();

    // When
    ExecuteResponse filled =
        execute(filler, "head -c 100000000 /dev/zero > big; echo rc=$?; du -m big | cut -f1");
    ExecuteResponse tmp = execute(filler, "head -c 100000000 /dev/zero > /tmp/big; echo rc=$?");
    ExecuteResponse written = execute(neighbour, "head -c 1000000 /dev/zero > f && wc -c < f");

    // Then
    assertThat(filled.getOutput()).contains("rc=1");
    assertThat(Integer.parseInt(filled.getOutput().lines().reduce((a, b) -> b).orElseThrow()))
        .isLessThanOrEqualTo(16);
    assertThat(tmp.getOutput()).contains("rc=1");
    assertThat(written.getOutput().strip()).isEqualTo("1000000");
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
    return sandboxes.execute(
        ExecuteRequest.newBuilder()
            .setSandboxId(sandbox)
            .setName("bash")
            .setInputJson("{\"command\":\"" + command.replace("\"", "\\\"") + "\"}")
            .build());
  }
}
