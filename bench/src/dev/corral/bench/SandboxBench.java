package dev.corral.bench;

import dev.corral.proto.v1.AgentServiceGrpc;
import dev.corral.proto.v1.AgentToolset;
import dev.corral.proto.v1.CreateAgentRequest;
import dev.corral.proto.v1.CreateEnvironmentRequest;
import dev.corral.proto.v1.CreateSessionRequest;
import dev.corral.proto.v1.EmitEventResponse;
import dev.corral.proto.v1.EnvironmentServiceGrpc;
import dev.corral.proto.v1.ExecuteRequest;
import dev.corral.proto.v1.ExecuteResponse;
import dev.corral.proto.v1.ListSandboxesRequest;
import dev.corral.proto.v1.ProvisionRequest;
import dev.corral.proto.v1.ReleaseSandboxRequest;
import dev.corral.proto.v1.Sandbox;
import dev.corral.proto.v1.SandboxDriver;
import dev.corral.proto.v1.SandboxServiceGrpc;
import dev.corral.proto.v1.Session;
import dev.corral.proto.v1.SessionServiceGrpc;
import dev.corral.proto.v1.Tool;
import dev.corral.testing.FakeAnthropic;
import dev.corral.testing.FakeAnthropic.Reply;
import dev.corral.testing.FakeKubelet;
import dev.corral.testing.Fixtures;
import dev.corral.testing.ServerProcess;
import io.fabric8.kubernetes.client.NamespacedKubernetesClient;
import io.fabric8.kubernetes.client.server.mock.KubernetesMockServer;
import io.fabric8.mockwebserver.MockWebServer;
import io.fabric8.mockwebserver.ServerRequest;
import io.fabric8.mockwebserver.ServerResponse;
import io.zonky.test.db.postgres.embedded.EmbeddedPostgres;
import java.net.InetAddress;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Queue;
import java.util.concurrent.TimeUnit;

/**
 * Sandboxes, measured through the gRPC API of packaged corral processes:
 *
 * <ul>
 *   <li>time-to-first-token of sessions whose first turn needs no tool, eager vs lazy sandbox
 *       provisioning (the seed's result), with the kubernetes driver against the fabric8 mock API
 *       server whose fake kubelet starts a pod in S = 2 s, and with the local driver;
 *   <li>local Provision + first Execute, against its floor: starting the same bubblewrap command
 *       line directly and running one command in it;
 *   <li>claiming a warm pool pod, against a cold Provision of the same environment.
 * </ul>
 */
public final class SandboxBench {

  private static final String NAMESPACE = "corral-sandboxes";
  private static final long POD_START_MS = 2_000;

  private SandboxBench() {}

  public static void main(String[] args) throws Exception {
    int samples = Integer.parseInt(args[0]);
    System.out.printf(
        "corral sandbox benchmark: %d samples, %d cores, pod start S = %d ms, %s%n",
        samples, Runtime.getRuntime().availableProcessors(), POD_START_MS, Instant.now());
    Map<ServerRequest, Queue<ServerResponse>> responses = new HashMap<>();
    FakeKubelet kubelet = new FakeKubelet(responses);
    kubelet.podStartDelayMs = POD_START_MS;
    KubernetesMockServer cluster =
        new KubernetesMockServer(
            new io.fabric8.mockwebserver.Context(), new MockWebServer(), responses, kubelet, false);
    cluster.init(InetAddress.getLoopbackAddress(), 0);
    try (EmbeddedPostgres postgres = BenchServers.postgres();
        FakeAnthropic model = FakeAnthropic.start();
        NamespacedKubernetesClient client = cluster.createClient()) {
      model.fallback(request -> Reply.text("no tool needed"));
      Map<String, String> environment = environment(postgres, model, cluster);
      List<String> lines = new ArrayList<>();
      try (ServerProcess lazy = ServerProcess.start(with(environment, "lazy", "lazy"));
          ServerProcess eager = ServerProcess.start(with(environment, "eager", "eager"))) {
        String k8s = createEnvironment(lazy, SandboxDriver.SANDBOX_DRIVER_KUBERNETES, 0);
        String local = createEnvironment(lazy, SandboxDriver.SANDBOX_DRIVER_LOCAL, 0);
        lines.addAll(ttft("kubernetes (S = 2 s)", lazy, eager, k8s, model, samples));
        lines.addAll(ttft("local (bubblewrap)", lazy, eager, local, model, samples * 3));
        lines.addAll(localProvision(lazy, samples * 5));
        lines.addAll(warmClaims(lazy, client, samples));
      }
      System.out.println();
      lines.forEach(System.out::println);
    } finally {
      cluster.destroy();
    }
    // The mock API server's Vert.x threads are not daemons.
    System.exit(0);
  }

