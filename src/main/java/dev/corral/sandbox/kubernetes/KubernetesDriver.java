package dev.corral.sandbox.kubernetes;

import dev.corral.common.FailedPreconditionException;
import dev.corral.egress.PodEgress;
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
import java.nio.charset.StandardCharsets;
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
  private final PodEgress egress;
  private final io.vertx.mutiny.core.Vertx vertx;

  KubernetesDriver(
      KubernetesGateway gateway,
      PodExec exec,
      WarmPools pools,
      SandboxConfig config,
      PodEgress egress,
      io.vertx.mutiny.core.Vertx vertx) {
    this.gateway = gateway;
    this.exec = exec;
    this.pools = pools;
    this.config = config;
    this.egress = egress;
    this.vertx = vertx;
  }

  /** Pod limits hold for the whole pod; a pod's process count is the kubelet's to limit. */
  private static final List<LimitEnforcement> ENFORCEMENT =
      List.of(
          limit("memory_bytes", LimitScope.LIMIT_SCOPE_SANDBOX, "pod memory limit"),
          limit("cpu_millis", LimitScope.LIMIT_SCOPE_SANDBOX, "pod cpu limit"),
          limit(
              "disk_bytes",
              LimitScope.LIMIT_SCOPE_SANDBOX,
              "memory-backed emptyDir sizeLimit of /workspace and /tmp each (their pages count"
                  + " toward the pod memory limit)"),
          limit(
              "max_processes",
              LimitScope.LIMIT_SCOPE_NONE,
              "not set on the pod: the kubelet's podPidsLimit applies"),
          limit(
              "call_timeout_ms",
              LimitScope.LIMIT_SCOPE_CALL,
              "corral stops every process the call started in the pod"),
          limit("lifetime_seconds", LimitScope.LIMIT_SCOPE_SANDBOX, "corral deletes the pod"));

  /** The operator's image and RuntimeClass policy; see {@link WarmPools#podSpec}. */
  @Override
  public void admit(SandboxSpec spec) {
    pools.podSpec(spec.environment(), spec.resources(), "admit");
  }

  @Override
  public Uni<Provisioned> provision(SandboxSpec spec) {
    // (every pod spec is made under the policy, so nothing it refuses starts here either)
    return Uni.createFrom()
        .deferred(() -> pools.claim(spec))
        .flatMap(
            warm ->
                warm.isPresent()
                    ? openEgress(spec, warm.get())
                        .replaceWith(warm.get())
                        .onFailure()
                        .call(failure -> delete(warm.get()).onFailure().recoverWithNull())
                    : startCold(spec))
        .map(pod -> new Provisioned(pod, ENFORCEMENT));
  }

  /**
   * Gives a pod whose spec grants egress its proxy settings: the proxy's address and the pod's
   * egress token, which every exec reads. The sandbox namespace's NetworkPolicy lets pods reach the
   * proxy and nothing else; without the settings a pod reaches nothing at all.
   */
  private Uni<Void> openEgress(SandboxSpec spec, String pod) {
    if (spec.egress().isEmpty()) {
      return Uni.createFrom().voidItem();
    }
    if (!egress.available()) {
      return Uni.createFrom()
          .failure(
              new FailedPreconditionException(
                  "kubernetes sandboxes get network only when the vault has a key to sign their"
                      + " egress tokens with: set CORRAL_VAULT_KEYS"));
    }
    return proxyAddress()
        .map(address -> egress.proxyUrl(spec.sandboxId(), address))
        .flatMap(
            url ->
                exec.run(
                    spec.sandboxId(),
                    pod,
                    new SandboxCommand(
                        KubernetesScripts.WRITE_EGRESS,
                        List.of(url.getBytes(StandardCharsets.UTF_8)),
                        config.kubernetes().readyTimeout(),
                        4096,
                        false)))
        .invoke(
            written -> {
              if (written.exitCode() != 0) {
                throw new FailedPreconditionException(
                    "the pod's proxy settings could not be written: "
                        + new String(written.output(), StandardCharsets.UTF_8).strip());
              }
            })
        .replaceWithVoid();
  }

  /** The proxy's {@code address:port}, its name resolved here (pods have no DNS). */
  private Uni<String> proxyAddress() {
    String configured = config.kubernetes().egressProxy();
    int colon = configured.lastIndexOf(':');
    String host = colon < 0 ? configured : configured.substring(0, colon);
    String port = colon < 0 ? "3128" : configured.substring(colon + 1);
    return vertx
        .executeBlocking(Uni.createFrom().item(() -> resolve(host)), false)
        .map(address -> address + ":" + port);
  }

  /** {@code host}'s address as a URL's authority writes it (an IPv6 address in brackets). */
  static String resolve(String host) {
    try {
      java.net.InetAddress address = java.net.InetAddress.getByName(host);
      return address instanceof java.net.Inet6Address
          ? "[" + address.getHostAddress() + "]"
          : address.getHostAddress();
    } catch (java.net.UnknownHostException e) {
      throw new FailedPreconditionException(
          "the egress proxy "
              + host
              + " (corral.sandbox.kubernetes.egress-proxy) cannot be resolved");
    }
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
    // and any other pod labelled with the sandbox: a warm pod it claimed before its record named it
    return delete(pod)
        .flatMap(deleted -> gateway.list(Map.of(SandboxLabels.SANDBOX, sandboxId)))
        .flatMap(
            labelled ->
                io.smallrye.mutiny.Multi.createFrom()
                    .iterable(labelled)
                    .map(other -> other.getMetadata().getName())
                    .filter(name -> !name.equals(pod))
                    .onItem()
                    .transformToUniAndConcatenate(this::delete)
                    .collect()
                    .asList()
                    .replaceWithVoid());
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
        .call(running -> openEgress(spec, name))
        .flatMap(
            running ->
                SandboxSetup.run(
                    spec,
                    config.setupTimeout(),
                    command -> exec.run(spec.sandboxId(), name, command)))
        .replaceWith(name)
        .onFailure()
        .call(failure -> gateway.delete(name).onFailure().recoverWithNull());
  }

  public static String podName(String sandboxId) {
    return "corral-" + sandboxId.replace('_', '-');
  }
}
