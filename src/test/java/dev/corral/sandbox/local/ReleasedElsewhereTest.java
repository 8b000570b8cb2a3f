package dev.corral.sandbox.local;

import static org.assertj.core.api.Assertions.assertThat;

import dev.corral.proto.v1.ExecuteRequest;
import dev.corral.proto.v1.ExecuteResponse;
import dev.corral.proto.v1.ProvisionRequest;
import dev.corral.proto.v1.SandboxResources;
import dev.corral.proto.v1.SandboxServiceGrpc;
import dev.corral.proto.v1.SandboxState;
import dev.corral.sandbox.SandboxRepository;
import io.quarkus.grpc.GrpcClient;
import io.quarkus.test.junit.QuarkusTest;
import jakarta.inject.Inject;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * A local sandbox released through another replica (its record ended there) stops here within a
 * second or so, with its call under way, not at this replica's next reconciler pass (30 s).
 */
@QuarkusTest
class ReleasedElsewhereTest {

  @GrpcClient("corral")
  SandboxServiceGrpc.SandboxServiceBlockingStub sandboxes;

  @Inject SandboxRepository repository;

  @Inject LocalDriver local;

  @Test
  void aSandboxWhoseRecordEndedElsewhereIsStoppedHereWithItsCall() throws Exception {
    // Given a sandbox of this replica running a long call
    String id =
        sandboxes
            .provision(
                ProvisionRequest.newBuilder()
                    .setResources(SandboxResources.newBuilder().setCallTimeoutMs(120_000))
                    .build())
            .getSandbox()
            .getId();
    CompletableFuture<ExecuteResponse> call =
        CompletableFuture.supplyAsync(
            () ->
                sandboxes.execute(
                    ExecuteRequest.newBuilder()
                        .setSandboxId(id)
                        .setName("bash")
                        .setInputJson("{\"command\":\"sleep 67.391; echo late\"}")
                        .build()));
    org.awaitility.Awaitility.await()
        .atMost(Duration.ofSeconds(10))
        .until(() -> processes("sleep 67.391") == 1);

    // When another replica releases it (it ends the record, and cannot reach the process)
    assertThat(
            repository
                .end(id, SandboxState.SANDBOX_STATE_RELEASED, "released through another replica")
                .await()
                .atMost(Duration.ofSeconds(10)))
        .isPresent();

    // Then it stops here within seconds, its call included
    ExecuteResponse answer = call.get(8, TimeUnit.SECONDS);
    assertThat(answer.getIsError()).isTrue();
    assertThat(answer.getOutput()).doesNotContain("late");
    assertThat(local.hosts(id)).isFalse();
    org.awaitility.Awaitility.await()
        .atMost(Duration.ofSeconds(5))
        .until(() -> processes("sleep 67.391") == 0);
  }

  private static long processes(String commandLine) {
    return ProcessHandle.allProcesses()
        .filter(process -> process.info().commandLine().orElse("").endsWith(commandLine))
        .count();
  }
}
