package dev.corral.harness;

import dev.corral.common.FailedPreconditionException;
import dev.corral.common.LogFields;
import dev.corral.common.ProtoTime;
import dev.corral.common.ResourceExhaustedException;
import dev.corral.model.ModelConfig;
import dev.corral.proto.v1.Lease;
import dev.corral.session.LeaseClaim;
import dev.corral.session.LeaseClaims;
import dev.corral.session.SessionWorkArrived;
import io.quarkus.runtime.ShutdownEvent;
import io.quarkus.runtime.StartupEvent;
import io.smallrye.mutiny.Uni;
import io.vertx.core.Vertx;
import jakarta.annotation.Priority;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Observes;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import org.jboss.logging.Logger;

/**
 * Gives every session with pending work exactly one harness, on some replica.
 *
 * <p>Every replica scans for sessions with pending work and no live lease and takes as many as it
 * has room for (the lease's conditional update picks one winner per session); a user event that
 * committed here starts its harness at once. Leases of running harnesses are renewed in one
 * statement; a harness whose lease was not renewed stops. A replica that dies stops renewing, and
 * another takes its sessions over within the lease TTL plus one scan.
 */
@ApplicationScoped
public class Dispatcher implements LeaseClaims {

  private static final Logger LOGGER = Logger.getLogger(Dispatcher.class);

  private final Vertx vertx;
  private final HarnessConfig config;
  private final Leases leases;
  private final HarnessServices services;
  private final String replicaId;
  private final Map<String, HarnessRun> runs = new ConcurrentHashMap<>();

  /**
   * When each run's lease was last known to hold (System.nanoTime() when its take or last
   * successful renewal was sent). A run that cannot renew stops on its own before its lease can
   * expire, so it never works on while another replica has taken the session over.
   */
  private final Map<HarnessRun, Long> confirmed = new ConcurrentHashMap<>();

  /** The tenant of each run, for its tenant's share of this replica's slots. */
  private final Map<HarnessRun, String> runTenants = new ConcurrentHashMap<>();

  /** Sessions whose lease this replica is taking, and their tenants. */
  private final Map<String, String> starting = new ConcurrentHashMap<>();

  /**
   * Leases that user work took for this replica while the session's run was ending (it had let the
   * lease go) or its start was under way (and will find the lease taken): each is launched once
   * that run is gone or that start has failed. Guarded by {@code runs}.
   */
  private final Map<String, Parked> parked = new java.util.HashMap<>();

  private record Parked(SessionWorkArrived work, long takenAt) {}

  private long scanTimer = -1;
  private long renewTimer = -1;
  private long deadlineTimer = -1;
  private boolean scanning;

  /** Tenants that may run sessions, as the last scan counted them. */
  private volatile int tenants = 1;

  private volatile boolean stopping;

  Dispatcher(
      Vertx vertx,
      HarnessConfig config,
      Leases leases,
      HarnessServices services,
      dev.corral.common.Replica replica) {
    this.vertx = vertx;
    this.config = config;
    this.leases = leases;
    this.services = services;
    this.replicaId = replica.id();
  }

  void start(@Observes StartupEvent event) {
    if (!config.enabled()) {
      return;
    }
    if (config.maxConcurrentSessionsPerTenant().orElse(1) < 1) {
      throw new IllegalStateException(
          "corral.harness.max-concurrent-sessions-per-tenant must be at least 1");
    }
    if (config.maxRunErrors() < 1) {
      throw new IllegalStateException("corral.harness.max-run-errors must be at least 1");
    }
    ModelConfig model = services.model().config();
    ModelConfig.thinkingProblem(model.thinkingBudgetTokens(), model.maxTokens())
        .ifPresent(
            problem -> {
              throw new IllegalStateException(problem);
            });
    io.micrometer.core.instrument.Gauge.builder("corral.harness.runs", runs, Map::size)
        .description("Sessions a harness works on this replica")
        .register(services.metrics());
    io.micrometer.core.instrument.Gauge.builder("corral.harness.starting", starting, Map::size)
        .description("Sessions whose lease this replica is taking, to start their harness")
        .register(services.metrics());
    leases.activeTenants().subscribe().with(count -> tenants = count, this::logFailure);
    scanTimer = vertx.setPeriodic(config.scanInterval().toMillis(), id -> scan());
    renewTimer = vertx.setPeriodic(config.renewInterval().toMillis(), id -> renew());
    deadlineTimer = vertx.setPeriodic(checkEvery().toMillis(), id -> stopUnconfirmed());
    LOGGER.infof("Harness dispatcher started as %s", replicaId);
  }

