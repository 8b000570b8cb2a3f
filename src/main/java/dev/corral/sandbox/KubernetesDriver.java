package dev.corral.sandbox;

import dev.corral.common.DaemonThreads;
import dev.corral.common.FailedPreconditionException;
import dev.corral.common.UnavailableException;
import io.fabric8.kubernetes.api.model.Pod;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.fabric8.kubernetes.client.KubernetesClientException;
import io.fabric8.kubernetes.client.dsl.ExecWatch;
import io.quarkus.runtime.ShutdownEvent;
import io.smallrye.mutiny.Uni;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Observes;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.jboss.logging.Logger;

/**
 * Sandboxes as pods in the sandbox namespace (fabric8): one pod per sandbox, derived by {@link
 * SandboxPodFactory}, tools through the exec API. Provisioning claims a ready pod of the
 * environment's warm pool when there is one. All fabric8 calls are blocking and run on this
 * driver's threads, each with a time limit.
 */
@ApplicationScoped
public class KubernetesDriver implements SandboxDriver {

  private static final Logger LOGGER = Logger.getLogger(KubernetesDriver.class);
  private static final Duration POLL = Duration.ofMillis(100);

  private final KubernetesClient client;
  private final SandboxConfig config;
  private final WarmPools pools;
  private final ExecutorService io;

  KubernetesDriver(KubernetesClient client, SandboxConfig config, WarmPools pools) {
    this.client = client;
    this.config = config;
    this.pools = pools;
    this.io = Executors.newCachedThreadPool(DaemonThreads.named("corral-kubernetes-io"));
  }

  void stop(@Observes ShutdownEvent event) {
    io.shutdownNow();
  }

  @Override
  public Uni<String> provision(SandboxSpec spec) {
    return blocking(
        () -> start(spec), config.kubernetes().readyTimeout().plus(Duration.ofMinutes(5)));
  }

  @Override
  public Uni<ExecResult> run(String sandboxId, String pod, SandboxCommand command) {
    return blocking(
        () -> exec(sandboxId, pod, command), command.timeout().plus(Duration.ofSeconds(30)));
  }

  @Override
  public Uni<Void> restartShell(String sandboxId, String pod) {
    return blocking(
        () -> {
          execRaw(
              pod,
              KubernetesScripts.RESET_SHELL,
              Duration.ofSeconds(30),
              new OutputBuffer(1024, false));
          return null;
        },
        Duration.ofSeconds(60));
  }

  @Override
  public Uni<Void> release(String sandboxId, String pod) {
    return blocking(
        () -> {
          client.pods().inNamespace(namespace()).withName(pod).withGracePeriod(0).delete();
          return null;
        },
        Duration.ofSeconds(60));
  }

  String namespace() {
    return config.kubernetes().namespace();
  }

  /** Blocking: claims a warm pod or makes a new one, and returns its name once it can run tools. */
  private String start(SandboxSpec spec) {
    Optional<String> warm = pools.claim(spec);
    if (warm.isPresent()) {
      return warm.get();
    }
    SandboxPodFactory.PodSpec podSpec =
        pools.podSpec(spec.environment(), spec.resources(), podName(spec.sandboxId()));
    Pod pod = SandboxPodFactory.forSandbox(podSpec, spec.sandboxId(), spec.sessionId());
    try {
      client.pods().inNamespace(namespace()).resource(pod).create();
      awaitRunning(pod.getMetadata().getName(), config.kubernetes().readyTimeout());
      setUp(pod.getMetadata().getName(), spec);
      return pod.getMetadata().getName();
    } catch (RuntimeException failure) {
      client
          .pods()
          .inNamespace(namespace())
          .withName(pod.getMetadata().getName())
          .withGracePeriod(0)
          .delete();
      throw failure instanceof KubernetesClientException k8s ? unavailable(k8s) : failure;
    }
  }

  /** Runs the environment's setup commands in a new pod; a failure fails the provisioning. */
  void setUp(String pod, SandboxSpec spec) {
    List<String> commands = spec.environment().getSetupCommandsList();
    for (int i = 0; i < commands.size(); i++) {
      SandboxCommand command =
          new SandboxCommand(
              ToolScripts.BASH,
              List.of(commands.get(i).getBytes(StandardCharsets.UTF_8)),
              true,
              Duration.ofMillis(spec.resources().getCallTimeoutMs()),
              8 * 1024,
              true);
      ExecResult result = exec(spec.sandboxId(), pod, command);
      if (result.exitCode() != 0 || result.timedOut()) {
        throw new FailedPreconditionException(
            "setup command "
                + (i + 1)
                + " failed (exit "
                + result.exitCode()
                + "): "
                + new String(result.output(), StandardCharsets.UTF_8).strip());
      }
    }
  }

  /** Waits until the pod runs and its container is ready; fails if it ends or takes too long. */
  void awaitRunning(String name, Duration timeout) {
    Instant deadline = Instant.now().plus(timeout);
    while (Instant.now().isBefore(deadline)) {
      Pod pod = client.pods().inNamespace(namespace()).withName(name).get();
      if (pod == null) {
        throw new FailedPreconditionException(
            "sandbox pod " + name + " disappeared while it started");
      }
      String phase = pod.getStatus() == null ? null : pod.getStatus().getPhase();
      if ("Failed".equals(phase) || "Succeeded".equals(phase)) {
        throw new FailedPreconditionException(
            "sandbox pod " + name + " ended while it started (" + phase + ")");
      }
      if (running(pod)) {
        return;
      }
      sleep(POLL);
    }
    throw new UnavailableException("sandbox pod " + name + " was not ready after " + timeout, null);
  }

