package dev.corral.sandbox.local;

import static org.assertj.core.api.Assertions.assertThat;

import dev.corral.proto.v1.ExecuteResponse;
import dev.corral.proto.v1.GetSandboxRequest;
import dev.corral.proto.v1.LimitEnforcement;
import dev.corral.proto.v1.LimitScope;
import dev.corral.proto.v1.ProvisionRequest;
import dev.corral.proto.v1.ReleaseSandboxRequest;
import dev.corral.proto.v1.SandboxResources;
import dev.corral.proto.v1.SandboxServiceGrpc;
import io.quarkus.grpc.GrpcClient;
import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.TestProfile;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * Local sandboxes whose own limits add up to more than the host can give share one budget: when
 * they exhaust it together, the kernel stops one of their processes (never corral or its database),
 * and the sandbox it stopped is told that the shared memory ran out, not its own limit.
 */
@QuarkusTest
@TestProfile(SmallReplica.class)
class SharedSandboxMemoryTest {

  /** Each sandbox may have 248 MiB, so two of them may want more than their 256 MiB together. */
  private static final SandboxResources BELOW_THE_BUDGET =
      SandboxResources.newBuilder().setMemoryBytes(248L << 20).setCallTimeoutMs(60_000).build();

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
  void sandboxesThatTogetherWantMoreThanTheirBudgetAreStoppedAmongThemselvesAndToldWhy() {
    // Given two sandboxes whose own limits are each below the replica's budget
    String holder = provision();
    String grower = provision();
    LimitEnforcement memory =
        sandboxes
            .getSandbox(GetSandboxRequest.newBuilder().setSandboxId(grower).build())
            .getSandbox()
            .getLimitsEnforcedList()
            .stream()
            .filter(limit -> limit.getLimit().equals("memory_bytes"))
            .findFirst()
            .orElseThrow();
    if (memory.getScope() != LimitScope.LIMIT_SCOPE_SANDBOX) {
      // without cgroups memory is limited per process, and GetSandbox says so: nothing is shared
      assertThat(memory.getScope()).isEqualTo(LimitScope.LIMIT_SCOPE_PROCESS);
      return;
    }
    // and the sandbox says what it shares
    assertThat(memory.getMechanism())
        .contains(
            "all local sandboxes of this replica share "
                + (SmallReplica.MEMORY_BUDGET >> 20)
                + " MiB");

    // When one holds 60 MiB and the other then takes 200 MiB, within its own 248 MiB (the kernel
    // stops the process with the most memory when it runs out: the one growing past 190 MiB)
    assertThat(
            execute(
                    holder,
                    "(perl -e '$| = 1; $x = q(); vec($x, (60 << 20) - 1, 8) = 1; print qq(held\\n); sleep 60'"
                        + " > /tmp/held 2>&1 &); while [ ! -s /tmp/held ]; do sleep 0.1; done; cat"
                        + " /tmp/held")
                .getOutput())
        .isEqualTo("held");
    ExecuteResponse grown =
        execute(grower, "perl -e '$x = q(); vec($x, (200 << 20) - 1, 8) = 1; print qq(grew\\n)'");

    // Then the kernel stopped the growing process, and its call says the shared memory ran out
    assertThat(grown.getIsError()).as(grown.getOutput()).isTrue();
    assertThat(grown.getOutput().lines()).doesNotContain("grew");
    assertThat(grown.getOutput())
        .contains("the host's memory for sandboxes ran out")
        .contains("its own limit of 248 MiB was not reached")
        .doesNotContain("the sandbox ran out of memory (its limit is");
    // and both sandboxes still answer
    assertThat(execute(grower, "echo usable").getOutput()).isEqualTo("usable");
    assertThat(execute(holder, "echo fine").getOutput()).isEqualTo("fine");
  }

  private String provision() {
    String id =
        sandboxes
            .provision(ProvisionRequest.newBuilder().setResources(BELOW_THE_BUDGET).build())
            .getSandbox()
            .getId();
    provisioned.add(id);
    return id;
  }

  private ExecuteResponse execute(String sandbox, String command) {
    return dev.corral.testing.Fixtures.bash(sandboxes, sandbox, command);
  }
}