  /** Hands sessions over before the database and HTTP server go away. */
  void stop(@Observes @Priority(1) ShutdownEvent event) {
    stopping = true;
    vertx.cancelTimer(scanTimer);
    vertx.cancelTimer(renewTimer);
    vertx.cancelTimer(deadlineTimer);
    runs.values().forEach(HarnessRun::shutdown);
  }

  public String replicaId() {
    return replicaId;
  }

  /** Sessions this replica works now. */
  public Set<String> activeSessions() {
    return Set.copyOf(runs.keySet());
  }

  /**
   * Claims the lease for user work appended here, if this replica runs harnesses and has room, for
   * the session's tenant too.
   */
  @Override
  public Optional<LeaseClaim> claimFor(String sessionId, String tenantId) {
    boolean room = runs.size() + starting.size() < config.maxConcurrentSessions();
    if (!config.enabled() || stopping || !room || slotsOf(tenantId) >= share()) {
      return Optional.empty();
    }
    return Optional.of(new LeaseClaim(replicaId, config.leaseTtl().toMillis()));
  }

  /**
   * User work committed here. If its append took the lease for this replica, the harness starts
   * now; otherwise a live harness (here or elsewhere) sees the work in its tail, or a scan finds
   * it.
   */
  void workArrived(@Observes SessionWorkArrived work) {
    if (work.claimed() == null
        || !replicaId.equals(work.claimed().getHolder())
        || !config.enabled()
        || stopping) {
      return;
    }
    long takenAt = System.nanoTime(); // taken by the append that just committed: a moment ago
    synchronized (runs) {
      HarnessRun run = runs.get(work.sessionId());
      if (run != null && run.epoch() >= work.claimed().getEpoch()) {
        return; // the run holds this lease, and will see the work in its tail
      }
      if (run != null || starting.containsKey(work.sessionId())) {
        // the run let the lease go and is ending, or a start is under way that will find the lease
        // taken: this lease is launched once they are over
        // (the first of the lease's appends took it: a later one keeps its time)
        parked.merge(
            work.sessionId(),
            new Parked(work, takenAt),
            (earlier, later) ->
                earlier.work().claimed().getEpoch() == later.work().claimed().getEpoch()
                    ? earlier
                    : later);
        return;
      }
      start(work, takenAt);
    }
  }

  /** Holding the lock on {@code runs}: starts the harness on a lease user work took for it. */
  private void start(SessionWorkArrived work, long takenAt) {
    if (slotsOf(work.tenantId()) >= share()) {
      // other appends of the tenant claimed the last of its slots meanwhile: the work stays
      // pending, for a scan (here or elsewhere) to take when the tenant has room
      leases
          .release(work.sessionId(), work.claimed().getEpoch(), -1)
          .subscribe()
          .with(ignored -> {}, this::logFailure);
      return;
    }
    // the margin covers the moment between the commit and takenAt
    // (a lease user work took: taken over or given back, it cannot tell; an orphan call is not
    // counted)
    launch(work.sessionId(), work.tenantId(), work.claimed(), takenAt, false);
  }

  /**
   * Holding the lock on {@code runs}: the lease parked for {@code sessionId}, launched if it is
   * newer than {@code after} (the epoch of the run that ended, or of the start that failed: -1) and
   * nothing runs the session now.
   */
  private void unpark(String sessionId, long after) {
    Parked next = parked.remove(sessionId);
    if (next != null
        && next.work().claimed().getEpoch() > after
        && !stopping
        && !runs.containsKey(sessionId)
        && !starting.containsKey(sessionId)) {
      start(next.work(), next.takenAt());
    }
  }

  /**
   * Makes sure a harness works {@code tenant}'s session {@code sessionId}: this replica's, started
   * now if the lease was free, or the one whose live lease is reported.
   */
  public Uni<WakeResult> wake(dev.corral.common.Tenant tenant, String sessionId) {
    return services
        .sessions()
        .get(tenant, sessionId)
        .flatMap(
            session -> {
              // before any check of room here: a closed session is no retry away from starting
              if (session.hasArchivedAt()) {
                throw new FailedPreconditionException("session " + sessionId + " is archived");
              }
              if (session.getStatus()
                  == dev.corral.proto.v1.SessionStatus.SESSION_STATUS_TERMINATED) {
                throw new FailedPreconditionException("session " + sessionId + " is terminated");
              }
              return wake(sessionId, session.getTenantId());
            });
  }

