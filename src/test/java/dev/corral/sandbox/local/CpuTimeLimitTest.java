package dev.corral.sandbox.local;

import static org.assertj.core.api.Assertions.assertThat;

import dev.corral.proto.v1.SandboxResources;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;
import org.junit.jupiter.api.Test;

/**
 * A sandbox process's CPU-time limit (RLIMIT_CPU, which kills it) is what it can use in the
 * sandbox's lifetime on every core it may use: a process of four busy threads in a 4-core sandbox
 * of 600 s was killed after 150 s with the lifetime as its limit, and the model was told nothing.
 */
class CpuTimeLimitTest {

  private static SandboxResources resources(int cpuMillis, int lifetimeSeconds) {
    return SandboxResources.newBuilder()
        .setCpuMillis(cpuMillis)
        .setLifetimeSeconds(lifetimeSeconds)
        .setMaxProcesses(32)
        .setDiskBytes(16L << 20)
        .setMemoryBytes(256L << 20)
        .build();
  }

  @Test
  void theLimitIsTheLifetimeOnEveryCoreTheSandboxMayUse() {
    // with a CPU quota: its cores, whole
    assertThat(Bubblewrap.cpuSeconds(resources(4_000, 600), true)).isEqualTo(2_400);
    assertThat(Bubblewrap.cpuSeconds(resources(1_500, 600), true)).isEqualTo(1_200);
    assertThat(Bubblewrap.cpuSeconds(resources(250, 600), true)).isEqualTo(600);
    // without cgroups, a process may use every core of the host
    assertThat(Bubblewrap.cpuSeconds(resources(4_000, 600), false))
        .isEqualTo(600L * Runtime.getRuntime().availableProcessors());
    // and a short lifetime still leaves a minute
    assertThat(Bubblewrap.cpuSeconds(resources(1_000, 10), true)).isEqualTo(60);
  }

  @Test
  void theCommandCarriesThatLimit() {
    List<String> argv =
        Bubblewrap.command(
            "/usr/bin/bwrap",
            resources(4_000, 600),
            -1,
            List.of(Path.of("/sys/fs/cgroup/cpu/x/cgroup.procs")),
            Optional.empty(),
            3128,
            "/launcher.pl",
            Optional.empty());
    assertThat(argv).contains("--cpu=2400");
  }
}
