package dev.corral.sandbox.driver;

import io.smallrye.config.ConfigMapping;
import io.smallrye.config.WithDefault;
import java.time.Duration;

/** Sandboxes on this replica ({@code corral.sandbox.*}). */
@ConfigMapping(prefix = "corral.sandbox")
public interface SandboxConfig {

  /**
   * When the harness provisions a session's sandbox: {@code lazy} (at the first tool call that
   * needs one) or {@code eager} (when the harness starts, before the first model call).
   */
  @WithDefault("lazy")
  String provisioning();

  /**
   * How often the reconciler ends sandboxes whose session ended or whose lifetime is over, stops
   * what no live record owns (local processes, pods) and refills warm pools.
   */
  @WithDefault("30s")
  Duration reconcileInterval();

  /**
   * The driver of the default environment, used by sessions and Provision calls that name none:
   * {@code local} or {@code kubernetes} (on a cluster, where the server's own pod is no place for
   * sandboxes).
   */
  @WithDefault("local")
  String defaultDriver();

  /**
   * Sandboxes one tenant may have live (provisioning or ready) at once, across every replica, so
   * that one tenant cannot take every sandbox a deployment can run. Provisioning past it fails with
   * RESOURCE_EXHAUSTED.
   */
  @WithDefault("32")
  int maxLivePerTenant();

  /**
   * The longest an environment's setup commands may run together in a new sandbox (each is also
   * held to the sandbox's call timeout). A setup still running then fails the provisioning with
   * FAILED_PRECONDITION, and the sandbox is ended.
   */
  @WithDefault("10m")
  Duration setupTimeout();

  /** Limits used where an environment leaves them unset. */
  Defaults defaults();

  /**
   * The most any environment or provision request may ask of one sandbox: an operator's ceiling
   * over what members choose (the API's own maxima are far higher).
   */
  Ceilings ceilings();

  Local local();

  Kubernetes kubernetes();

  interface Ceilings {
    @WithDefault("16000")
    int cpuMillis();

    /** 64 GiB. */
    @WithDefault("68719476736")
    long memoryBytes();

    /** 100 GiB. */
    @WithDefault("107374182400")
    long diskBytes();

    @WithDefault("8192")
    int maxProcesses();

    @WithDefault("24h")
    Duration callTimeout();

    @WithDefault("30d")
    Duration lifetime();
  }

  interface Defaults {
    /** Wall-clock limit of one tool call. */
    @WithDefault("120s")
    Duration callTimeout();

    /**
     * Memory limit of the whole sandbox (a local sandbox without cgroups: the address space of each
     * process).
     */
    @WithDefault("4294967296")
    long memoryBytes();

    /** Size of the workspace (and, for the local driver, of /tmp). */
    @WithDefault("1073741824")
    long diskBytes();

    @WithDefault("256")
    int maxProcesses();

    @WithDefault("1000")
    int cpuMillis();

    /** A sandbox is released after this long, whatever it does. */
    @WithDefault("24h")
    Duration lifetime();
  }

  interface Local {
    /** The bubblewrap binary. */
    @WithDefault("/usr/bin/bwrap")
    String bwrap();

    /**
     * First of the user ids sandboxes run as when corral runs as root (one id per sandbox, so that
     * process limits of one sandbox never touch another). No account needs to exist for them.
     */
    @WithDefault("200000")
    int uidBase();

    @WithDefault("50000")
    int uidCount();

    /**
     * Started sandboxes kept ready per set of limits, so that provisioning an environment without
     * setup commands claims one at once (they count against max-sandboxes). 0 turns this off.
     */
    @WithDefault("2")
    int warmPoolSize();

    /** Local sandboxes this replica runs at once. */
    @WithDefault("64")
    int maxSandboxes();

    /**
     * Bytes of memory all local sandboxes of this replica share, whatever their own limits add up
     * to (with cgroups: the limit of the replica's cgroup, so that sandboxes which together want
     * more are stopped by the kernel among themselves, never corral or its database). Unset: the
     * host's memory less a quarter of it (at least 1 GiB) left for everything else.
     */
    java.util.Optional<Long> memoryBudget();

    /**
     * Give each local sandbox a cgroup of its own that carries its memory, process and CPU limits
     * for all its processes together (needs root, or a delegated cgroup v2 directory in {@code
     * cgroup-parent}). Without cgroups, limits fall back to per-process rlimits.
     */
    @WithDefault("true")
    boolean cgroups();

    /**
     * A cgroup v2 directory corral may create sandbox cgroups in (delegated to its user, with the
     * memory, pids and cpu controllers available). Unset: as root, the server picks one.
     */
    java.util.Optional<String> cgroupParent();
  }

  interface Kubernetes {
    /** Offer the kubernetes driver (needs a cluster: in-cluster config or a kubeconfig). */
    @WithDefault("false")
    boolean enabled();

    /** The namespace sandbox pods live in (not corral's own). */
    @WithDefault("corral-sandboxes")
    String namespace();

    /**
     * Image of environments that name none; it must have bash, coreutils, findutils, grep, gzip,
     * perl.
     */
    @WithDefault("debian:12-slim")
    String defaultImage();

    /**
     * Prefixes of the images environments may name (e.g. {@code registry.corp/sandboxes/}); unset:
     * any image. A pod of a disallowed image is never made: provisioning fails with
     * FAILED_PRECONDITION. Images other than the default are pulled at each pod start.
     */
    java.util.Optional<java.util.List<String>> allowedImagePrefixes();

    /**
     * RuntimeClass of pods whose environment names none (e.g. {@code gvisor}); unset: the cluster's
     * default.
     */
    java.util.Optional<String> runtimeClassName();

    /**
     * RuntimeClasses environments may name. Unset: only {@link #runtimeClassName()} when that is
     * set (an environment cannot opt out of the operator's sandbox runtime), else any.
     */
    java.util.Optional<java.util.List<String>> allowedRuntimeClassNames();

    /** How long a new pod may take to become ready. */
    @WithDefault("120s")
    Duration readyTimeout();

    /**
     * Tool inputs up to this many bytes travel as exec arguments (in the request URL); larger ones
     * are uploaded into the pod first, in chunks of this size.
     */
    @WithDefault("16384")
    int execArgumentBytes();

    /** The non-root user sandbox containers run as. */
    @WithDefault("65532")
    long runAsUser();

    /**
     * Where sandbox pods reach the egress proxy ({@code host:port}, the corral-egress Service). A
     * name is resolved by corral: pods get the address, since they have no DNS.
     */
    @WithDefault("corral-egress.corral.svc:3128")
    String egressProxy();
  }
}