  private Uni<WakeResult> wake(String sessionId, String tenantId) {
    if (!config.enabled() || stopping) {
      return Uni.createFrom()
          .failure(new FailedPreconditionException("the harness is disabled on this replica"));
    }
    HarnessRun running = runs.get(sessionId);
    if (running != null) {
      return leases.current(sessionId).map(lease -> new WakeResult(lease, false));
    }
    if (runs.size() + starting.size() >= config.maxConcurrentSessions()) {
      return Uni.createFrom()
          .failure(new ResourceExhaustedException("this replica works as many sessions as it may"));
    }
    int share = share();
    if (slotsOf(tenantId) >= share) {
      // no room for the tenant here; but a harness elsewhere may work the session already
      return leases
          .current(sessionId)
          .map(
              lease -> {
                boolean elsewhere =
                    !lease.getHolder().isEmpty()
                        && !lease.getHolder().equals(replicaId)
                        && lease.hasExpiresAt()
                        && ProtoTime.toInstant(lease.getExpiresAt()).isAfter(Instant.now());
                if (!elsewhere) {
                  throw new ResourceExhaustedException(
                      "this replica works as many sessions of tenant "
                          + tenantId
                          + " as it may ("
                          + share
                          + ", corral.harness.max-concurrent-sessions-per-tenant); a session with"
                          + " work pending starts when one of them stops");
                }
                return new WakeResult(lease, false);
              });
    }
    return tryStart(sessionId, tenantId)
        .flatMap(
            started ->
                started.isPresent()
                    ? Uni.createFrom().item(new WakeResult(started.get(), true))
                    : leases.current(sessionId).map(lease -> new WakeResult(lease, false)));
  }

  /** The outcome of {@link #wake}: the lease after the call, and whether this call started it. */
  public record WakeResult(Lease lease, boolean started) {}

  private Uni<Optional<Lease>> tryStart(String sessionId, String tenantId) {
    synchronized (runs) {
      // checked and taken together, so that starts racing on other event loops never pass the
      // tenant's share
      if (runs.containsKey(sessionId)
          || starting.containsKey(sessionId)
          || slotsOf(tenantId) >= share()) {
        return Uni.createFrom().item(Optional.empty());
      }
      starting.put(sessionId, tenantId);
    }
    long sent = System.nanoTime(); // the lease runs from when the database takes it, after this
    return leases
        .take(sessionId, replicaId, config.leaseTtl().toMillis())
        .invoke(
            taken ->
                taken.ifPresent(
                    lease ->
                        launchIfIdle(sessionId, tenantId, lease.lease(), sent, lease.tookOver())))
        .map(taken -> taken.map(Leases.Taken::lease))
        .eventually(
            () -> {
              synchronized (runs) {
                starting.remove(sessionId);
                // user work may have taken the lease this start did not get: it runs now
                unpark(sessionId, runs.containsKey(sessionId) ? Long.MAX_VALUE : -1);
              }
            });
  }

  private void launchIfIdle(
      String sessionId, String tenantId, Lease lease, long takenAt, boolean tookOver) {
    synchronized (runs) {
      if (!runs.containsKey(sessionId)) {
        launch(sessionId, tenantId, lease, takenAt, tookOver);
      }
    }
  }

  /**
   * @param takenAt System.nanoTime() when the lease's take was sent, or before
   * @param tookOver the lease was taken over from a holder that stopped renewing it
   */
  private void launch(
      String sessionId, String tenantId, Lease lease, long takenAt, boolean tookOver) {
    HarnessRun run =
        new HarnessRun(
            sessionId,
            lease.getEpoch(),
            // A context of its own: nothing of the request that woke it (its trace, its MDC)
            // follows the run's work.
            io.smallrye.common.vertx.VertxContext.createNewDuplicatedContext(
                vertx.getOrCreateContext()),
            services,
            config.maxRunErrors(),
            tookOver,
            ended -> {
              synchronized (runs) {
                runs.remove(sessionId, ended);
                confirmed.remove(ended);
                runTenants.remove(ended);
                unpark(sessionId, ended.epoch());
              }
              // (without room here the scan finds it: its run marked it as having work)
              if (ended.wantsRestart()
                  && !stopping
                  && runs.size() + starting.size() < config.maxConcurrentSessions()) {
                tryStart(sessionId, tenantId).subscribe().with(ignored -> {}, this::logFailure);
              }
            });
    confirmed.put(run, takenAt);
    runTenants.put(run, tenantId);
    runs.put(sessionId, run);
    LogFields.session(sessionId)
        .epoch(lease.getEpoch())
        .log(
            () ->
                LOGGER.debugf("sessionId=%s epoch=%d harness starts", sessionId, lease.getEpoch()));
    run.start();
  }

