package dev.corral.session;

import dev.corral.common.VertxContexts;
import io.quarkus.runtime.ShutdownEvent;
import io.quarkus.runtime.StartupEvent;
import io.smallrye.mutiny.Uni;
import io.smallrye.mutiny.subscription.UniEmitter;
import io.vertx.mutiny.core.Vertx;
import io.vertx.mutiny.pgclient.pubsub.PgSubscriber;
import io.vertx.mutiny.sqlclient.Pool;
import io.vertx.mutiny.sqlclient.Row;
import io.vertx.mutiny.sqlclient.Tuple;
import io.vertx.pgclient.PgConnectOptions;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Observes;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import org.eclipse.microprofile.config.inject.ConfigProperty;
import org.jboss.logging.Logger;

/**
 * Wakes readers that follow a session's log when it grows or disappears.
 *
 * <p>Three sources feed it, so that no single one is needed for correctness:
 *
 * <ol>
 *   <li>appends made by this process, published right after they commit;
 *   <li>PostgreSQL NOTIFY from other replicas, whose payload is only {@code sessionId:lastSeq} (or
 *       {@code sessionId:deleted}), sent after commit on a dedicated connection;
 *   <li>a periodic poll of {@code sessions.last_seq} for every session a reader is waiting on,
 *       which also catches lost notifications and deleted sessions.
 * </ol>
 *
 * A signal only says "look again"; readers always read the events themselves from the log.
 *
 * <p>A replica announces its appends only while another replica listens: each replica says hello on
 * the channel when it connects and every {@code corral.session.hello-interval}, answers the hello
 * of a replica it did not know, and sends per-append notifications until it has heard no hello for
 * three intervals. A replica alone (a laptop, a single-replica deployment) so sends nothing per
 * append; when a second one starts, its hello starts the notifications, and until then the poll
 * covers its readers.
 */
@ApplicationScoped
public class SessionSignals {

  private static final Logger LOGGER = Logger.getLogger(SessionSignals.class);
  static final String CHANNEL = "corral_events";
  private static final String DELETED = "deleted";
  static final String HELLO = "hello:";
  private static final String NOTIFY =
      "SELECT set_config('synchronous_commit', 'off', true), pg_notify('"
          + CHANNEL
          + "', payload)"
          + " FROM unnest($1::text[]) AS payload";
  private static final String POLL =
      "SELECT id, last_seq FROM sessions WHERE id = ANY ($1::text[])";

  private final Map<String, Watched> watched = new ConcurrentHashMap<>();
  private final Map<String, String> outbox = new HashMap<>();
  private final Vertx vertx;
  private final Pool pool;
  private final SessionConfig config;
  private final PgConnectOptions connectOptions;
  private volatile PgSubscriber subscriber;

  private volatile boolean stopped;
  private boolean flushing;
  private long pollTimer = -1;
  private long helloTimer = -1;

  /** This process on the channel: a fresh token, so that no configuration can make two alike. */
  private final String self = java.util.UUID.randomUUID().toString();

  /** The other replicas heard on the channel, by token, with when they were last heard. */
  private final Map<String, Long> others = new ConcurrentHashMap<>();

  SessionSignals(
      Vertx vertx,
      Pool pool,
      SessionConfig config,
      @ConfigProperty(name = "quarkus.datasource.reactive.url") String url,
      @ConfigProperty(name = "quarkus.datasource.username") Optional<String> username,
      @ConfigProperty(name = "quarkus.datasource.password") Optional<String> password) {
    this.vertx = vertx;
    this.pool = pool;
    this.config = config;
    this.connectOptions = PgConnectOptions.fromUri(url.replaceFirst("^vertx-reactive:", ""));
    username.ifPresent(connectOptions::setUser);
    password.ifPresent(connectOptions::setPassword);
  }

  void start(@Observes StartupEvent event) {
    pollTimer = vertx.setPeriodic(config.pollInterval().toMillis(), id -> poll());
    if (config.listenNotify()) {
      listen(0);
      helloTimer = vertx.setPeriodic(config.helloInterval().toMillis(), id -> hello());
    }
  }

  void stop(@Observes ShutdownEvent event) {
    if (pollTimer >= 0) {
      vertx.cancelTimer(pollTimer);
    }
    if (helloTimer >= 0) {
      vertx.cancelTimer(helloTimer);
    }
    PgSubscriber last;
    synchronized (this) {
      stopped = true;
      last = subscriber;
    }
    if (last != null) {
      last.closeAndForget();
    }
  }

  /** Starts following {@code sessionId}; close the watch when done. */
  public Watch watch(String sessionId) {
    Watched state =
        watched.compute(
            sessionId,
            (id, existing) -> {
              Watched current = existing == null ? new Watched() : existing;
              current.references++;
              return current;
            });
    return new Watch(sessionId, state);
  }