  /** TTFT of a first turn without tools, lazy vs eager, interleaved so both see the same load. */
  private static List<String> ttft(
      String label,
      ServerProcess lazy,
      ServerProcess eager,
      String environmentId,
      FakeAnthropic model,
      int samples)
      throws Exception {
    Latencies lazyTtft = new Latencies();
    Latencies eagerTtft = new Latencies();
    String lazyAgent = agent(lazy);
    String eagerAgent = agent(eager);
    for (int i = 0; i < samples + 3; i++) {
      long l = ttftOnce(lazy, lazyAgent, environmentId, model);
      long e = ttftOnce(eager, eagerAgent, environmentId, model);
      if (i >= 3) {
        lazyTtft.record(l);
        eagerTtft.record(e);
      }
    }
    List<String> lines = new ArrayList<>();
    lines.add("TTFT, first turn needs no tool, " + label + ":");
    lines.add(String.format("  %-8s %s", "eager", eagerTtft.summary95()));
    lines.add(String.format("  %-8s %s", "lazy", lazyTtft.summary95()));
    lines.add(
        String.format(
            "  lazy vs eager: p50 %+.0f %%, p95 %+.0f %%   (the seed reports -60 %% / -90 %%)",
            change(lazyTtft.percentileMillis(50), eagerTtft.percentileMillis(50)),
            change(lazyTtft.percentileMillis(95), eagerTtft.percentileMillis(95))));
    return lines;
  }

  /** One session: user.message appended -> its first model request arrives. Releases after. */
  private static long ttftOnce(
      ServerProcess server, String agentId, String environmentId, FakeAnthropic model)
      throws Exception {
    SessionServiceGrpc.SessionServiceBlockingStub sessions =
        SessionServiceGrpc.newBlockingStub(server.channel());
    Session session =
        sessions
            .createSession(
                CreateSessionRequest.newBuilder()
                    .setAgentId(agentId)
                    .setEnvironmentId(environmentId)
                    .build())
            .getSession();
    String marker = "ttft-" + System.nanoTime();
    EmitEventResponse sent = sessions.emitEvent(Fixtures.emit(session.getId(), marker));
    Instant appended =
        Instant.ofEpochSecond(
            sent.getEvent().getProcessedAt().getSeconds(),
            sent.getEvent().getProcessedAt().getNanos());
    Instant arrived = BenchServers.awaitRequest(model, marker).arrivedAt();
    BenchServers.awaitIdle(sessions, session.getId());
    releaseAll(server, session.getId());
    return Duration.between(appended, arrived).toNanos();
  }

