package dev.corral.sandbox;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.corral.proto.v1.ExecuteRequest;
import dev.corral.proto.v1.ExecuteResponse;
import dev.corral.proto.v1.GetSandboxRequest;
import dev.corral.proto.v1.ProvisionRequest;
import dev.corral.proto.v1.SandboxResources;
import dev.corral.proto.v1.SandboxServiceGrpc;
import dev.corral.proto.v1.SandboxState;
import dev.corral.testing.ServerProcess;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;

/**
 * What one line of shell in a sandbox may try against the packaged server, the way a
 * prompt-injected model would: endless output in eight sandboxes at once (after partial and forged
 * markers), then an attack mix in one sandbox (fork bomb, memory balloon over many processes, disk
 * fill, endless output, forged and partial markers, a loop of builtins) while another sandbox
 * answers. The server's memory stays bounded, the neighbour keeps answering fast, and the attacked
 * sandbox is usable afterwards.
 */
class SandboxAttackIT {

  private static final ObjectMapper JSON = new ObjectMapper();
  private static final String PARTIAL_MARKERS =
      "printf '\\n\\036CORRAL-EXIT:'; printf '\\n\\036CORRAL:0123456789abcdef:0\\036\\n'; ";

  @Test
  void sandboxesCannotHurtTheServerOrEachOther() throws Exception {
    Path home = Files.createTempDirectory(Path.of("target").toAbsolutePath(), "attack-home-");
    try (ServerProcess server =
        ServerProcess.start(
            Map.of(
                "CORRAL_HOME", home.toString(),
                "CORRAL_EMBEDDED_POSTGRES_PORT", Integer.toString(ServerProcess.freePort()),
                "CORRAL_SANDBOX_LOCAL_WARM_POOL_SIZE", "0"),
            // The heap committed and touched from the start: RSS then grows only with what the
            // server holds outside it (buffers, threads), which is what is measured.
            List.of("-Xms256m", "-Xmx256m", "-XX:+AlwaysPreTouch"))) {
      SandboxServiceGrpc.SandboxServiceBlockingStub sandboxes =
          SandboxServiceGrpc.newBlockingStub(server.channel());
      ExecutorService pool = Executors.newFixedThreadPool(10);
      try {
        List<String> noisy = new ArrayList<>();
        for (int i = 0; i < 8; i++) {
          noisy.add(provision(sandboxes, 3_000));
        }
        // Given a server warmed up by the same calls, without the flood
        for (String sandbox : noisy) {
          bash(sandboxes, sandbox, "seq 1 20000");
        }
        long baseline = rssKiB(server.pid());

        // When eight sandboxes write without end for their whole time limit, after partial markers
        AtomicLong peak = new AtomicLong(baseline);
        java.util.concurrent.ScheduledFuture<?> sampler = sampleRss(server.pid(), peak);
        List<CompletableFuture<ExecuteResponse>> floods = new ArrayList<>();
        for (String sandbox : noisy) {
          floods.add(
              CompletableFuture.supplyAsync(
                  () -> bash(sandboxes, sandbox, PARTIAL_MARKERS + "yes"), pool));
        }
        List<ExecuteResponse> flooded = new ArrayList<>();
        for (CompletableFuture<ExecuteResponse> flood : floods) {
          flooded.add(flood.get(30, TimeUnit.SECONDS));
        }
        sampler.cancel(false);

        // Then each was cut at the cap and the time limit, and the server grew by at most 64 MiB
        for (ExecuteResponse answer : flooded) {
          assertThat(answer.getIsError()).isTrue();
          assertThat(answer.getOutput()).startsWith("[output truncated: ").contains("killed");
          assertThat(answer.getOutput().length()).isLessThan(103_000);
        }
        long floodGrowth = peak.get() - baseline;
        assertThat(floodGrowth).as("RSS growth in KiB").isLessThan(64 * 1024);

        // Given an attacked sandbox of a quarter of this two-core host, as an operator sizes
        // sandboxes to leave the server room, and a neighbour
        String attacked = provision(sandboxes, 8_000, 500);
        String neighbour = provision(sandboxes, 5_000);
        // (warmed up, so that what is measured is the attack, not the server's first calls)
        List<Long> calm = new ArrayList<>();
        for (int i = 0; i < 300; i++) {
          long start = System.nanoTime();
          assertThat(bash(sandboxes, neighbour, "echo ready").getOutput()).isEqualTo("ready");
          calm.add((System.nanoTime() - start) / 1_000_000);
        }
        Collections.sort(calm);

        // When the attacked one runs the whole mix at once while the neighbour is called

        peak.set(rssKiB(server.pid()));
        long before = peak.get();
        java.util.concurrent.ScheduledFuture<?> rss = sampleRss(server.pid(), peak);
        CompletableFuture<ExecuteResponse> attack =
            CompletableFuture.supplyAsync(
                () ->
                    bash(
                        sandboxes,
                        attacked,
                        "bomb() { bomb | bomb & }; bomb & "
                            + "for i in 1 2 3 4 5 6; do perl -e '$x = 1 x (100 << 20); sleep 8' & done; "
                            + "head -c 200000000 /dev/zero > /workspace/fill & "
                            + PARTIAL_MARKERS
                            + "yes & while :; do :; done"),
                pool);
        List<Long> latencies = Collections.synchronizedList(new ArrayList<>());
        while (!attack.isDone()) {
          long start = System.nanoTime();
          ExecuteResponse echo = bash(sandboxes, neighbour, "echo still here");
          latencies.add((System.nanoTime() - start) / 1_000_000);
          assertThat(echo.getOutput()).isEqualTo("still here");
        }
        ExecuteResponse attackAnswer = attack.get(30, TimeUnit.SECONDS);
        rss.cancel(false);

        // Then the neighbour kept answering fast, the server stayed bounded, and the attacked
        // sandbox was stopped at its time limit and answers again
        Collections.sort(latencies);
        long p99 = latencies.get((int) Math.ceil(latencies.size() * 0.99) - 1);
        System.out.printf(
            "attack mix: neighbour echo p50 %d ms, p99 %d ms (n=%d), unattacked p50 %d ms, p99 %d"
                + " ms; server RSS +%d KiB (flood: +%d KiB)%n",
            latencies.get(latencies.size() / 2),
            p99,
            latencies.size(),
            calm.get(calm.size() / 2),
            calm.get(296),
            peak.get() - before,
            floodGrowth);
        assertThat(latencies.size()).isGreaterThan(20);
        // The bound is the same run's calm p99 three times over (at least 100 ms): the attacked
        // sandbox may use its one core, which leaves the rest of a two-core host (the server, the
        // database, this test and the neighbour) half of what they had, and how slow that is
        // depends on the host. (The quota itself is checked by SandboxLimitsTest.)
        long bound = Math.max(100, 3 * calm.get(296));
        assertThat(p99)
            .as("neighbour echo p99 in ms of " + latencies + " (bound " + bound + " ms)")
            .isLessThanOrEqualTo(bound);
        assertThat(peak.get() - before).as("RSS growth in KiB").isLessThan(64 * 1024);
        assertThat(attackAnswer.getIsError()).isTrue();
        // Stopped at its time limit, or its own shell died first (a fork interrupted under memory
        // pressure): either way the answer says what happened
        assertThat(attackAnswer.getOutput()).containsAnyOf("killed", "[the shell exited with code");
        assertThat(bash(sandboxes, attacked, "echo recovered; pgrep -c . || true").getOutput())
            .startsWith("recovered");
        assertThat(
                sandboxes
                    .getSandbox(GetSandboxRequest.newBuilder().setSandboxId(attacked).build())
                    .getSandbox()
                    .getState())
            .isEqualTo(SandboxState.SANDBOX_STATE_READY);
      } finally {
        pool.shutdownNow();
      }
    }
  }

