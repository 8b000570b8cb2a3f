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
 */
@ApplicationScoped
public class Leases {

  static final String ACQUIRE =
      """
      UPDATE sessions
      SET lease_holder = $2, lease_epoch = lease_epoch + 1,
          lease_expires_at = clock_timestamp() + $3 * interval '1 millisecond'
      WHERE id = $1
        AND archived_at IS NULL AND status <> 'terminated'
        AND (lease_expires_at IS NULL OR lease_expires_at <= clock_timestamp())
      RETURNING lease_holder, lease_epoch, lease_expires_at
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

  static final String PENDING =
      """
      SELECT id FROM sessions
      WHERE work_pending AND archived_at IS NULL AND status <> 'terminated'
        AND (lease_expires_at IS NULL OR lease_expires_at <= clock_timestamp())
      ORDER BY updated_at
      LIMIT $1
      """;

  private final Pool pool;

  Leases(Pool pool) {
    this.pool = pool;
  }

  /**
   * Takes the lease if it is free or expired: a new epoch for {@code holder}. Empty if another
   * holder's lease is live.
   *
   * @throws NotFoundException, FailedPreconditionException (in the Uni) for an unknown, archived or
   *     terminated session
   */
  Uni<Optional<Lease>> acquire(String sessionId, String holder, long ttlMillis) {
    return pool.preparedQuery(ACQUIRE)
        .execute(Tuple.of(sessionId, holder, ttlMillis))
        .flatMap(
            rows ->
                rows.size() == 1
                    ? Uni.createFrom().item(Optional.of(lease(rows.iterator().next())))
                    : current(sessionId).map(ignored -> Optional.<Lease>empty()));
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

  /** Up to {@code limit} sessions with pending work and no live lease, oldest change first. */
  Uni<List<String>> pending(int limit) {
    return pool.preparedQuery(PENDING)
        .execute(Tuple.of(limit))
        .map(
            rows -> {
              List<String> ids = new ArrayList<>();
              rows.forEach(row -> ids.add(row.getString("id")));
              return ids;
            });
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
