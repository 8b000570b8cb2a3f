package dev.corral.sandbox;

import dev.corral.agent.EnvironmentRules;
import dev.corral.agent.Environments;
import dev.corral.common.FailedPreconditionException;
import dev.corral.common.IdKind;
import dev.corral.common.InvalidArgumentException;
import dev.corral.common.LogFields;
import dev.corral.common.Page;
import dev.corral.common.Paging;
import dev.corral.common.ProtoTime;
import dev.corral.common.Tenant;
import dev.corral.egress.EgressGrant;
import dev.corral.proto.v1.Environment;
import dev.corral.proto.v1.NetworkMode;
import dev.corral.proto.v1.Networking;
import dev.corral.proto.v1.Sandbox;
import dev.corral.proto.v1.SandboxResources;
import dev.corral.proto.v1.SandboxState;
import dev.corral.proto.v1.Session;
import dev.corral.sandbox.driver.ExecResult;
import dev.corral.sandbox.driver.Limits;
import dev.corral.sandbox.driver.SandboxCommand;
import dev.corral.sandbox.driver.SandboxConfig;
import dev.corral.sandbox.driver.SandboxDriver;
import dev.corral.sandbox.driver.SandboxLostException;
import dev.corral.sandbox.kubernetes.KubernetesDriver;
import dev.corral.sandbox.local.LocalDriver;
import dev.corral.session.SessionEnded;
import dev.corral.session.Sessions;
import io.smallrye.mutiny.Multi;
import io.smallrye.mutiny.Uni;
import io.smallrye.mutiny.subscription.Cancellable;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.ObservesAsync;
import java.time.Clock;
import java.time.Duration;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;
import org.jboss.logging.Logger;

/**
 * Provisions, uses, lists and releases sandboxes, whatever their driver. A sandbox ends when it is
 * released, when its session ends, and when its lifetime does: then at once on the replica that
 * provisioned it, and in any case on the next read of it, wherever (it reads RELEASED from the
 * moment its lifetime ended, with that moment as its released_at).
 */
@ApplicationScoped
public class Sandboxes {

  private static final Logger LOGGER = Logger.getLogger(Sandboxes.class);
  static final String RELEASED_BY_API = "released through ReleaseSandbox";
  static final String SESSION_ENDED = "its session ended";
  static final String SUPERSEDED =
      "superseded: it was still being provisioned when the session's harness needed a sandbox";

  private final SandboxRepository repository;
  private final io.micrometer.core.instrument.MeterRegistry metrics;
  private final Environments environments;
  private final Sessions sessions;
  private final Limits limits;
  private final LocalDriver local;
  private final KubernetesDriver kubernetes;
  private final SandboxConfig config;
  private final Clock clock;
  private final Map<String, Cancellable> lifetimes = new ConcurrentHashMap<>();
  private final Map<String, Long> touched = new ConcurrentHashMap<>();
  private final Starts localStarts = new Starts();

  /**
   * Local sandboxes of each tenant being started on this replica, not yet recorded, in the order
   * their provisions began: a provision counts only those that began before it, so that two at once
   * never refuse each other.
   */
  private static final class Starts {
    private final Map<String, java.util.TreeSet<Long>> starting = new java.util.HashMap<>();
    private long next;

    /** One more for {@code tenantId}: its place in line. */
    synchronized long begin(String tenantId) {
      long start = next++;
      starting.computeIfAbsent(tenantId, id -> new java.util.TreeSet<>()).add(start);
      return start;
    }

    /**
     * How many of {@code tenantId}'s sandboxes began starting before {@code start} and still are.
     */
    synchronized int before(String tenantId, long start) {
      java.util.TreeSet<Long> of = starting.get(tenantId);
      return of == null ? 0 : of.headSet(start).size();
    }

    synchronized void end(String tenantId, long start) {
      java.util.TreeSet<Long> of = starting.get(tenantId);
      if (of != null && of.remove(start) && of.isEmpty()) {
        starting.remove(tenantId);
      }
    }
  }

