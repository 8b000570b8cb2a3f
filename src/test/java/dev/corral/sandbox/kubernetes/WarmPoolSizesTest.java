package dev.corral.sandbox.kubernetes;

import static org.assertj.core.api.Assertions.assertThat;

import dev.corral.agent.EnvironmentRepository;
import dev.corral.proto.v1.Environment;
import java.util.List;
import org.junit.jupiter.api.Test;

/** A tenant's warm pools together stay within its sandbox limit, oldest environments first. */
class WarmPoolSizesTest {

  @Test
  void aTenantsPoolsTogetherHoldAtMostItsLimitAndTheOldestEnvironmentsFillFirst() {
    // Given one tenant asking for 100 warm pods in each of three environments, and another tenant
    List<EnvironmentRepository.Owned> active =
        List.of(
            owned("tenant-a", "env-1", 100),
            owned("tenant-b", "env-2", 5),
            owned("tenant-a", "env-3", 100),
            owned("tenant-a", "env-4", 100));

    // When the pools are sized with a limit of 32 per tenant
    var sizes = WarmPools.poolSizes(active, 32);

    // Then the first tenant's pools hold 32 in all, the other tenant keeps its 5
    assertThat(sizes)
        .containsEntry("env-1", 32)
        .containsEntry("env-3", 0)
        .containsEntry("env-4", 0);
    assertThat(sizes).containsEntry("env-2", 5);
  }

  @Test
  void poolsThatFitAreKeptWhole() {
    var sizes =
        WarmPools.poolSizes(
            List.of(owned("t", "a", 10), owned("t", "b", 12), owned("t", "c", 20)), 32);

    assertThat(sizes).containsEntry("a", 10).containsEntry("b", 12).containsEntry("c", 10);
  }

  private static EnvironmentRepository.Owned owned(String tenant, String id, int warmPool) {
    return new EnvironmentRepository.Owned(
        tenant, Environment.newBuilder().setId(id).setWarmPoolSize(warmPool).build());
  }
}
