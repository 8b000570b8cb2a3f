package dev.corral.sandbox.local;

import static org.assertj.core.api.Assertions.assertThat;

import dev.corral.proto.v1.ProvisionRequest;
import dev.corral.proto.v1.ReleaseSandboxRequest;
import dev.corral.proto.v1.SandboxResources;
import dev.corral.proto.v1.SandboxServiceGrpc;
import dev.corral.proto.v1.SandboxState;
import io.quarkus.grpc.GrpcClient;
import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.TestProfile;
import org.junit.jupiter.api.Test;

/**
 * Warm sandboxes wait for the limits they were started with; limits asked for once must not leave
 * them behind until the replica can start no sandbox that is asked for.
 */
@QuarkusTest
@TestProfile(SmallReplica.class)
class WarmPoolTest {

  @GrpcClient("corral")
  SandboxServiceGrpc.SandboxServiceBlockingStub sandboxes;

  @Test
  void warmSandboxesOfLimitsAskedForOnceNeverKeepOneAskedForFromStarting() {
    // Given sandboxes provisioned and released with limits of their own, one after another (each
    // kind of limits gets a warm pool of two)
    for (int i = 0; i < 10; i++) {
      SandboxResources own =
          SandboxResources.newBuilder()
              .setMaxProcesses(32)
              .setDiskBytes(16L << 20)
              .setMemoryBytes(256L << 20)
              .setCallTimeoutMs(4_000 + i)
              .build();

      // When each is asked for
      var provisioned =
          sandboxes.provision(ProvisionRequest.newBuilder().setResources(own).build()).getSandbox();

      // Then it starts, though the warm ones of the kinds before it would fill the replica
      assertThat(provisioned.getState())
          .as("sandbox " + i)
          .isEqualTo(SandboxState.SANDBOX_STATE_READY);
      sandboxes.releaseSandbox(
          ReleaseSandboxRequest.newBuilder().setSandboxId(provisioned.getId()).build());
    }
  }
}
