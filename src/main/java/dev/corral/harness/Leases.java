package dev.corral.harness;

import dev.corral.common.FailedPreconditionException;
import dev.corral.common.NotFoundException;
import dev.corral.common.ProtoTime;
import dev.corral.proto.v1.Lease;
import io.smallrye.mutiny.Uni;
import io.vertx.mutiny.sqlclient.Pool;
import io.vertx.mutiny.sqlclient.Row;
import io.vertx.mutiny.sqlclient.Tuple;
import jakarta.enterprise.context.ApplicationScoped;
import java.time.OffsetDateTime;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Optional;
import java.util.Set;

/**
 * Session leases in PostgreSQL: who works a session, with an epoch that every take-over increments
 * (a fencing token every harness append is checked against) and an expiry in database time.
 *
 * <p>A disabled tenant's sessions are neither leased nor renewed: a harness working one loses its
 * lease at the next renewal and stops, as if its replica had died, and the session's pending work
 * waits until the tenant is enabled again.
 */
@ApplicationScoped
public class Leases {

  /**
   * Also says whether this took a lease over: one that was never given back but ran out (its holder
   * died), rather than a free one.
   */
  static final String ACQUIRE =
      """
      UPDATE sessions s
      SET lease_holder = $2, lease_epoch = s.lease_epoch + 1,
          lease_expires_at = clock_timestamp() + $3 * interval '1 millisecond'
      FROM (SELECT lease_expires_at AS was FROM sessions WHERE id = $1) old
      WHERE s.id = $1
        AND s.archived_at IS NULL AND s.status <> 'terminated'
        AND (s.lease_expires_at IS NULL OR s.lease_expires_at <= clock_timestamp())
        AND NOT EXISTS (SELECT 1 FROM tenants t WHERE t.id = s.tenant_id AND t.disabled_at IS NOT NULL)
      RETURNING s.lease_holder, s.lease_epoch, s.lease_expires_at, old.was IS NOT NULL AS took_over
      """;

  static final String CURRENT =
      """
      SELECT lease_holder, lease_epoch, lease_expires_at, archived_at IS NOT NULL AS archived, status
      FROM sessions WHERE id = $1
      """;

  static final String RENEW =
      """
      UPDATE sessions s
      SET lease_expires_at = clock_timestamp() + $3 * interval '1 millisecond'
      FROM unnest($1::text[], $2::bigint[]) AS l (id, epoch)
      WHERE s.id = l.id AND s.lease_epoch = l.epoch AND s.lease_expires_at > clock_timestamp()
        AND NOT EXISTS (SELECT 1 FROM tenants t WHERE t.id = s.tenant_id AND t.disabled_at IS NOT NULL)
      RETURNING s.id
      """;

  /** Gives a lease up; with the seq the harness saw last, also says there is no work pending. */
  static final String RELEASE =
      """
      UPDATE sessions
      SET lease_expires_at = NULL,
          work_pending = CASE WHEN last_seq = $3 THEN false ELSE work_pending END
      WHERE id = $1 AND lease_epoch = $2
      """;

  /**
   * Counts a run of {@code epoch} that ended on an error of its own. A run that was already giving
   * the turn up ({@code $3} failures or more before it) leaves the session without pending work,
   * and its count one short of {@code $3}: no scan takes it again until a client's event pends it,
   * and that event gets one run of its own before the next give-up. (An append that ends the lease,
   * a harness's idle, sets the count back to 0: see EventLog.)
   */
  static final String FAILED =
      """
      UPDATE sessions
      SET harness_failures =
              CASE WHEN harness_failures < $3 THEN harness_failures + 1 ELSE $3 - 1 END,
          work_pending = work_pending AND harness_failures < $3
      WHERE id = $1 AND lease_epoch = $2
      """;

  /** How many runs of the session in a row ended on an error of their own (0 if it is gone). */
  static final String FAILURES = "SELECT harness_failures FROM sessions WHERE id = $1";

  /** Says a session has work pending, whoever holds its lease. */
  static final String PEND =
      "UPDATE sessions SET work_pending = true WHERE id = $1 AND status <> 'terminated'";

  /**
   * Sessions with pending work and no live lease, taken in turns across tenants: each tenant's
   * oldest session first (by id, which grows with time), then each one's second, and so on, at most
   * {@code $2} of any tenant and none of the tenants in {@code $3} (those with no room left here).
   * Each tenant's few are read from its own part of {@code sessions_pending_tenant_idx}, so one
   * tenant's backlog costs the others nothing.
   */
  static final String PENDING =
      """
      SELECT p.id, p.tenant_id FROM tenants t
      CROSS JOIN LATERAL (
          SELECT s.id, s.tenant_id, s.updated_at,
                 row_number() OVER (ORDER BY s.id) AS turn
          FROM (
              SELECT id, tenant_id, updated_at FROM sessions
              WHERE tenant_id = t.id AND work_pending AND archived_at IS NULL
                AND status <> 'terminated'
                AND (lease_expires_at IS NULL OR lease_expires_at <= clock_timestamp())
              ORDER BY id
              LIMIT $2
          ) s
      ) p
      WHERE t.disabled_at IS NULL AND NOT (t.id = ANY ($3::text[]))
      ORDER BY p.turn, p.updated_at
      LIMIT $1
      """;

  /** Tenants that may run sessions. */
  static final String ACTIVE_TENANTS = "SELECT count(*) FROM tenants WHERE disabled_at IS NULL";

  /** A session with pending work and no live lease, and its tenant. */
  record Pending(String sessionId, String tenantId) {}

  private final Pool pool;
  private final io.micrometer.core.instrument.Counter takeOvers;

