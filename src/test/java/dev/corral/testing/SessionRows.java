package dev.corral.testing;

import io.vertx.mutiny.sqlclient.Pool;
import io.vertx.mutiny.sqlclient.SqlConnection;
import io.vertx.mutiny.sqlclient.Tuple;
import java.time.Duration;

/** A session's row in the database, for tests that hold its lock or read it directly. */
public final class SessionRows {

  private static final Duration WAIT = Duration.ofSeconds(10);

  private SessionRows() {}

  /**
   * Holds the session's row lock in a transaction of its own, which the idle-in-transaction timeout
   * leaves alone; {@link #commit} or {@link #rollback} lets it go.
   */
  public static SqlConnection lock(Pool pool, String sessionId) {
    return lockRow(pool, "sessions", sessionId);
  }

  /** Holds the lock of the row of {@code table} whose id is {@code id}, as {@link #lock} does. */
  public static SqlConnection lockRow(Pool pool, String table, String id) {
    SqlConnection connection = transaction(pool);
    connection
        .preparedQuery("SELECT 1 FROM " + table + " WHERE id = $1 FOR UPDATE")
        .execute(Tuple.of(id))
        .await()
        .atMost(WAIT);
    return connection;
  }

  /**
   * Holds a lock on the whole events table that every read and append of every session waits for,
   * as {@link #lock} holds a session's row.
   */
  public static SqlConnection lockTheLog(Pool pool) {
    return lockTable(pool, "events");
  }

  /** Locks {@code table} against every read and write until the connection is closed. */
  public static SqlConnection lockTable(Pool pool, String table) {
    SqlConnection connection = transaction(pool);
    connection
        .query("LOCK TABLE " + table + " IN ACCESS EXCLUSIVE MODE")
        .execute()
        .await()
        .atMost(WAIT);
    return connection;
  }

  /** A connection in a transaction of its own, which the idle-in-transaction timeout leaves. */
  private static SqlConnection transaction(Pool pool) {
    SqlConnection connection = pool.getConnection().await().atMost(WAIT);
    connection.query("BEGIN").execute().await().atMost(WAIT);
    connection
        .query("SET LOCAL idle_in_transaction_session_timeout = 0")
        .execute()
        .await()
        .atMost(WAIT);
    return connection;
  }

  /** Statements of the database waiting for a lock now whose text holds {@code part}. */
  public static long statementsWaitingForALock(Pool pool, String part) {
    return pool.preparedQuery(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                + " AND strpos(query, $1) > 0")
        .execute(Tuple.of(part))
        .await()
        .atMost(WAIT)
        .iterator()
        .next()
        .getLong(0);
  }

  /** Statements of the database waiting for a lock now. */
  public static long statementsWaitingForALock(Pool pool) {
    return pool.query("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
        .execute()
        .await()
        .atMost(WAIT)
        .iterator()
        .next()
        .getLong(0);
  }

  public static void commit(SqlConnection connection) {
    end(connection, "COMMIT");
  }

  public static void rollback(SqlConnection connection) {
    end(connection, "ROLLBACK");
  }

  private static void end(SqlConnection connection, String how) {
    connection.query(how).execute().await().atMost(WAIT);
    connection.close().await().atMost(WAIT);
  }

  /** The session's last seq, as its row says. */
  public static long lastSeq(Pool pool, String sessionId) {
    return pool.preparedQuery("SELECT last_seq FROM sessions WHERE id = $1")
        .execute(Tuple.of(sessionId))
        .await()
        .atMost(WAIT)
        .iterator()
        .next()
        .getLong(0);
  }
}