  private static final Duration TOUCH_EVERY = Duration.ofSeconds(10);

  Sandboxes(
      SandboxRepository repository,
      Environments environments,
      Sessions sessions,
      Limits limits,
      LocalDriver local,
      KubernetesDriver kubernetes,
      SandboxConfig config,
      Clock clock,
      io.micrometer.core.instrument.MeterRegistry metrics) {
    this.metrics = metrics;
    this.repository = repository;
    this.environments = environments;
    this.sessions = sessions;
    this.limits = limits;
    this.local = local;
    this.kubernetes = kubernetes;
    this.config = config;
    this.clock = clock;
  }

  /**
   * {@code Provision} from a client: as {@link #provision}, but not for a session with
   * repositories. The session's harness takes the session's sandbox as its own, and only the
   * harness clones the repositories into the sandboxes it makes: it would work in a sandbox without
   * them.
   */
  public Uni<Sandbox> provisionForClient(
      Tenant tenant, String environmentId, SandboxResources overrides, String sessionId) {
    return provision(tenant, environmentId, overrides, sessionId, true);
  }

  /**
   * A new sandbox of {@code tenant} from one of its environments (empty id: the server's default,
   * local) with optional limit overrides, serving its session {@code sessionId} if not empty.
   *
   * @throws SessionSandboxExistsException (in the Uni) if that session has a sandbox already
   */
  public Uni<Sandbox> provision(
      Tenant tenant, String environmentId, SandboxResources overrides, String sessionId) {
    return provision(tenant, environmentId, overrides, sessionId, false);
  }

  private Uni<Sandbox> provision(
      Tenant tenant,
      String environmentId,
      SandboxResources overrides,
      String sessionId,
      boolean forClient) {
    return Uni.createFrom()
        .item(
            () -> {
              if (!environmentId.isEmpty()) {
                IdKind.ENVIRONMENT.require("environment_id", environmentId);
              }
              return EnvironmentRules.resources("resources", overrides);
            })
        .flatMap(ignored -> servedSession(tenant, sessionId))
        .flatMap(
            session ->
                environment(tenant, environmentFor(session, environmentId))
                    .flatMap(
                        environment -> {
                          boolean repositories =
                              session.map(served -> served.getResourcesCount() > 0).orElse(false);
                          if (forClient && repositories) {
                            throw new FailedPreconditionException(
                                "session "
                                    + sessionId
                                    + " has repositories, which only its harness clones into its"
                                    + " sandbox: provision without session_id, or let the harness"
                                    + " provision");
                          }
                          SandboxResources resources =
                              limits.resolve("resources", overrides, environment.getResources());
                          // a session has one sandbox: none is started (nor its setup run) for a
                          // session that has one; the record's insert checks again, race-free
                          return repository
                              .requireFree(sessionId)
                              .flatMap(
                                  free ->
                                      start(
                                          tenant, environment, resources, sessionId, repositories));
                        }))
        .invoke(this::endAtItsLifetime);
  }

  /**
   * The session a sandbox is for, if any. Fails if it is archived or terminated: nothing runs for
   * it any more.
   */
  private Uni<Optional<Session>> servedSession(Tenant tenant, String sessionId) {
    return sessionId.isEmpty()
        ? Uni.createFrom().item(Optional.empty())
        : sessions
            .get(tenant, sessionId)
            .map(
                session -> {
                  if (session.hasArchivedAt()
                      || session.getStatus()
                          == dev.corral.proto.v1.SessionStatus.SESSION_STATUS_TERMINATED) {
                    throw new FailedPreconditionException(
                        "session "
                            + sessionId
                            + " is "
                            + (session.hasArchivedAt() ? "archived" : "terminated")
                            + ": no sandbox is provisioned for it");
                  }
                  return Optional.of(session);
                });
  }