  Leases(Pool pool, io.micrometer.core.instrument.MeterRegistry metrics) {
    this.pool = pool;
    this.takeOvers =
        io.micrometer.core.instrument.Counter.builder("corral.lease.takeovers")
            .description("Leases taken over after their holder stopped renewing them")
            .register(metrics);
  }

  /**
   * Takes the lease if it is free or expired: a new epoch for {@code holder}. Empty if another
   * holder's lease is live.
   *
   * @throws NotFoundException, FailedPreconditionException (in the Uni) for an unknown, archived or
   *     terminated session
   */
  Uni<Optional<Lease>> acquire(String sessionId, String holder, long ttlMillis) {
    return take(sessionId, holder, ttlMillis).map(taken -> taken.map(Taken::lease));
  }

  /**
   * A lease taken, and whether it was taken over: its last holder neither renewed nor released it
   * (it died, or lost the database), rather than giving it back.
   */
  record Taken(Lease lease, boolean tookOver) {}

  /** {@link #acquire}, saying whether the lease was taken over. */
  Uni<Optional<Taken>> take(String sessionId, String holder, long ttlMillis) {
    return pool.preparedQuery(ACQUIRE)
        .execute(Tuple.of(sessionId, holder, ttlMillis))
        .flatMap(
            rows -> {
              if (rows.size() == 1) {
                Row row = rows.iterator().next();
                boolean tookOver = Boolean.TRUE.equals(row.getBoolean("took_over"));
                if (tookOver) {
                  takeOvers.increment();
                }
                return Uni.createFrom().item(Optional.of(new Taken(lease(row), tookOver)));
              }
              return current(sessionId).map(ignored -> Optional.<Taken>empty());
            });
  }

  /** The session's lease as it is now. */
  Uni<Lease> current(String sessionId) {
    return pool.preparedQuery(CURRENT)
        .execute(Tuple.of(sessionId))
        .map(
            rows -> {
              if (rows.size() == 0) {
                throw new NotFoundException("session", sessionId);
              }
              Row row = rows.iterator().next();
              if (row.getBoolean("archived")) {
                throw new FailedPreconditionException("session " + sessionId + " is archived");
              }
              if ("terminated".equals(row.getString("status"))) {
                throw new FailedPreconditionException("session " + sessionId + " is terminated");
              }
              return lease(row);
            });
  }

  /** Extends the given leases; returns the ids whose lease is still live (the others are lost). */
  Uni<Set<String>> renew(List<String> sessionIds, List<Long> epochs, long ttlMillis) {
    return pool.preparedQuery(RENEW)
        .execute(
            Tuple.of(sessionIds.toArray(String[]::new), epochs.toArray(Long[]::new), ttlMillis))
        .map(
            rows -> {
              Set<String> live = new HashSet<>();
              rows.forEach(row -> live.add(row.getString("id")));
              return live;
            });
  }

  /**
   * Gives the lease up early, if it still is {@code epoch}. If the log still ends at {@code
   * doneUpToSeq}, the harness found nothing to do in it, so no work is pending (-1 leaves the
   * flag).
   */
  Uni<Void> release(String sessionId, long epoch, long doneUpToSeq) {
    return pool.preparedQuery(RELEASE)
        .execute(Tuple.of(sessionId, epoch, doneUpToSeq))
        .replaceWithVoid();
  }

  /**
   * Counts a run of {@code epoch} that failed on its own error; from the run that had {@code
   * giveUpAfter} failures before it, the session is left until a client's event (see {@link
   * #FAILED}).
   */
  Uni<Void> failed(String sessionId, long epoch, int giveUpAfter) {
    return pool.preparedQuery(FAILED)
        .execute(Tuple.of(sessionId, epoch, giveUpAfter))
        .replaceWithVoid();
  }

  /** See {@link #FAILURES}. */
  Uni<Integer> failures(String sessionId) {
    return pool.preparedQuery(FAILURES)
        .execute(Tuple.of(sessionId))
        .map(rows -> rows.size() == 0 ? 0 : rows.iterator().next().getInteger(0));
  }

  /** Marks {@code sessionId} as having work pending (see {@link #PEND}). */
  Uni<Void> pend(String sessionId) {
    return pool.preparedQuery(PEND).execute(Tuple.of(sessionId)).replaceWithVoid();
  }

  /**
   * Up to {@code limit} sessions with pending work and no live lease, at most {@code perTenant} of
   * one tenant and none of {@code full}'s, in turns across tenants (see {@link #PENDING}).
   */
  Uni<List<Pending>> pending(int limit, int perTenant, List<String> full) {
    return pool.preparedQuery(PENDING)
        .execute(Tuple.of(limit, perTenant, full.toArray(String[]::new)))
        .map(
            rows -> {
              List<Pending> pending = new ArrayList<>();
              rows.forEach(
                  row -> pending.add(new Pending(row.getString("id"), row.getString("tenant_id"))));
              return pending;
            });
  }

  /** How many tenants may run sessions. */
  Uni<Integer> activeTenants() {
    return pool.preparedQuery(ACTIVE_TENANTS)
        .execute()
        .map(rows -> rows.iterator().next().getLong(0).intValue());
  }

  private static Lease lease(Row row) {
    Lease.Builder lease = Lease.newBuilder().setEpoch(row.getLong("lease_epoch"));
    if (row.getString("lease_holder") != null) {
      lease.setHolder(row.getString("lease_holder"));
    }
    OffsetDateTime expiresAt = row.getOffsetDateTime("lease_expires_at");
    if (expiresAt != null) {
      lease.setExpiresAt(ProtoTime.of(expiresAt));
    }
    return lease.build();
  }
}