  static boolean running(Pod pod) {
    if (pod.getStatus() == null || !"Running".equals(pod.getStatus().getPhase())) {
      return false;
    }
    return pod.getStatus().getContainerStatuses() != null
        && pod.getStatus().getContainerStatuses().stream()
            .allMatch(status -> Boolean.TRUE.equals(status.getReady()));
  }

  /**
   * Blocking: one exec. The sandbox is lost if its pod is gone or no longer runs: checked when the
   * exec fails, ends without an exit status, or ends by a signal (the kubelet kills a deleted pod's
   * processes).
   */
  ExecResult exec(String sandboxId, String pod, SandboxCommand command) {
    OutputBuffer output = new OutputBuffer(command.outputCap(), command.keepTail());
    Exit exit;
    try {
      exit = execRaw(pod, argv(pod, command), command.timeout(), output);
    } catch (RuntimeException failure) {
      requireRunning(sandboxId, pod);
      throw failure instanceof KubernetesClientException k8s ? unavailable(k8s) : failure;
    }
    if (exit.timedOut()) {
      execRaw(
          pod, KubernetesScripts.KILL_ALL, Duration.ofSeconds(10), new OutputBuffer(1024, false));
      return new ExecResult(137, output.bytes(), output.total(), true, false);
    }
    if (exit.code() == null || exit.code() >= 128) {
      requireRunning(sandboxId, pod);
    }
    if (exit.code() == null) {
      throw new UnavailableException("the exec in pod " + pod + " ended without a status", null);
    }
    return new ExecResult(exit.code(), output.bytes(), output.total(), false, false);
  }

  /** The exec of {@code command}; large arguments are uploaded into the pod first. */
  private List<String> argv(String pod, SandboxCommand command) {
    int limit = config.kubernetes().execArgumentBytes();
    if (!KubernetesScripts.uploads(command, limit)) {
      return KubernetesScripts.exec(command);
    }
    String prefix = Long.toHexString(java.util.concurrent.ThreadLocalRandom.current().nextLong());
    List<String> files = new java.util.ArrayList<>();
    for (int i = 0; i < command.args().size(); i++) {
      String name = prefix + "-" + i;
      for (List<String> chunk : KubernetesScripts.upload(name, command.args().get(i), limit)) {
        OutputBuffer errors = new OutputBuffer(4096, false);
        Exit exit = execRaw(pod, chunk, Duration.ofSeconds(30), errors);
        if (exit.timedOut() || exit.code() == null || exit.code() != 0) {
          throw new KubernetesClientException(
              "uploading a tool input failed: "
                  + new String(errors.bytes(), StandardCharsets.UTF_8).strip());
        }
      }
      files.add(name);
    }
    return KubernetesScripts.exec(command, files);
  }

  private void requireRunning(String sandboxId, String pod) {
    Pod current = client.pods().inNamespace(namespace()).withName(pod).get();
    if (current == null
        || current.getMetadata().getDeletionTimestamp() != null
        || !running(current)) {
      throw new SandboxLostException(
          sandboxId,
          current == null || current.getMetadata().getDeletionTimestamp() != null
              ? "its pod was deleted"
              : "its pod stopped running");
    }
  }

  /** How an exec ended: its exit code (null: the stream closed without one), or out of time. */
  private record Exit(Integer code, boolean timedOut) {}

  /** Runs {@code argv} in the pod. */
  private Exit execRaw(String pod, List<String> argv, Duration timeout, OutputBuffer output) {
    try (ExecWatch watch =
        client
            .pods()
            .inNamespace(namespace())
            .withName(pod)
            .withReadyWaitTimeout(0)
            .writingOutput(output)
            .writingError(output)
            .exec(argv.toArray(String[]::new))) {
      return new Exit(watch.exitCode().get(timeout.toMillis(), TimeUnit.MILLISECONDS), false);
    } catch (TimeoutException e) {
      return new Exit(null, true);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new UnavailableException("interrupted", e);
    } catch (java.util.concurrent.ExecutionException e) {
      throw new KubernetesClientException(
          "exec failed: " + e.getCause().getMessage(), e.getCause());
    }
  }

  static String podName(String sandboxId) {
    return "corral-" + sandboxId.replace('_', '-');
  }

  private <T> Uni<T> blocking(java.util.function.Supplier<T> work, Duration limit) {
    return Uni.createFrom()
        .item(work)
        .runSubscriptionOn(io)
        .ifNoItem()
        .after(limit)
        .failWith(
            () -> new UnavailableException("the Kubernetes API did not answer in " + limit, null));
  }

  static UnavailableException unavailable(KubernetesClientException failure) {
    LOGGER.warnf("Kubernetes API call failed: %s", failure.getMessage());
    return new UnavailableException("the Kubernetes API failed: " + failure.getMessage(), failure);
  }

  private static void sleep(Duration duration) {
    try {
      Thread.sleep(duration.toMillis());
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new UnavailableException("interrupted", e);
    }
  }
}