  /**
   * The environment of a sandbox: a session's comes from the session's environment (an empty {@code
   * environmentId} means it), whose networking and setup its harness relies on.
   */
  private static String environmentFor(Optional<Session> session, String environmentId) {
    if (session.isEmpty()) {
      return environmentId;
    }
    String own = session.get().getEnvironmentId();
    if (!environmentId.isEmpty() && !environmentId.equals(own)) {
      throw new InvalidArgumentException(
          "environment_id",
          "is not the environment of session "
              + session.get().getId()
              + " ("
              + (own.isEmpty() ? "the server's default" : own)
              + "); a session's sandbox comes from the session's environment: leave"
              + " environment_id empty");
    }
    return own;
  }

  /**
   * What a sandbox may reach through the egress proxy: nothing (no grant) unless its environment's
   * networking is limited or unrestricted, or its session has repositories (the git gateway).
   */
  static Optional<EgressGrant> egressOf(
      String sandboxId,
      String sessionId,
      Tenant tenant,
      Environment environment,
      boolean repositories) {
    NetworkMode mode = environment.getNetworking().getMode();
    boolean networked =
        mode == NetworkMode.NETWORK_MODE_LIMITED || mode == NetworkMode.NETWORK_MODE_UNRESTRICTED;
    if (!networked && !repositories) {
      return Optional.empty();
    }
    return Optional.of(new EgressGrant(sandboxId, sessionId, tenant, environment.getNetworking()));
  }

  /**
   * Runs {@code command} in a ready sandbox this replica can reach, after the sandbox's calls
   * before it. Cancelling the Uni stops the call.
   *
   * @throws SandboxLostException (in the Uni) if the sandbox died; it is then recorded as lost
   * @throws SandboxReleasedException (in the Uni) if it was released while the call ran
   */
  public Uni<ExecResult> run(Sandbox sandbox, SandboxCommand command) {
    return usable(sandbox)
        .flatMap(driver -> driver.run(sandbox.getId(), sandbox.getHost(), command))
        .invoke(ignored -> touch(sandbox.getId()))
        .onFailure(SandboxLostException.class)
        .recoverWithUni(failure -> lostOrReleased(sandbox, failure));
  }

  /**
   * Stops every process of the sandbox and starts its persistent shell afresh (its directory and
   * variables are reset).
   *
   * @throws SandboxLostException (in the Uni) if the sandbox died; it is then recorded as lost
   */
  public Uni<Void> restartShell(Sandbox sandbox) {
    return usable(sandbox)
        .flatMap(driver -> driver.restartShell(sandbox.getId(), sandbox.getHost()))
        .onFailure(SandboxLostException.class)
        .recoverWithUni(failure -> lostOrReleased(sandbox, failure));
  }

  /**
   * A sandbox that broke during a call is recorded as lost, unless it ended otherwise meanwhile
   * (released, or its lifetime over): then the call says so.
   */
  private <T> Uni<T> lostOrReleased(Sandbox sandbox, Throwable failure) {
    return repository
        .end(sandbox.getId(), SandboxState.SANDBOX_STATE_LOST, failure.getMessage())
        .flatMap(
            lost ->
                lost.isPresent()
                    // what is left of it (its lifetime's timer, a pod) goes now, not at the
                    // reconciler's next pass or at a lifetime days away
                    ? stop(sandbox)
                        .onItem()
                        .transformToUni(ignored -> Uni.createFrom().<T>failure(failure))
                    : repository
                        .find(sandbox.getId())
                        .flatMap(
                            record ->
                                Uni.createFrom()
                                    .<T>failure(
                                        record.getState() == SandboxState.SANDBOX_STATE_RELEASED
                                            ? new SandboxReleasedException(record)
                                            : failure)));
  }

  /** The driver of a ready sandbox (whose lifetime is not over) that this replica can use. */
  private Uni<SandboxDriver> usable(Sandbox sandbox) {
    return endIfExpired(sandbox).flatMap(this::usableNow);
  }