  /** This process appended to {@code sessionId}, which now ends at {@code lastSeq}. */
  void appended(String sessionId, long lastSeq) {
    advance(sessionId, lastSeq);
    announce(sessionId, Long.toString(lastSeq));
  }

  /** This process deleted {@code sessionId}. */
  void deleted(String sessionId) {
    markGone(sessionId);
    announce(sessionId, DELETED);
  }

  private void advance(String sessionId, long lastSeq) {
    Watched state = watched.get(sessionId);
    if (state != null) {
      state.advance(lastSeq);
    }
  }

  private void markGone(String sessionId) {
    Watched state = watched.get(sessionId);
    if (state != null) {
      state.gone();
    }
  }

  // --- NOTIFY: out and in -------------------------------------------------------------------

  private void announce(String sessionId, String what) {
    if (subscriber == null || !othersListen()) {
      return;
    }
    synchronized (outbox) {
      outbox.merge(sessionId, what, SessionSignals::later);
      if (flushing) {
        return;
      }
      flushing = true;
    }
    vertx.setTimer(lingerMillis(), id -> flush());
  }

  private static String later(String a, String b) {
    if (DELETED.equals(a) || DELETED.equals(b)) {
      return DELETED;
    }
    return Long.parseLong(a) >= Long.parseLong(b) ? a : b;
  }

  /**
   * Sends everything in the outbox as one statement; appends made meanwhile go in the next one, a
   * linger later, so that a busy replica sends a few notifications per linger instead of one per
   * append.
   */
  private void flush() {
    String[] payloads;
    synchronized (outbox) {
      if (outbox.isEmpty() || subscriber == null || subscriber.actualConnection() == null) {
        outbox.clear();
        flushing = false;
        return;
      }
      payloads =
          outbox.entrySet().stream()
              .map(e -> e.getKey() + ":" + e.getValue())
              .toArray(String[]::new);
      outbox.clear();
    }
    send(payloads)
        .subscribe()
        .with(
            ignored -> lingerThenFlush(),
            failure -> {
              LOGGER.debugf(
                  "NOTIFY failed (readers fall back to polling): %s", failure.getMessage());
              lingerThenFlush();
            });
  }

  /** Whether another replica said hello within the last three hello intervals. */
  boolean othersListen() {
    long horizon = System.nanoTime() - 3 * config.helloInterval().toNanos();
    others.values().removeIf(heard -> heard - horizon < 0);
    return !others.isEmpty();
  }

  /** Tells the other replicas that this one listens (and so wants their notifications). */
  private void hello() {
    if (subscriber == null || subscriber.actualConnection() == null) {
      return;
    }
    send(HELLO + self)
        .subscribe()
        .with(
            ignored -> {},
            failure -> LOGGER.debugf("Hello failed (polling covers): %s", failure.getMessage()));
  }

  /** One NOTIFY statement for {@code payloads}, on the listening connection (it must be open). */
  private Uni<Void> send(String... payloads) {
    return subscriber
        .actualConnection()
        .preparedQuery(NOTIFY)
        .execute(Tuple.of((Object) payloads))
        .replaceWithVoid();
  }

  private void heard(String token) {
    if (token.equals(self)) {
      return;
    }
    if (others.put(token, System.nanoTime()) == null) {
      hello(); // a replica this one did not know: it learns of this one at once
    }
  }

  private void lingerThenFlush() {
    vertx.setTimer(lingerMillis(), id -> flush());
  }

  private long lingerMillis() {
    return Math.max(1, config.notifyLinger().toMillis());
  }

  /** How long a listener whose connection failed or closed waits before it connects again. */
  static final long LISTEN_RETRY_MILLIS = 1000L;

  /**
   * Connects a listener. A subscriber reconnects by itself only once a connection it had closes,
   * and one whose first connect failed never connects again: that one is closed, and a new one
   * tries a second later, until one holds (the database still starting, say). Until then readers of
   * other replicas' appends poll.
   */
  private void listen(int failures) {
    PgSubscriber created = PgSubscriber.subscriber(vertx, connectOptions);
    created.reconnectPolicy(retries -> LISTEN_RETRY_MILLIS);
    created.channel(CHANNEL).handler(this::received);
    synchronized (this) {
      if (stopped) {
        return; // stopped while a retry waited: nothing may listen after the stop
      }
      subscriber = created;
    }
    created
        .connect()
        .subscribe()
        .with(
            ok -> {
              LOGGER.debugf("Listening on %s", CHANNEL);
              hello();
            },
            failure -> {
              if (failures % 60 == 0) {
                LOGGER.warnf(
                    "LISTEN failed (%d time(s)), readers fall back to polling until it holds: %s",
                    failures + 1, failure.getMessage());
              }
              created.closeAndForget();
              vertx.setTimer(
                  LISTEN_RETRY_MILLIS,
                  id -> listen(failures + 1)); // (which does nothing once stopped)
            });
  }