  /** Local Provision + first Execute, and the floor: the same bwrap command run directly. */
  private static List<String> localProvision(ServerProcess server, int samples) throws Exception {
    SandboxServiceGrpc.SandboxServiceBlockingStub sandboxes =
        SandboxServiceGrpc.newBlockingStub(server.channel());
    Latencies provisionAndExecute = new Latencies();
    Latencies floor = new Latencies();
    CpuMeter meter = new CpuMeter(server.pid());
    CpuMeter.Ticks corral = new CpuMeter.Ticks(0, 0, 0);
    CpuMeter.Ticks direct = new CpuMeter.Ticks(0, 0, 0);
    for (int i = 0; i < samples + 10; i++) {
      CpuMeter.Ticks before = meter.now();
      long start = System.nanoTime();
      Sandbox sandbox = sandboxes.provision(ProvisionRequest.getDefaultInstance()).getSandbox();
      ExecuteResponse answer =
          sandboxes.execute(
              ExecuteRequest.newBuilder()
                  .setSandboxId(sandbox.getId())
                  .setName("bash")
                  .setInputJson("{\"command\":\"echo ready\"}")
                  .build());
      long took = System.nanoTime() - start;
      if (!answer.getOutput().equals("ready")) {
        throw new IllegalStateException("unexpected answer: " + answer.getOutput());
      }
      sandboxes.releaseSandbox(
          ReleaseSandboxRequest.newBuilder().setSandboxId(sandbox.getId()).build());
      TimeUnit.MILLISECONDS.sleep(200); // its processes end and are waited for
      CpuMeter.Ticks between = meter.now();
      long baseline = bwrapDirectly();
      if (i >= 10) {
        provisionAndExecute.record(took);
        floor.record(baseline);
        corral = corral.plus(between.minus(before));
        direct = direct.plus(meter.now().minus(between));
      }
    }
    return List.of(
        "Local sandbox, Provision + first Execute (gRPC):",
        String.format("  %-34s %s", "corral", provisionAndExecute.summary95()),
        String.format("  %-34s %s", "floor: bwrap started directly", floor.summary95()),
        String.format(
            "  CPU per Provision + Execute + Release: corral %.1f ms (its sandbox's processes"
                + " included), PostgreSQL %.1f ms; bwrap started directly: %.1f ms",
            corral.server() * 10.0 / samples,
            corral.postgres() * 10.0 / samples,
            direct.client() * 10.0 / samples),
        String.format(
            "  corral p50 = %.2f ms (target <= 20)   %s",
            provisionAndExecute.percentileMillis(50),
            provisionAndExecute.percentileMillis(50) <= 20 ? "met" : "NOT met"));
  }

  /** The same isolation corral's local driver uses, started by a plain process call. */
  private static long bwrapDirectly() throws Exception {
    long start = System.nanoTime();
    List<String> argv =
        new ArrayList<>(
            List.of(
                "/usr/bin/env",
                "-i",
                "/usr/bin/bwrap",
                "--unshare-all",
                "--die-with-parent",
                "--new-session",
                "--ro-bind",
                "/usr",
                "/usr",
                "--symlink",
                "usr/bin",
                "/bin",
                "--symlink",
                "usr/lib",
                "/lib",
                "--symlink",
                "usr/lib64",
                "/lib64",
                "--proc",
                "/proc",
                "--dev",
                "/dev",
                "--tmpfs",
                "/tmp",
                "--tmpfs",
                "/workspace",
                "--remount-ro",
                "/",
                "--chdir",
                "/workspace",
                "/bin/bash",
                "--noprofile",
                "--norc",
                "-c",
                "echo ready"));
    Process process = new ProcessBuilder(argv).redirectErrorStream(true).start();
    String output = new String(process.getInputStream().readAllBytes()).strip();
    process.waitFor();
    if (!output.equals("ready")) {
      throw new IllegalStateException("bwrap said: " + output);
    }
    return System.nanoTime() - start;
  }

  /** Provision from a warm pool (refilled between samples) vs a cold Provision. */
  private static List<String> warmClaims(
      ServerProcess server, NamespacedKubernetesClient client, int samples) throws Exception {
    SandboxServiceGrpc.SandboxServiceBlockingStub sandboxes =
        SandboxServiceGrpc.newBlockingStub(server.channel());
    String pooled = createEnvironment(server, SandboxDriver.SANDBOX_DRIVER_KUBERNETES, 3);
    String cold = createEnvironment(server, SandboxDriver.SANDBOX_DRIVER_KUBERNETES, 0);
    Latencies warm = new Latencies();
    Latencies coldProvision = new Latencies();
    for (int i = 0; i < samples; i++) {
      awaitReadyPool(client, pooled, 3);
      warm.record(provisionAndRelease(sandboxes, pooled));
      if (i < Math.max(3, samples / 4)) {
        coldProvision.record(provisionAndRelease(sandboxes, cold));
      }
    }
    return List.of(
        "Kubernetes Provision (fake kubelet, S = 2 s):",
        String.format("  %-34s %s", "claim from the warm pool", warm.summary95()),
        String.format("  %-34s %s", "cold (baseline)", coldProvision.summary95()),
        String.format(
            "  warm claim p50 = %.1f ms (target <= 200)   %s",
            warm.percentileMillis(50), warm.percentileMillis(50) <= 200 ? "met" : "NOT met"));
  }