  private void scan() {
    int room = config.maxConcurrentSessions() - runs.size() - starting.size();
    if (stopping || scanning) {
      return;
    }
    scanning = true;
    leases
        .activeTenants()
        .invoke(count -> tenants = count)
        .flatMap(
            count ->
                room <= 0
                    ? Uni.createFrom().item(List.<Leases.Pending>of())
                    : leases.pending(room, share(), fullTenants()))
        .onItem()
        .transformToMulti(
            pending -> io.smallrye.mutiny.Multi.createFrom().iterable(within(pending)))
        .onItem()
        .transformToUniAndMerge(next -> tryStart(next.sessionId(), next.tenantId()))
        .collect()
        .last()
        .eventually(() -> scanning = false)
        .subscribe()
        .with(ignored -> {}, this::logFailure);
  }

  /** The sessions of {@code pending} whose tenants have room here, in order. */
  private List<Leases.Pending> within(List<Leases.Pending> pending) {
    Map<String, Integer> slots = new java.util.HashMap<>();
    List<Leases.Pending> taken = new ArrayList<>();
    for (Leases.Pending next : pending) {
      int used = slots.computeIfAbsent(next.tenantId(), this::slotsOf);
      if (used < share()) {
        slots.put(next.tenantId(), used + 1);
        taken.add(next);
      }
    }
    return taken;
  }

  /**
   * The slots one tenant may take here: the configured share, or its default for the tenants the
   * last scan counted (all of them while there is one tenant).
   */
  int share() {
    return config.perTenantSlots(tenants);
  }

  /** Tenants whose sessions take all of their share here. */
  private List<String> fullTenants() {
    int share = share();
    return java.util.stream.Stream.concat(runTenants.values().stream(), starting.values().stream())
        .distinct()
        .filter(tenant -> slotsOf(tenant) >= share)
        .toList();
  }

  /** Slots {@code tenantId}'s sessions take on this replica: running, or being started. */
  private int slotsOf(String tenantId) {
    int used = 0;
    for (String tenant : runTenants.values()) {
      used += tenant.equals(tenantId) ? 1 : 0;
    }
    for (String tenant : starting.values()) {
      used += tenant.equals(tenantId) ? 1 : 0;
    }
    return used;
  }

  private void renew() {
    if (runs.isEmpty()) {
      return;
    }
    long sent = System.nanoTime();
    List<HarnessRun> renewing = new ArrayList<>(runs.values());
    List<String> ids = renewing.stream().map(HarnessRun::sessionId).toList();
    List<Long> epochs = renewing.stream().map(HarnessRun::epoch).toList();
    leases
        .renew(ids, epochs, config.leaseTtl().toMillis())
        .subscribe()
        .with(
            live ->
                renewing.forEach(
                    run -> {
                      if (live.contains(run.sessionId())) {
                        confirmed.computeIfPresent(run, (held, at) -> Math.max(at, sent));
                      } else {
                        run.leaseLost();
                      }
                    }),
            this::logFailure);
  }

  /**
   * Stops each run whose lease may expire before a renewal can confirm it (renewals have not got
   * through: the database is slow or out of reach), so that it never works on beside a replica that
   * takes the session over: once its last confirmed renewal was sent a lease's time less a margin
   * ago. With the defaults (3 s, renewals every second, checked every 250 ms) that is 2.5 s: one
   * slow renewal stops nothing, two in a row do.
   */
  private void stopUnconfirmed() {
    long now = System.nanoTime();
    long ttl = config.leaseTtl().toNanos();
    long deadline = ttl - Math.max(ttl / 6, 2 * checkEvery().toNanos());
    for (HarnessRun run : runs.values()) {
      Long at = confirmed.get(run);
      if (at != null && now - at >= deadline) {
        LOGGER.warnf(
            "sessionId=%s epoch=%d its lease could not be renewed in time: the run stops",
            run.sessionId(), run.epoch());
        confirmed.remove(run);
        run.leaseLost();
      }
    }
  }

  /** How often {@link #stopUnconfirmed} looks: a twelfth of the lease, within 50–250 ms. */
  private Duration checkEvery() {
    return Duration.ofMillis(Math.max(50, Math.min(250, config.leaseTtl().toMillis() / 12)));
  }

  private void logFailure(Throwable failure) {
    LOGGER.debugf("Dispatcher: %s", failure.getMessage());
  }
}