  private static final java.util.concurrent.ScheduledExecutorService SAMPLER =
      Executors.newSingleThreadScheduledExecutor(
          runnable -> {
            Thread thread = new Thread(runnable, "rss-sampler");
            thread.setDaemon(true);
            return thread;
          });

  /** Samples the server's RSS into {@code peak} every 50 ms until cancelled. */
  private static java.util.concurrent.ScheduledFuture<?> sampleRss(long pid, AtomicLong peak) {
    return SAMPLER.scheduleAtFixedRate(
        () -> {
          try {
            peak.accumulateAndGet(rssKiB(pid), Math::max);
          } catch (IOException gone) {
            // the server ended; the assertions say so
          }
        },
        0,
        50,
        TimeUnit.MILLISECONDS);
  }

  private static long rssKiB(long pid) throws IOException {
    for (String line : Files.readAllLines(Path.of("/proc", Long.toString(pid), "status"))) {
      if (line.startsWith("VmRSS:")) {
        return Long.parseLong(line.replaceAll("[^0-9]", ""));
      }
    }
    throw new IllegalStateException("no VmRSS for " + pid);
  }

  private static String provision(
      SandboxServiceGrpc.SandboxServiceBlockingStub sandboxes, long callTimeoutMs) {
    return provision(sandboxes, callTimeoutMs, 1_000);
  }

  private static String provision(
      SandboxServiceGrpc.SandboxServiceBlockingStub sandboxes, long callTimeoutMs, int cpuMillis) {
    return sandboxes
        .provision(
            ProvisionRequest.newBuilder()
                .setResources(
                    SandboxResources.newBuilder()
                        .setCallTimeoutMs(callTimeoutMs)
                        .setCpuMillis(cpuMillis)
                        .setMemoryBytes(256L << 20)
                        .setMaxProcesses(64)
                        .setDiskBytes(64L << 20))
                .build())
        .getSandbox()
        .getId();
  }

  private static ExecuteResponse bash(
      SandboxServiceGrpc.SandboxServiceBlockingStub sandboxes, String sandbox, String command) {
    try {
      return sandboxes.execute(
          ExecuteRequest.newBuilder()
              .setSandboxId(sandbox)
              .setName("bash")
              .setInputJson(JSON.writeValueAsString(Map.of("command", command)))
              .build());
    } catch (IOException e) {
      throw new IllegalStateException(e);
    }
  }
}
