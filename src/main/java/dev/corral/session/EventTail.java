package dev.corral.session;

import dev.corral.common.NotFoundException;
import dev.corral.proto.v1.Event;
import io.smallrye.mutiny.Multi;
import io.smallrye.mutiny.Uni;
import jakarta.enterprise.context.ApplicationScoped;
import java.util.List;
import java.util.Set;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Follows a session's log: every event after a cursor, then new ones as they are appended.
 *
 * <p>Catch-up and live reads are the same query ("events after my cursor"), so there is no
 * hand-over where an event could be missed or sent twice. Reads happen only when the subscriber
 * asks for more (each page is one repetition of the upstream), so a slow reader holds at most one
 * page in memory. When a read finds nothing new the tail waits on {@link SessionSignals} and reads
 * again.
 */
@ApplicationScoped
public class EventTail {

  private final EventLog log;
  private final SessionSignals signals;
  private final SessionConfig config;
  private final AtomicLong eventsRead = new AtomicLong();

  EventTail(EventLog log, SessionSignals signals, SessionConfig config) {
    this.log = log;
    this.signals = signals;
    this.config = config;
  }

  private final java.util.concurrent.atomic.AtomicInteger open =
      new java.util.concurrent.atomic.AtomicInteger();

  /** Events read from the database for live streams since start, for operators and tests. */
  public long eventsRead() {
    return eventsRead.get();
  }

  /**
   * Every event of {@code sessionId} after {@code afterSeq} whose type is in {@code types} (all
   * when empty), then live ones; completes when the session is deleted. Fails with {@link
   * NotFoundException} if the session does not exist when the stream starts.
   */
  public Multi<Event> follow(String sessionId, long afterSeq, Set<String> types) {
    return Multi.createFrom()
        .resource(
            () -> {
              open.incrementAndGet();
              return signals.watch(sessionId);
            },
            watch -> pages(watch, sessionId, afterSeq, types))
        .withFinalizer(
            watch -> {
              open.decrementAndGet();
              watch.close();
            });
  }

  /** Live streams of session logs on this replica (client streams and harness tails). */
  public int open() {
    return open.get();
  }

  private Multi<Event> pages(
      SessionSignals.Watch watch, String sessionId, long afterSeq, Set<String> types) {
    return Multi.createBy()
        .repeating()
        .uni(() -> new Cursor(sessionId, afterSeq, types), cursor -> nextPage(watch, cursor))
        .until(Page::sessionGone)
        .onItem()
        .transformToIterable(Page::events);
  }

  private Uni<Page> nextPage(SessionSignals.Watch watch, Cursor cursor) {
    Uni<Void> ready = cursor.caughtUp ? watch.awaitBeyond(cursor.seq) : Uni.createFrom().voidItem();
    return ready.flatMap(ignored -> read(cursor));
  }

  private Uni<Page> read(Cursor cursor) {
    EventSlice slice =
        new EventSlice(
            cursor.sessionId,
            EventSlice.Position.AFTER,
            cursor.seq,
            config.streamPageSize(),
            cursor.types);
    return log.read(slice)
        .invoke(page -> eventsRead.addAndGet(page.events().size()))
        .map(cursor::advance)
        .onFailure(NotFoundException.class)
        .recoverWithItem(failure -> cursor.gone(failure));
  }

  /** Where one subscriber is in the log. Touched by one page read at a time. */
  private static final class Cursor {
    private final String sessionId;
    private final Set<String> types;
    private long seq;
    private boolean caughtUp;
    private boolean started;

    Cursor(String sessionId, long seq, Set<String> types) {
      this.sessionId = sessionId;
      this.seq = seq;
      this.types = types;
    }

    Page advance(EventPage page) {
      started = true;
      List<Event> events = page.events();
      // A full page may have more behind it; otherwise everything up to the head was scanned,
      // including events the type filter dropped.
      seq = page.hasMore() ? events.get(events.size() - 1).getSeq() : Math.max(seq, page.lastSeq());
      caughtUp = !page.hasMore();
      return new Page(events, false);
    }

    Page gone(Throwable notFound) {
      if (!started) {
        throw (NotFoundException) notFound;
      }
      return new Page(List.of(), true);
    }
  }

  private record Page(List<Event> events, boolean sessionGone) {}
}
