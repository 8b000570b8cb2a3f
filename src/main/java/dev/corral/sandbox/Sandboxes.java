package dev.corral.sandbox;

import dev.corral.agent.EnvironmentRules;
import dev.corral.agent.Environments;
import dev.corral.common.FailedPreconditionException;
import dev.corral.common.IdKind;
import dev.corral.common.InvalidArgumentException;
import dev.corral.common.Page;
import dev.corral.common.Paging;
import dev.corral.common.Replica;
import dev.corral.proto.v1.Environment;
import dev.corral.proto.v1.NetworkMode;
import dev.corral.proto.v1.Networking;
import dev.corral.proto.v1.Sandbox;
import dev.corral.proto.v1.SandboxResources;
import dev.corral.proto.v1.SandboxState;
import dev.corral.sandbox.driver.ExecResult;
import dev.corral.sandbox.driver.Limits;
import dev.corral.sandbox.driver.SandboxCommand;
import dev.corral.sandbox.driver.SandboxConfig;
import dev.corral.sandbox.driver.SandboxDriver;
import dev.corral.sandbox.driver.SandboxLostException;
import dev.corral.sandbox.kubernetes.KubernetesDriver;
import dev.corral.sandbox.local.LocalDriver;
import dev.corral.session.Sessions;
import io.smallrye.mutiny.Uni;
import jakarta.enterprise.context.ApplicationScoped;
import org.jboss.logging.Logger;

/** Provisions, uses, lists and releases sandboxes, whatever their driver. */
@ApplicationScoped
public class Sandboxes {

  private static final Logger LOGGER = Logger.getLogger(Sandboxes.class);

  private final SandboxRepository repository;
  private final Environments environments;
  private final Sessions sessions;
  private final Limits limits;
  private final LocalDriver local;
  private final KubernetesDriver kubernetes;
  private final SandboxConfig config;
  private final Replica replica;

  Sandboxes(
      SandboxRepository repository,
      Environments environments,
      Sessions sessions,
      Limits limits,
      LocalDriver local,
      KubernetesDriver kubernetes,
      SandboxConfig config,
      Replica replica) {
    this.repository = repository;
    this.environments = environments;
    this.sessions = sessions;
    this.limits = limits;
    this.local = local;
    this.kubernetes = kubernetes;
    this.config = config;
    this.replica = replica;
  }

  /**
   * A new sandbox from an environment (empty id: the server's default, local) with optional limit
   * overrides, serving {@code sessionId} if not empty.
   */
  public Uni<Sandbox> provision(
      String environmentId, SandboxResources overrides, String sessionId) {
    return Uni.createFrom()
        .item(() -> EnvironmentRules.resources("resources", overrides))
        .flatMap(ignored -> environment(environmentId))
        .call(
            ignored ->
                sessionId.isEmpty()
                    ? Uni.createFrom().voidItem()
                    : sessions.get(sessionId).replaceWithVoid())
        .flatMap(
            environment ->
                start(
                    environment, limits.resolve(overrides, environment.getResources()), sessionId));
  }

  /**
   * Runs {@code command} in a ready sandbox this replica can reach.
   *
   * @throws SandboxLostException (in the Uni) if the sandbox died; it is then recorded as lost
   */
  public Uni<ExecResult> run(Sandbox sandbox, SandboxCommand command) {
    return usable(sandbox)
        .flatMap(driver -> driver.run(sandbox.getId(), sandbox.getHost(), command))
        .invoke(ignored -> touch(sandbox.getId()))
        .onFailure(SandboxLostException.class)
        .call(failure -> recordLost(sandbox, failure));
  }

  /**
   * Starts the sandbox's persistent shell afresh (its directory and variables are reset).
   *
   * @throws SandboxLostException (in the Uni) if the sandbox died; it is then recorded as lost
   */
  public Uni<Void> restartShell(Sandbox sandbox) {
    return usable(sandbox)
        .flatMap(driver -> driver.restartShell(sandbox.getId(), sandbox.getHost()))
        .onFailure(SandboxLostException.class)
        .call(failure -> recordLost(sandbox, failure));
  }

  private Uni<Void> recordLost(Sandbox sandbox, Throwable failure) {
    return repository
        .end(sandbox.getId(), SandboxState.SANDBOX_STATE_LOST, failure.getMessage())
        .replaceWithVoid();
  }