  private Uni<SandboxDriver> usableNow(Sandbox sandbox) {
    if (sandbox.getState() != SandboxState.SANDBOX_STATE_READY) {
      return Uni.createFrom().failure(notReady(sandbox));
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

  private static FailedPreconditionException notReady(Sandbox sandbox) {
    String why =
        sandbox.getState() == SandboxState.SANDBOX_STATE_RELEASED
            ? " (" + sandbox.getReleaseReason() + ")"
            : sandbox.getState() == SandboxState.SANDBOX_STATE_LOST
                ? " (" + sandbox.getLostReason() + ")"
                : "";
    return new FailedPreconditionException(
        "sandbox " + sandbox.getId() + " is " + stateName(sandbox) + why);
  }

  /**
   * Records the use off the answer's path, at most every {@link #TOUCH_EVERY} per sandbox:
   * last_used_at is informational, and a commit per call would cost more than the call.
   */
  private void touch(String sandboxId) {
    long now = System.nanoTime();
    Long last = touched.get(sandboxId);
    if (last != null && now - last < TOUCH_EVERY.toNanos()) {
      return;
    }
    if (touched.size() >= 10_000) {
      touched.clear();
    }
    touched.put(sandboxId, now);
    repository
        .used(sandboxId)
        .subscribe()
        .with(
            ignored -> {},
            failure ->
                LOGGER.debugf(
                    "sandbox=%s last use not recorded: %s", sandboxId, failure.getMessage()));
  }

  /**
   * A driver's name in the log, in metrics and in the database: {@code local} or {@code
   * kubernetes}.
   */
  public static String driverName(dev.corral.proto.v1.SandboxDriver driver) {
    return driver == dev.corral.proto.v1.SandboxDriver.SANDBOX_DRIVER_KUBERNETES
        ? "kubernetes"
        : "local";
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

  /** {@code tenant}'s sandbox as it is now: one whose lifetime is over reads released. */
  public Uni<Sandbox> get(Tenant tenant, String sandboxId) {
    return Uni.createFrom()
        .item(() -> IdKind.SANDBOX.require("sandbox_id", sandboxId))
        .flatMap(id -> repository.find(tenant, id))
        .flatMap(this::endIfExpired);
  }

  public Uni<Page<Sandbox>> list(
      Tenant tenant, int pageSize, String pageToken, String sessionId, boolean includeEnded) {
    return Uni.createFrom()
        .item(() -> Paging.pageSize("page_size", pageSize, 20, 100))
        .flatMap(
            size ->
                repository
                    .list(
                        tenant,
                        Paging.keyOf("page_token", pageToken, IdKind.SANDBOX::isValid),
                        sessionId.isEmpty()
                            ? null
                            : IdKind.SESSION.require("session_id", sessionId),
                        includeEnded,
                        size + 1)
                    .flatMap(this::endExpired)
                    .map(sandboxes -> page(sandboxes, size, includeEnded)));
  }

  /**
   * A page of the {@code size + 1} rows read. Without the ended ones, those whose lifetime ended
   * since the read are left out, but the page still ends where the rows did, so that the next one
   * starts after them and no live sandbox behind them is skipped.
   */
  private static Page<Sandbox> page(List<Sandbox> rows, int size, boolean includeEnded) {
    if (includeEnded) {
      return Page.of(rows, size, Sandbox::getId);
    }
    boolean more = rows.size() > size;
    List<Sandbox> read = more ? rows.subList(0, size) : rows;
    return new Page<>(
        read.stream().filter(Sandboxes::isLive).toList(),
        more ? Paging.token(read.get(size - 1).getId()) : "");
  }

  /** Stops a sandbox through the API; releasing an ended one returns it as it is. */
  public Uni<Sandbox> release(Tenant tenant, String sandboxId) {
    return get(tenant, sandboxId).flatMap(sandbox -> release(sandbox, RELEASED_BY_API));
  }

  /**
   * Releases the session's sandbox {@code sandboxId} that is still being provisioned, because the
   * session's harness needs one now: a provisioning of a client, or of a replica that died before
   * it finished (whose record would otherwise hold the session until the reconciler gives up on
   * it). The provisioning, if it still runs, finds its record ended and stops what it made.
   */
  public Uni<Void> supersede(String sandboxId) {
    return release(sandboxId, SUPERSEDED).replaceWithVoid();
  }

  /** Releases a live sandbox for {@code reason}, and stops it; an ended one is returned as is. */
  Uni<Sandbox> release(Sandbox sandbox, String reason) {
    return repository
        .end(sandbox.getId(), SandboxState.SANDBOX_STATE_RELEASED, reason)
        .flatMap(
            ended ->
                ended.isEmpty()
                    ? Uni.createFrom().item(sandbox)
                    : stop(ended.get()).replaceWith(ended.get()));
  }

  /** Releases the sandbox {@code sandboxId} for {@code reason}, if it still lives. */
  Uni<Sandbox> release(String sandboxId, String reason) {
    return repository.find(sandboxId).flatMap(sandbox -> release(sandbox, reason));
  }

  /** A session that ends releases its sandboxes at once (the reconciler is the safety net). */
  void sessionEnded(@ObservesAsync SessionEnded ended) {
    repository
        .liveOf(ended.sessionId())
        .toMulti()
        .flatMap(Multi.createFrom()::iterable)
        .onItem()
        .transformToUniAndConcatenate(sandbox -> release(sandbox, SESSION_ENDED))
        .collect()
        .asList()
        .subscribe()
        .with(
            released -> {},
            failure ->
                LogFields.session(ended.sessionId())
                    .log(
                        () ->
                            LOGGER.warnf(
                                "sandboxes of ended session %s not released now (the reconciler"
                                    + " will): %s",
                                ended.sessionId(), failure.getMessage())));
  }

  /** The session's newest ready sandbox whose lifetime is not over, if any. */
  public Uni<Optional<Sandbox>> currentOf(String sessionId) {
    return repository.currentOf(sessionId);
  }

  /** Whether the session had a sandbox that is gone. */
  public Uni<Boolean> hadOne(String sessionId) {
    return repository.hadOne(sessionId);
  }

  /** The environment a session's sandboxes come from, and the session's tenant. */
  public Uni<SessionEnvironment> environmentOfSession(String sessionId) {
    return sessions
        .find(sessionId)
        .flatMap(
            session -> {
              Tenant tenant = new Tenant(session.getTenantId());
              return environment(tenant, session.getEnvironmentId())
                  .map(
                      environment ->
                          new SessionEnvironment(tenant, environment, session.getResourcesList()));
            });
  }

  /** Where a session's sandboxes come from, and what they get: its repositories. */
  public record SessionEnvironment(
      Tenant tenant,
      Environment environment,
      List<dev.corral.proto.v1.SessionResource> resources) {}

  /** Releases a live sandbox whose lifetime is over (as of when it ended) and stops it. */
  Uni<Sandbox> endIfExpired(Sandbox sandbox) {
    if (!isLive(sandbox) || !expired(sandbox)) {
      return Uni.createFrom().item(sandbox);
    }
    return repository
        .expire(sandbox.getId(), lifetimeOver(sandbox))
        .flatMap(
            ended ->
                ended.isEmpty()
                    ? repository.find(sandbox.getId())
                    : stop(ended.get()).replaceWith(ended.get()));
  }

  private Uni<List<Sandbox>> endExpired(List<Sandbox> sandboxes) {
    if (sandboxes.stream().noneMatch(sandbox -> isLive(sandbox) && expired(sandbox))) {
      return Uni.createFrom().item(sandboxes);
    }
    return Multi.createFrom()
        .iterable(sandboxes)
        .onItem()
        .transformToUniAndConcatenate(this::endIfExpired)
        .collect()
        .asList();
  }

  /** Whether this replica holds a timer to end the sandbox when its lifetime does. */
  public boolean endsAtItsLifetimeHere(String sandboxId) {
    return lifetimes.containsKey(sandboxId);
  }

  /** Ends the sandbox when its lifetime does (on this replica; reads and the reconciler also). */
  private void endAtItsLifetime(Sandbox sandbox) {
    if (!sandbox.hasExpiresAt()) {
      return;
    }
    Duration left = Duration.between(clock.instant(), ProtoTime.toInstant(sandbox.getExpiresAt()));
    Cancellable timer =
        Uni.createFrom()
            .voidItem()
            .onItem()
            .delayIt()
            .by(left.isNegative() ? Duration.ZERO : left)
            .flatMap(ignored -> repository.find(sandbox.getId()))
            .flatMap(this::endIfExpired)
            .subscribe()
            .with(
                ended -> lifetimes.remove(sandbox.getId()),
                failure -> {
                  lifetimes.remove(sandbox.getId());
                  LogFields.sandbox(sandbox.getId())
                      .withSession(sandbox.getSessionId())
                      .log(
                          () ->
                              LOGGER.warnf(
                                  "sandbox=%s not ended at its lifetime (the reconciler will): %s",
                                  sandbox.getId(), failure.getMessage()));
                });
    lifetimes.put(sandbox.getId(), timer);
  }

  private boolean expired(Sandbox sandbox) {
    return sandbox.hasExpiresAt()
        && !ProtoTime.toInstant(sandbox.getExpiresAt()).isAfter(clock.instant());
  }

  private static String lifetimeOver(Sandbox sandbox) {
    return "its lifetime of " + sandbox.getResources().getLifetimeSeconds() + " s ended";
  }

  Uni<Void> stop(Sandbox sandbox) {
    touched.remove(sandbox.getId());
    Cancellable timer = lifetimes.remove(sandbox.getId());
    if (timer != null) {
      timer.cancel();
    }
    return driver(sandbox)
        .release(sandbox.getId(), sandbox.getHost())
        .onFailure()
        .recoverWithItem(
            failure -> {
              LogFields.sandbox(sandbox.getId())
                  .withSession(sandbox.getSessionId())
                  .log(
                      () ->
                          LOGGER.warnf(
                              "sandbox=%s could not be stopped now (the reconciler retries): %s",
                              sandbox.getId(), failure.getMessage()));
              return null;
            });
  }

  Uni<Environment> environment(Tenant tenant, String environmentId) {
    if (environmentId.isEmpty()) {
      return Uni.createFrom().item(this::defaultEnvironment);
    }
    return environments.usable(tenant, "environment_id", environmentId);
  }

  private Uni<Sandbox> start(
      Tenant tenant,
      Environment environment,
      SandboxResources resources,
      String sessionId,
      boolean repositories) {
    long begun = System.nanoTime();
    String driverName = driverName(environment.getDriver());
    return startNow(tenant, environment, resources, sessionId, repositories)
        .onItemOrFailure()
        .invoke(
            (sandbox, failure) -> {
              metrics
                  .counter(
                      "corral.sandbox.provisions",
                      "driver",
                      driverName,
                      "outcome",
                      failure == null ? "ok" : "failed")
                  .increment();
              if (failure == null) {
                io.micrometer.core.instrument.Timer.builder("corral.sandbox.provision")
                    .description("Provisioning a sandbox, from the request to a ready sandbox")
                    .tag("driver", driverName)
                    .publishPercentileHistogram()
                    .register(metrics)
                    .record(System.nanoTime() - begun, java.util.concurrent.TimeUnit.NANOSECONDS);
              }
            });
  }

  private Uni<Sandbox> startNow(
      Tenant tenant,
      Environment environment,
      SandboxResources resources,
      String sessionId,
      boolean repositories) {
    SandboxDriver driver = driverFor(environment);
    String id = IdKind.SANDBOX.next();
    String host = driver == kubernetes ? KubernetesDriver.podName(id) : local.host();
    SandboxDriver.SandboxSpec spec =
        new SandboxDriver.SandboxSpec(
            id,
            sessionId,
            environment,
            resources,
            egressOf(id, sessionId, tenant, environment, repositories));
    int maxLive = config.maxLivePerTenant();
    java.util.function.Function<List<dev.corral.proto.v1.LimitEnforcement>, Uni<Sandbox>> record =
        limits ->
            repository.insert(
                tenant,
                id,
                environment.getId(),
                sessionId,
                environment.getDriver(),
                host,
                resources,
                limits,
                maxLive);
    if (driver == local) {
      // A local sandbox dies with this replica, so it is recorded once it runs, in one write; the
      // tenant's room is checked before it starts and again, under the tenant's lock, at the write.
      // Until it has started it is counted here, in memory (its setup can run for as long as a
      // call may); the write, which counts the tenant's rows under its lock, has the last word.
      return Uni.createFrom()
          .deferred(
              () -> {
                long start = localStarts.begin(tenant.id());
                return repository
                    .requireRoom(tenant, maxLive, () -> localStarts.before(tenant.id(), start))
                    .flatMap(room -> local.provision(spec))
                    .onTermination()
                    .invoke(() -> localStarts.end(tenant.id(), start))
                    .flatMap(
                        started ->
                            record
                                .apply(started.limits())
                                .onFailure()
                                .call(failure -> local.release(id, host)));
              })
          .onCancellation()
          .call(() -> givenUp(id, host, local));
    }
    return Uni.createFrom()
        .item(
            () -> {
              driver.admit(spec);
              return spec;
            })
        .flatMap(admitted -> record.apply(null))
        .flatMap(ignored -> driver.provision(spec))
        .onFailure()
        .call(
            failure ->
                repository.end(
                    id,
                    SandboxState.SANDBOX_STATE_LOST,
                    "provisioning failed: " + failure.getMessage()))
        .flatMap(started -> repository.ready(id, started.host(), started.limits()))
        .flatMap(
            ready ->
                ready.isPresent()
                    ? Uni.createFrom().item(ready.get())
                    : driver.release(id, host).replaceWith(repository.find(id)))
        .onCancellation()
        .call(() -> givenUp(id, host, driver));
  }

  /**
   * Ends a sandbox whose provisioning was given up (its client gone, its session's turn
   * interrupted) at whatever step it had reached: its record, if written, and what runs. A record
   * or a pod whose write was still under way is left for the reconciler, which ends a local sandbox
   * without a record, a record without its process and a pod without a live record.
   */
  private Uni<Void> givenUp(String id, String host, SandboxDriver driver) {
    return repository
        .end(id, SandboxState.SANDBOX_STATE_RELEASED, "its provisioning was given up")
        .onFailure()
        .recoverWithNull()
        .flatMap(
            ended ->
                driver.release(
                    id,
                    ended != null && ended.isPresent() && !ended.get().getHost().isEmpty()
                        ? ended.get().getHost() // a pod taken from a warm pool has its own name
                        : host))
        .onFailure()
        .invoke(failure -> LOGGER.warnf("ending given-up sandbox %s: %s", id, failure.getMessage()))
        .onFailure()
        .recoverWithNull();
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

  private static boolean isLive(Sandbox sandbox) {
    return sandbox.getState() == SandboxState.SANDBOX_STATE_READY
        || sandbox.getState() == SandboxState.SANDBOX_STATE_PROVISIONING;
  }

  /** The environment of sessions and Provision calls that name none. */
  private Environment defaultEnvironment() {
    dev.corral.proto.v1.SandboxDriver driver =
        switch (config.defaultDriver().toLowerCase(Locale.ROOT)) {
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
    return sandbox.getState().name().replace("SANDBOX_STATE_", "").toLowerCase(Locale.ROOT);
  }
}
