package dev.corral.sandbox.driver;

import dev.corral.egress.EgressGrant;
import dev.corral.proto.v1.Environment;
import dev.corral.proto.v1.LimitEnforcement;
import dev.corral.proto.v1.SandboxResources;
import io.smallrye.mutiny.Uni;
import java.util.List;
import java.util.Optional;

/**
 * Where sandboxes live. A driver starts a sandbox from an environment, runs commands in it and
 * stops it. Every method returns at once; blocking work runs on the driver's own threads, with a
 * time limit.
 */
public interface SandboxDriver {

  /**
   * Refuses, before anything is recorded, a sandbox this driver will not run under the operator's
   * policy.
   *
   * @throws dev.corral.common.FailedPreconditionException naming what the policy refuses
   */
  default void admit(SandboxSpec spec) {}

  /**
   * Starts a sandbox (or claims a warm one) and runs the environment's setup commands.
   *
   * @return its host, the replica (local) or the pod (kubernetes), and how its limits are enforced
   */
  Uni<Provisioned> provision(SandboxSpec spec);

  /**
   * Runs {@code command} in the sandbox, after the calls before it. Cancelling the Uni stops the
   * call: every process it started ends.
   *
   * @throws SandboxLostException (in the Uni) if the sandbox died or is gone
   */
  Uni<ExecResult> run(String sandboxId, String host, SandboxCommand command);

  /**
   * Stops every process of the sandbox and forgets its persistent shell (same workspace; directory
   * and variables reset).
   */
  Uni<Void> restartShell(String sandboxId, String host);

  /**
   * Stops the sandbox and frees what it held, its calls under way included; stopping a stopped
   * sandbox is fine.
   */
  Uni<Void> release(String sandboxId, String host);

  /**
   * What a new sandbox is made from, with every limit resolved.
   *
   * @param egress what it may reach through the egress proxy; empty: nothing (networking none and
   *     no repository)
   */
  record SandboxSpec(
      String sandboxId,
      String sessionId,
      Environment environment,
      SandboxResources resources,
      Optional<EgressGrant> egress) {

    public SandboxSpec(
        String sandboxId, String sessionId, Environment environment, SandboxResources resources) {
      this(sandboxId, sessionId, environment, resources, Optional.empty());
    }
  }

  /** A started sandbox: where it runs, and how each of its limits is enforced. */
  record Provisioned(String host, List<LimitEnforcement> limits) {

    public Provisioned {
      limits = List.copyOf(limits);
    }
  }
}
