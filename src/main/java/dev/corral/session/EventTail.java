package dev.corral.session;

import dev.corral.common.NotFoundException;
import dev.corral.proto.v1.Event;
import io.smallrye.mutiny.Multi;
import io.smallrye.mutiny.Uni;
import jakarta.enterprise.context.ApplicationScoped;
import java.util.List;
import java.util.Set;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Function;
import java.util.function.Supplier;

/**
 * Follows a session's log: every event after a cursor, then new ones as they are appended.
 *
 * <p>Catch-up and live reads are the same query ("events after my cursor"), so there is no
 * hand-over where an event could be missed or sent twice. Reads happen only when the subscriber
 * asks for more ({@link PagedEvents}), so a slow reader holds at most one page in memory. When a
 * read finds nothing new the tail waits on {@link SessionSignals} and reads again.
 *
 * <p>Live subscribers of one session on this replica share one reader ({@link SharedReader}): a
 * wake-up makes one query for all of them, whose events are kept in a bounded window that each
 * subscriber reads at its own pace. A subscriber that falls behind the window, or is still catching
 * up, reads the log itself, so a slow one costs the others nothing and never more memory than the
 * window.
 */
@ApplicationScoped
public class EventTail {

  private final EventLog log;
  private final SessionSignals signals;
  private final SessionConfig config;
  private final AtomicLong eventsRead = new AtomicLong();
  private final AtomicLong queries = new AtomicLong();
  private final java.util.concurrent.ConcurrentHashMap<String, SharedReader> shared =
      new java.util.concurrent.ConcurrentHashMap<>();

  EventTail(EventLog log, SessionSignals signals, SessionConfig config) {
    this.log = log;
    this.signals = signals;
    this.config = config;
    log.onPublish(this::appendedHere);
  }

  /**
   * Events this process appended and committed: they join their session's shared window when they
   * continue it, so that its subscribers get them without reading the log.
   */
  private void appendedHere(Appended appended) {
    List<Event> events = appended.events();
    SharedReader reader = shared.get(events.get(0).getSessionId());
    if (reader != null) {
      reader.appendedHere(events);
    }
  }

  private final java.util.concurrent.atomic.AtomicInteger open =
      new java.util.concurrent.atomic.AtomicInteger();

  /** Events read from the database for live streams since start, for operators and tests. */
  public long eventsRead() {
    return eventsRead.get();
  }

  /** Log queries made for live streams since start, for operators, tests and benchmarks. */
  public long queries() {
    return queries.get();
  }

  /**
   * Every event of {@code sessionId} after {@code afterSeq} whose type is in {@code types} (all
   * when empty), then live ones; completes when the session is deleted, or is found gone at its
   * first page (its callers found it before they follow it, so it was deleted in between).
   */
  public Multi<Event> follow(String sessionId, long afterSeq, Set<String> types) {
    return follow(sessionId, afterSeq, types, false, Supplier::get);
  }

  /**
   * How a subscriber's own reads of the log (catching up, or behind the shared window) run: a
   * client's in its tenant's turn ({@link TenantReads}), as its page reads do.
   */
  interface Reads extends Function<Supplier<Uni<EventPage>>, Uni<EventPage>> {}

  /**
   * As {@link #follow(String, long, Set)}, with the subscriber's own reads run by {@code reads};
   * with {@code throughTermination} it also takes the session's {@code session.status_terminated}
   * event, whatever {@code types}, and completes right after it (nothing can follow it in the log).
   */
  Multi<Event> follow(
      String sessionId, long afterSeq, Set<String> types, boolean throughTermination, Reads reads) {
    Set<String> read = types;
    if (throughTermination && !types.isEmpty() && !types.contains(TERMINAL)) {
      read = new java.util.HashSet<>(types);
      read.add(TERMINAL);
    }
    Set<String> filter = read;
    return Multi.createFrom()
        .resource(
            () -> {
              open.incrementAndGet();
              return new Following(signals.watch(sessionId), share(sessionId));
            },
            following -> pages(following, sessionId, afterSeq, filter, throughTermination, reads))
        .withFinalizer(
            following -> {
              open.decrementAndGet();
              following.watch().close();
              unshare(following.reader());
            });
  }

  private static final String TERMINAL = EventType.SESSION_STATUS_TERMINATED.wireName();

  /** A subscriber's hold on its session's signals and shared reader. */
  private record Following(SessionSignals.Watch watch, SharedReader reader) {}

  private SharedReader share(String sessionId) {
    return shared.compute(
        sessionId,
        (id, existing) -> {
          SharedReader reader = existing == null ? new SharedReader(id) : existing;
          reader.references++;
          return reader;
        });
  }