  /** Whether listening holds now (a connection is up). */
  boolean listening() {
    PgSubscriber current = subscriber;
    return current != null && current.actualConnection() != null;
  }

  private void received(String payload) {
    if (payload.startsWith(HELLO)) {
      heard(payload.substring(HELLO.length()));
      return;
    }
    int colon = payload.lastIndexOf(':');
    if (colon <= 0) {
      return;
    }
    String sessionId = payload.substring(0, colon);
    String what = payload.substring(colon + 1);
    if (DELETED.equals(what)) {
      markGone(sessionId);
      return;
    }
    try {
      advance(sessionId, Long.parseLong(what));
    } catch (NumberFormatException ignored) {
      // not ours
    }
  }

  // --- polling fallback ----------------------------------------------------------------------

  private void poll() {
    List<String> waitedOn = new ArrayList<>();
    watched.forEach(
        (sessionId, state) -> {
          if (state.hasWaiters()) {
            waitedOn.add(sessionId);
          }
        });
    if (waitedOn.isEmpty()) {
      return;
    }
    pool.preparedQuery(POLL)
        .execute(Tuple.of(waitedOn.toArray(String[]::new)))
        .subscribe()
        .with(
            rows -> {
              Set<String> found = new HashSet<>();
              for (Row row : rows) {
                found.add(row.getString("id"));
                advance(row.getString("id"), row.getLong("last_seq"));
              }
              waitedOn.stream().filter(id -> !found.contains(id)).forEach(this::markGone);
            },
            failure -> LOGGER.debugf("Polling session heads failed: %s", failure.getMessage()));
  }

  // --- per-session state -----------------------------------------------------------------------

  /** What is known about one followed session, shared by all its readers in this process. */
  private static final class Watched {
    private long latest = -1;
    private boolean gone;

    /** Guarded by the map's compute functions, not by this object. */
    private int references;

    /**
     * In arrival order. A set: a waiter woken by an append is taken out with all the others in one
     * pass, then removes itself again as its wait ends, which must not scan every other waiter.
     */
    private final Set<Waiter> waiters = new LinkedHashSet<>();

    void advance(long lastSeq) {
      List<Waiter> woken;
      synchronized (this) {
        if (lastSeq <= latest) {
          return;
        }
        latest = lastSeq;
        woken = take(waiter -> waiter.afterSeq < lastSeq);
      }
      woken.forEach(Waiter::wake);
    }

    void gone() {
      List<Waiter> woken;
      synchronized (this) {
        gone = true;
        woken = take(waiter -> true);
      }
      woken.forEach(Waiter::wake);
    }

    synchronized boolean hasWaiters() {
      return !waiters.isEmpty();
    }

    private List<Waiter> take(java.util.function.Predicate<Waiter> which) {
      List<Waiter> taken = new ArrayList<>();
      waiters.removeIf(waiter -> which.test(waiter) && taken.add(waiter));
      return taken;
    }
  }

  /**
   * One wait; equal only to itself. It goes on where it started waiting: an append wakes each of a
   * session's readers on its own event loop, so that the appending thread only hands the wake-ups
   * out, rather than running every reader's next step itself, one after another.
   */
  private static final class Waiter {
    private final long afterSeq;
    private final UniEmitter<? super Void> emitter;
    private final io.vertx.core.Context context; // null outside Vert.x

    Waiter(long afterSeq, UniEmitter<? super Void> emitter) {
      this.afterSeq = afterSeq;
      this.emitter = emitter;
      this.context = io.vertx.core.Vertx.currentContext();
    }

    void wake() {
      VertxContexts.runOn(context, () -> emitter.complete(null));
    }
  }

  /** One reader's interest in one session. */
  public final class Watch implements AutoCloseable {
    private final String sessionId;
    private final Watched state;
    private boolean closed;

    private Watch(String sessionId, Watched state) {
      this.sessionId = sessionId;
      this.state = state;
    }

    /**
     * Completes once the session is known to hold an event after {@code seq}, or is gone. It may
     * also complete spuriously; the reader then reads nothing new and waits again.
     */
    public Uni<Void> awaitBeyond(long seq) {
      return Uni.createFrom()
          .emitter(
              emitter -> {
                Waiter waiter = new Waiter(seq, emitter);
                boolean now;
                synchronized (state) {
                  now = state.gone || state.latest > seq;
                  if (!now) {
                    state.waiters.add(waiter);
                  }
                }
                if (now) {
                  waiter.wake();
                } else {
                  emitter.onTermination(
                      () -> {
                        synchronized (state) {
                          state.waiters.remove(waiter);
                        }
                      });
                }
              });
    }

    @Override
    public void close() {
      if (closed) {
        return;
      }
      closed = true;
      watched.computeIfPresent(
          sessionId,
          (id, current) -> {
            current.references--;
            return current.references == 0 ? null : current;
          });
    }
  }
}