  /** The driver of a ready sandbox that this replica can use. */
  private Uni<SandboxDriver> usable(Sandbox sandbox) {
    if (sandbox.getState() != SandboxState.SANDBOX_STATE_READY) {
      return Uni.createFrom()
          .failure(
              new FailedPreconditionException(
                  "sandbox " + sandbox.getId() + " is " + stateName(sandbox)));
    }
    if (isLocal(sandbox) && !local.hosts(sandbox.getId())) {
      return Uni.createFrom()
          .failure(
              sandbox.getHost().equals(local.host())
                  ? new SandboxLostException(sandbox.getId(), "it no longer runs on this replica")
                  : new FailedPreconditionException(
                      "sandbox "
                          + sandbox.getId()
                          + " runs on replica "
                          + sandbox.getHost()
                          + "; call that replica"));
    }
    return Uni.createFrom().item(driver(sandbox));
  }

  /** Records the use off the answer's path: last_used_at is informational. */
  private void touch(String sandboxId) {
    repository
        .used(sandboxId)
        .subscribe()
        .with(
            ignored -> {},
            failure ->
                LOGGER.debugf(
                    "sandbox=%s last use not recorded: %s", sandboxId, failure.getMessage()));
  }

  /** Whether a ready sandbox can be used from this replica (a local one only where it runs). */
  public boolean reachable(Sandbox sandbox) {
    return !isLocal(sandbox) || local.hosts(sandbox.getId());
  }

  /** Records that a sandbox is gone, and stops what may be left of it. */
  public Uni<Void> markLost(Sandbox sandbox, String reason) {
    return repository
        .end(sandbox.getId(), SandboxState.SANDBOX_STATE_LOST, reason)
        .flatMap(
            ended ->
                ended.isPresent() && reachable(sandbox)
                    ? stop(sandbox)
                    : Uni.createFrom().voidItem());
  }

  public Uni<Sandbox> get(String sandboxId) {
    return Uni.createFrom()
        .item(() -> IdKind.SANDBOX.require("sandbox_id", sandboxId))
        .flatMap(repository::find);
  }

  public Uni<Page<Sandbox>> list(
      int pageSize, String pageToken, String sessionId, boolean includeEnded) {
    return Uni.createFrom()
        .item(() -> Paging.pageSize("page_size", pageSize, 20, 100))
        .flatMap(
            size ->
                repository
                    .list(
                        Paging.keyOf("page_token", pageToken, IdKind.SANDBOX::isValid),
                        sessionId.isEmpty()
                            ? null
                            : IdKind.SESSION.require("session_id", sessionId),
                        includeEnded,
                        size + 1)
                    .map(sandboxes -> Page.of(sandboxes, size, Sandbox::getId)));
  }

  /** Stops a sandbox; releasing an ended one returns it as it is. */
  public Uni<Sandbox> release(String sandboxId) {
    return get(sandboxId)
        .flatMap(
            sandbox ->
                repository
                    .end(sandbox.getId(), SandboxState.SANDBOX_STATE_RELEASED, null)
                    .flatMap(
                        ended ->
                            ended.isEmpty()
                                ? Uni.createFrom().item(sandbox)
                                : stop(ended.get()).replaceWith(ended.get())));
  }

  /** A session that ends releases its sandboxes at once (the reconciler is the safety net). */
  void sessionEnded(@jakarta.enterprise.event.ObservesAsync dev.corral.session.SessionEnded ended) {
    repository
        .list(null, ended.sessionId(), false, 100)
        .toMulti()
        .flatMap(io.smallrye.mutiny.Multi.createFrom()::iterable)
        .onItem()
        .transformToUniAndConcatenate(sandbox -> release(sandbox.getId()))
        .collect()
        .asList()
        .subscribe()
        .with(
            released -> {},
            failure ->
                LOGGER.warnf(
                    "sandboxes of ended session %s not released now (the reconciler will): %s",
                    ended.sessionId(), failure.getMessage()));
  }

  /** The session's newest ready sandbox, if any. */
  public Uni<java.util.Optional<Sandbox>> currentOf(String sessionId) {
    return repository.currentOf(sessionId);
  }

  /** Whether the session had a sandbox that is gone. */
  public Uni<Boolean> hadOne(String sessionId) {
    return repository.hadOne(sessionId);
  }