  private void unshare(SharedReader reader) {
    shared.computeIfPresent(
        reader.sessionId,
        (id, current) -> {
          if (current != reader) {
            return current;
          }
          current.references--;
          return current.references == 0 ? null : current;
        });
  }

  /** Live streams of session logs on this replica (client streams and harness tails). */
  public int open() {
    return open.get();
  }

  private Multi<Event> pages(
      Following following,
      String sessionId,
      long afterSeq,
      Set<String> types,
      boolean throughTermination,
      Reads reads) {
    return new PagedEvents<Page, Event>(
        () ->
            new PagedEvents.Pages<>() {
              private final Cursor cursor = new Cursor(sessionId, afterSeq, types, reads);

              @Override
              public Uni<Page> next() {
                return nextPage(following, cursor);
              }

              @Override
              public List<Event> items(Page page) {
                return page.events();
              }

              @Override
              public boolean last(Page page) {
                return page.sessionGone() || (throughTermination && page.terminal());
              }
            });
  }

  private Uni<Page> nextPage(Following following, Cursor cursor) {
    if (!cursor.caughtUp) {
      // catching up: its own reads, whatever the others do; or on in the shared window
      return cursor.inWindow ? following.reader().next(cursor) : read(cursor);
    }
    return following
        .watch()
        .awaitBeyond(cursor.seq)
        .flatMap(ignored -> following.reader().next(cursor));
  }

  private Uni<Page> read(Cursor cursor) {
    return cursor
        .reads
        .apply(() -> readAfter(cursor.sessionId, cursor.seq, cursor.types))
        .map(cursor::advance)
        .onFailure(NotFoundException.class)
        .recoverWithItem(Page.GONE);
  }

  /**
   * The bytes of a live stream's page: a stream holds its page until its client takes it, so a
   * client that stops reading holds this much of a replica's memory (or one event, if larger).
   */
  static final int STREAM_PAGE_BYTES = 64 * 1024;

  /** A page of the log for live streams, counted. */
  private Uni<EventPage> readAfter(String sessionId, long after, Set<String> types) {
    queries.incrementAndGet();
    return log.read(
            new EventSlice(
                sessionId,
                EventSlice.Position.AFTER,
                after,
                config.streamPageSize(),
                types,
                STREAM_PAGE_BYTES))
        .invoke(page -> eventsRead.addAndGet(page.events().size()));
  }

  /** Where one subscriber is in the log. Touched by one page read at a time. */
  static final class Cursor {
    private final String sessionId;
    private final Set<String> types;
    private final Reads reads;
    private long seq;
    private boolean caughtUp;

    /** Its last page came from the shared window, which may hold more for it. */
    private boolean inWindow;

    Cursor(String sessionId, long seq, Set<String> types, Reads reads) {
      this.sessionId = sessionId;
      this.seq = seq;
      this.types = types;
      this.reads = reads;
    }

    Page advance(EventPage page) {
      inWindow = false;
      List<Event> events = page.events();
      // A full page may have more behind it; otherwise everything up to the head was scanned,
      // including events the type filter dropped.
      seq = page.hasMore() ? events.get(events.size() - 1).getSeq() : Math.max(seq, page.lastSeq());
      caughtUp = !page.hasMore();
      return new Page(events, false);
    }

    /**
     * The events of {@code window} after this cursor, filtered by type: at most {@code limit} of
     * them, and at most {@code budget} bytes (or one event, if larger), as a page read from the
     * log; the window holds every event from {@code first} to {@code head}.
     */
    Page advanceIn(List<Event> window, long head, int limit, int budget) {
      long first = window.isEmpty() ? head + 1 : window.get(0).getSeq();
      int from = (int) Math.min(window.size(), Math.max(0, seq + 1 - first));
      List<Event> events = new java.util.ArrayList<>();
      long examined = Math.max(seq, head); // up to the head, unless the page fills first
      long bytes = 0;
      for (Event event : window.subList(from, window.size())) {
        boolean wanted = types.isEmpty() || types.contains(event.getType());
        if (events.size() == limit
            || (wanted && !events.isEmpty() && bytes + event.getSerializedSize() > budget)) {
          examined = event.getSeq() - 1;
          break;
        }
        if (wanted) {
          events.add(event);
          bytes += event.getSerializedSize();
        }
      }
      caughtUp = examined == Math.max(seq, head);
      seq = examined;
      inWindow = true;
      return new Page(events, false);
    }
  }

  record Page(List<Event> events, boolean sessionGone) {
    /** The page of a session found gone: the stream's end. */
    static final Page GONE = new Page(List.of(), true);

