package dev.corral.sandbox.driver;

import dev.corral.proto.v1.Environment;
import dev.corral.proto.v1.SandboxResources;
import io.smallrye.mutiny.Uni;

/**
 * Where sandboxes live. A driver starts a sandbox from an environment, runs commands in it and
 * stops it. Every method returns at once; blocking work runs on the driver's own threads, with a
 * time limit.
 */
public interface SandboxDriver {

  /**
   * Starts a sandbox (or claims a warm one), runs the environment's setup commands, and returns its
   * host: the replica (local) or the pod (kubernetes).
   */
  Uni<String> provision(SandboxSpec spec);

  /**
   * Runs {@code command} in the sandbox.
   *
   * @throws SandboxLostException (in the Uni) if the sandbox died or is gone
   */
  Uni<ExecResult> run(String sandboxId, String host, SandboxCommand command);

  /** Starts the sandbox's shell afresh (same workspace; directory and variables reset). */
  Uni<Void> restartShell(String sandboxId, String host);

  /** Stops the sandbox and frees what it held; stopping a stopped sandbox is fine. */
  Uni<Void> release(String sandboxId, String host);

  /** What a new sandbox is made from, with every limit resolved. */
  record SandboxSpec(
      String sandboxId, String sessionId, Environment environment, SandboxResources resources) {}
}