  /** The environment a session's sandboxes come from. */
  public Uni<Environment> environmentOfSession(String sessionId) {
    return sessions.get(sessionId).flatMap(session -> environment(session.getEnvironmentId()));
  }

  Uni<Void> stop(Sandbox sandbox) {
    return driver(sandbox)
        .release(sandbox.getId(), sandbox.getHost())
        .onFailure()
        .recoverWithItem(
            failure -> {
              LOGGER.warnf(
                  "sandbox=%s could not be stopped now (the reconciler retries): %s",
                  sandbox.getId(), failure.getMessage());
              return null;
            });
  }

  Uni<Environment> environment(String environmentId) {
    if (environmentId.isEmpty()) {
      return Uni.createFrom().item(this::defaultEnvironment);
    }
    return environments.usable("environment_id", environmentId);
  }

  private Uni<Sandbox> start(
      Environment environment, SandboxResources resources, String sessionId) {
    SandboxDriver driver = driverFor(environment);
    String id = IdKind.SANDBOX.next();
    String host = driver == kubernetes ? KubernetesDriver.podName(id) : local.host();
    SandboxDriver.SandboxSpec spec =
        new SandboxDriver.SandboxSpec(id, sessionId, environment, resources);
    if (driver == local) {
      // A local sandbox dies with this replica, so it is recorded once it runs, in one write.
      return local
          .provision(spec)
          .flatMap(
              started ->
                  repository
                      .insert(
                          id,
                          environment.getId(),
                          sessionId,
                          environment.getDriver(),
                          host,
                          resources,
                          true)
                      .onFailure()
                      .call(failure -> local.release(id, host)));
    }
    return repository
        .insert(id, environment.getId(), sessionId, environment.getDriver(), host, resources, false)
        .flatMap(ignored -> driver.provision(spec))
        .onFailure()
        .call(
            failure ->
                repository.end(
                    id,
                    SandboxState.SANDBOX_STATE_LOST,
                    "provisioning failed: " + failure.getMessage()))
        .flatMap(actualHost -> repository.ready(id, actualHost))
        .flatMap(
            ready ->
                ready.isPresent()
                    ? Uni.createFrom().item(ready.get())
                    : driver.release(id, host).replaceWith(repository.find(id)));
  }

  private SandboxDriver driverFor(Environment environment) {
    switch (environment.getDriver()) {
      case SANDBOX_DRIVER_KUBERNETES -> {
        if (!config.kubernetes().enabled()) {
          throw new FailedPreconditionException(
              "the kubernetes sandbox driver is not enabled on this replica (corral.sandbox.kubernetes.enabled)");
        }
        return kubernetes;
      }
      case SANDBOX_DRIVER_LOCAL, SANDBOX_DRIVER_UNSPECIFIED -> {
        return local;
      }
      default -> throw new InvalidArgumentException("environment.driver", "is not a known driver");
    }
  }

  private SandboxDriver driver(Sandbox sandbox) {
    return isLocal(sandbox) ? local : kubernetes;
  }

  private static boolean isLocal(Sandbox sandbox) {
    return sandbox.getDriver() != dev.corral.proto.v1.SandboxDriver.SANDBOX_DRIVER_KUBERNETES;
  }

  /** The environment of sessions and Provision calls that name none. */
  private Environment defaultEnvironment() {
    dev.corral.proto.v1.SandboxDriver driver =
        switch (config.defaultDriver().toLowerCase(java.util.Locale.ROOT)) {
          case "local" -> dev.corral.proto.v1.SandboxDriver.SANDBOX_DRIVER_LOCAL;
          case "kubernetes" -> dev.corral.proto.v1.SandboxDriver.SANDBOX_DRIVER_KUBERNETES;
          default ->
              throw new FailedPreconditionException(
                  "corral.sandbox.default-driver is "
                      + config.defaultDriver()
                      + "; it must be local or kubernetes");
        };
    return Environment.newBuilder()
        .setName("default")
        .setDriver(driver)
        .setNetworking(Networking.newBuilder().setMode(NetworkMode.NETWORK_MODE_NONE))
        .build();
  }

  private static String stateName(Sandbox sandbox) {
    return sandbox
        .getState()
        .name()
        .replace("SANDBOX_STATE_", "")
        .toLowerCase(java.util.Locale.ROOT);
  }
}