    /** The page ends with the session's terminal event, which is always the log's last. */
    boolean terminal() {
      return !events.isEmpty() && events.get(events.size() - 1).getType().equals(TERMINAL);
    }
  }

  /** Most events, and bytes of their payloads, one session's window keeps. */
  static final int WINDOW_EVENTS = 1024;

  static final int WINDOW_BYTES = 1 << 20;

  /**
   * One session's recent events on this replica, read from the log once per wake-up for all its
   * live subscribers: a contiguous window from {@code first} to {@code head}, trimmed to {@link
   * #WINDOW_EVENTS} and {@link #WINDOW_BYTES}. One refresh is in flight at a time; subscribers that
   * ask meanwhile wait for it.
   */
  private final class SharedReader {
    private final String sessionId;

    /** Guarded by the map's compute functions. */
    private int references;

    // Guarded by this.
    private final java.util.ArrayList<Event> window = new java.util.ArrayList<>();
    private long bytes;
    private long head = -1;
    private Uni<Void> refreshing;

    SharedReader(String sessionId) {
      this.sessionId = sessionId;
    }

    /**
     * The cursor's next page: from the window, after a refresh if it is behind, or from the log.
     * Decided when called, which is when the cursor's subscriber wants the page.
     */
    Uni<Page> next(Cursor cursor) {
      Uni<Void> refresh;
      synchronized (this) {
        if (head >= 0 && cursor.seq < first() - 1) {
          return read(cursor); // behind the window: its own read
        }
        if (head > cursor.seq) {
          return Uni.createFrom().item(serve(cursor));
        }
        // a cursor past the window's head (it read the log on its own, past what another
        // replica appended since the window last moved) moves the window there: walking from the
        // old head would read, page by page, everything in between before it could serve
        refresh = refresh(Math.max(head, cursor.seq));
      }
      return refresh
          .flatMap(
              ignored -> {
                synchronized (this) {
                  if (cursor.seq < first() - 1) {
                    return read(cursor);
                  }
                  return Uni.createFrom().item(serve(cursor));
                }
              })
          .onFailure(NotFoundException.class)
          .recoverWithItem(Page.GONE);
    }

    /** Holding the lock: the first seq the window covers. */
    private long first() {
      return window.isEmpty() ? head + 1 : window.get(0).getSeq();
    }

    /** Holding the lock. */
    private Page serve(Cursor cursor) {
      return cursor.advanceIn(window, head, config.streamPageSize(), STREAM_PAGE_BYTES);
    }

    /** Holding the lock: the refresh under way, or a new one reading after {@code after}. */
    private Uni<Void> refresh(long after) {
      if (refreshing != null) {
        return refreshing;
      }
      Uni<Void> started =
          readAfter(sessionId, after, Set.of())
              .invoke(page -> took(after, page))
              .eventually(
                  () -> {
                    synchronized (this) {
                      refreshing = null;
                    }
                  })
              .replaceWithVoid()
              .memoize()
              .indefinitely();
      refreshing = started;
      return started;
    }

    private synchronized void took(long after, EventPage page) {
      if (after > head) {
        // the first refresh, or one from past the head: the window starts after the cursor
        // that asked (subscribers before it read the log on their own)
        window.clear();
        bytes = 0;
        head = after;
      }
      extend(page.events());
      if (!page.hasMore()) {
        head = Math.max(head, page.lastSeq());
        if (window.isEmpty() || window.get(window.size() - 1).getSeq() < head) {
          // Nothing of the window's events reaches the head (impossible unfiltered): restart it.
          window.clear();
          bytes = 0;
        }
      }
      trim();
    }

    /** Committed events of this process, kept when they continue the window. */
    synchronized void appendedHere(List<Event> events) {
      if (head >= 0) { // else the first refresh has yet to place the window
        extend(events);
        trim();
      }
    }

    /**
     * Holding the lock: the window grows by the events that continue its head; the others (already
     * in it, or after a gap) are left to a refresh.
     */
    private void extend(List<Event> events) {
      for (Event event : events) {
        if (event.getSeq() == head + 1) {
          window.add(event);
          bytes += event.getSerializedSize();
          head = event.getSeq();
        }
      }
    }

    /** Holding the lock: the window back within its bounds, oldest events first out. */
    private void trim() {
      int drop = 0;
      long kept = bytes;
      while (window.size() - drop > WINDOW_EVENTS
          || (kept > WINDOW_BYTES && window.size() - drop > 1)) {
        kept -= window.get(drop++).getSerializedSize();
      }
      if (drop > 0) {
        window.subList(0, drop).clear();
        bytes = kept;
      }
    }
  }
}