  private static long provisionAndRelease(
      SandboxServiceGrpc.SandboxServiceBlockingStub sandboxes, String environmentId) {
    long start = System.nanoTime();
    Sandbox sandbox =
        sandboxes
            .provision(ProvisionRequest.newBuilder().setEnvironmentId(environmentId).build())
            .getSandbox();
    long took = System.nanoTime() - start;
    sandboxes.releaseSandbox(
        ReleaseSandboxRequest.newBuilder().setSandboxId(sandbox.getId()).build());
    return took;
  }

  private static void awaitReadyPool(
      NamespacedKubernetesClient client, String environmentId, int size)
      throws InterruptedException {
    long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
    while (System.nanoTime() < deadline) {
      int ready =
          client
              .pods()
              .inNamespace(NAMESPACE)
              .withLabel("corral.dev/environment", environmentId)
              .withLabel("corral.dev/pool", "warm")
              .withLabel("corral.dev/ready", "true")
              .list()
              .getItems()
              .size();
      if (ready >= size) {
        return;
      }
      Thread.sleep(20);
    }
    throw new IllegalStateException("the warm pool of " + environmentId + " never refilled");
  }

  private static void releaseAll(ServerProcess server, String sessionId) {
    SandboxServiceGrpc.SandboxServiceBlockingStub sandboxes =
        SandboxServiceGrpc.newBlockingStub(server.channel());
    sandboxes
        .listSandboxes(ListSandboxesRequest.newBuilder().setSessionId(sessionId).build())
        .getSandboxesList()
        .forEach(
            sandbox ->
                sandboxes.releaseSandbox(
                    ReleaseSandboxRequest.newBuilder().setSandboxId(sandbox.getId()).build()));
  }

  private static double change(double value, double baseline) {
    return (value - baseline) / baseline * 100;
  }

  private static String createEnvironment(
      ServerProcess server, SandboxDriver driver, int warmPool) {
    return EnvironmentServiceGrpc.newBlockingStub(server.channel())
        .createEnvironment(
            CreateEnvironmentRequest.newBuilder()
                .setName("bench-" + driver.name().toLowerCase())
                .setDriver(driver)
                .setWarmPoolSize(warmPool)
                .build())
        .getEnvironment()
        .getId();
  }

  private static String agent(ServerProcess server) {
    return AgentServiceGrpc.newBlockingStub(server.channel())
        .createAgent(
            CreateAgentRequest.newBuilder()
                .setName("bench")
                .setModel("claude-bench")
                .addTools(Tool.newBuilder().setToolset(AgentToolset.getDefaultInstance()))
                .build())
        .getAgent()
        .getId();
  }

  private static Map<String, String> environment(
      EmbeddedPostgres postgres, FakeAnthropic model, KubernetesMockServer cluster)
      throws Exception {
    Map<String, String> environment = BenchServers.environment(postgres, model);
    environment.put("QUARKUS_KUBERNETES_CLIENT_API_SERVER_URL", cluster.url("/"));
    environment.put("QUARKUS_KUBERNETES_CLIENT_TRUST_CERTS", "true");
    environment.put("CORRAL_SANDBOX_KUBERNETES_ENABLED", "true");
    environment.put("CORRAL_SANDBOX_RECONCILE_INTERVAL", "200ms");
    return environment;
  }

  private static Map<String, String> with(
      Map<String, String> environment, String name, String provisioning) {
    Map<String, String> own = BenchServers.with(environment, name);
    own.put("CORRAL_SANDBOX_PROVISIONING", provisioning);
    return own;
  }
}
