package dev.corral.sandbox.kubernetes;

import dev.corral.proto.v1.LimitEnforcement;
import dev.corral.proto.v1.LimitScope;
import dev.corral.sandbox.driver.ExecResult;
import dev.corral.sandbox.driver.SandboxCommand;
import dev.corral.sandbox.driver.SandboxConfig;
import dev.corral.sandbox.driver.SandboxDriver;
import dev.corral.sandbox.driver.SandboxSetup;
import io.fabric8.kubernetes.api.model.Pod;
import io.smallrye.mutiny.Uni;
import jakarta.enterprise.context.ApplicationScoped;
import java.util.List;
import java.util.Map;

/**
 * Sandboxes as pods in the sandbox namespace: one pod per sandbox, derived by {@link
 * SandboxPodFactory}, tools through the exec API. Provisioning claims a ready pod of the
 * environment's warm pool when there is one. Every API call goes through {@link KubernetesGateway}.
 */
@ApplicationScoped
public class KubernetesDriver implements SandboxDriver {

  private final KubernetesGateway gateway;
  private final PodExec exec;
  private final WarmPools pools;
  private final SandboxConfig config;

  KubernetesDriver(KubernetesGateway gateway, PodExec exec, WarmPools pools, SandboxConfig config) {
    this.gateway = gateway;
    this.exec = exec;
    this.pools = pools;
    this.config = config;
  }

  /** Pod limits hold for the whole pod; a pod's process count is the kubelet's to limit. */
  private static final List<LimitEnforcement> ENFORCEMENT =
      List.of(
          limit("memory_bytes", LimitScope.LIMIT_SCOPE_SANDBOX, "pod memory limit"),
          limit("cpu_millis", LimitScope.LIMIT_SCOPE_SANDBOX, "pod cpu limit"),
          limit(
              "disk_bytes",
              LimitScope.LIMIT_SCOPE_SANDBOX,
              "emptyDir sizeLimit of /workspace and /tmp"),
          limit(
              "max_processes",
              LimitScope.LIMIT_SCOPE_NONE,
              "not set on the pod: the kubelet's podPidsLimit applies"),
          limit(
              "call_timeout_ms",
              LimitScope.LIMIT_SCOPE_CALL,
              "corral stops every process the call started in the pod"),
          limit("lifetime_seconds", LimitScope.LIMIT_SCOPE_SANDBOX, "corral deletes the pod"));

  @Override
  public Uni<Provisioned> provision(SandboxSpec spec) {
    return pools
        .claim(spec)
        .flatMap(warm -> warm.isPresent() ? Uni.createFrom().item(warm.get()) : startCold(spec))
        .map(pod -> new Provisioned(pod, ENFORCEMENT));
  }

  private static LimitEnforcement limit(String limit, LimitScope scope, String mechanism) {
    return LimitEnforcement.newBuilder()
        .setLimit(limit)
        .setScope(scope)
        .setMechanism(mechanism)
        .build();
  }

  @Override
  public Uni<ExecResult> run(String sandboxId, String pod, SandboxCommand command) {
    return exec.run(sandboxId, pod, command);
  }

  @Override
  public Uni<Void> restartShell(String sandboxId, String pod) {
    return exec.resetShell(sandboxId, pod);
  }

  @Override
  public Uni<Void> release(String sandboxId, String pod) {
    return delete(pod);
  }

  /** A pod of a sandbox, as the reconciler sees it. */
  public record SandboxPod(String name, String sandboxId) {}

  /** The pods of sandboxes (not of pools) that exist now. */
  public Uni<List<SandboxPod>> sandboxPods() {
    return gateway
        .list(Map.of(SandboxLabels.MANAGED_BY, SandboxLabels.CORRAL))
        .map(
            pods ->
                pods.stream()
                    .filter(pod -> pod.getMetadata().getLabels().containsKey(SandboxLabels.SANDBOX))
                    .map(
                        pod ->
                            new SandboxPod(
                                pod.getMetadata().getName(),
                                pod.getMetadata().getLabels().get(SandboxLabels.SANDBOX)))
                    .toList());
  }

  /** Deletes a pod (its calls under way end with it). */
  public Uni<Void> delete(String pod) {
    return gateway.delete(pod).invoke(() -> exec.forget(pod));
  }

  /** Brings every pool to its environment's spec and size; see {@link WarmPools#reconcile}. */
  public Uni<WarmPools.Report> reconcilePools() {
    return pools.reconcile();
  }

  /** Makes a new pod, waits until it runs and sets it up; deletes it if any step fails. */
  private Uni<String> startCold(SandboxSpec spec) {
    Pod pod =
        SandboxPodFactory.forSandbox(
            pools.podSpec(spec.environment(), spec.resources(), podName(spec.sandboxId())),
            spec.sandboxId(),
            spec.sessionId());
    String name = pod.getMetadata().getName();
    return gateway
        .create(pod)
        .flatMap(created -> gateway.awaitRunning(name, config.kubernetes().readyTimeout()))
        .flatMap(
            running -> SandboxSetup.run(spec, command -> exec.run(spec.sandboxId(), name, command)))
        .replaceWith(name)
        .onFailure()
        .call(failure -> gateway.delete(name).onFailure().recoverWithNull());
  }

  public static String podName(String sandboxId) {
    return "corral-" + sandboxId.replace('_', '-');
  }
}
