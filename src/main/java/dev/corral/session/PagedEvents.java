package dev.corral.session;

import io.smallrye.mutiny.Uni;
import io.smallrye.mutiny.helpers.Subscriptions;
import io.smallrye.mutiny.operators.AbstractMulti;
import io.smallrye.mutiny.subscription.Cancellable;
import io.smallrye.mutiny.subscription.MultiSubscriber;
import java.util.Iterator;
import java.util.List;
import java.util.concurrent.Flow;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Supplier;

/**
 * The items of successive pages, each page asked for only once the subscriber has taken every item
 * of the one before and wants more: at most one page is held or in flight at a time. The stream
 * completes after the page that {@link Pages#last} says is the last, and fails when a page fails.
 *
 * <p>This is {@code
 * Multi.createBy().repeating().uni(...).whilst(...).onItem().transformToIterable(...)} in one
 * operator. A live stream goes through that chain once per event per subscriber, and with a
 * thousand subscribers of a session the subscriptions and requests of its four operators were a
 * large share of the server's work for each event (see docs/decisions.md).
 *
 * @param <P> the pages
 * @param <T> the items
 */
final class PagedEvents<P, T> extends AbstractMulti<T> {

  /** One subscriber's source of pages. */
  interface Pages<P, T> {
    /** The next page, asked for once the one before is used up. */
    Uni<P> next();

    /** The items of {@code page}, in order. */
    List<T> items(P page);

    /** Whether {@code page}, just received, ends the stream once its items are delivered. */
    boolean last(P page);
  }

  private final Supplier<Pages<P, T>> source;

  /** A stream of the pages of a new {@link Pages} from {@code source} per subscriber. */
  PagedEvents(Supplier<Pages<P, T>> source) {
    this.source = source;
  }

  @Override
  public void subscribe(MultiSubscriber<? super T> subscriber) {
    Pages<P, T> pages;
    try {
      pages = source.get();
    } catch (RuntimeException failure) {
      Subscriptions.fail(subscriber, failure);
      return;
    }
    subscriber.onSubscribe(new Pump<>(pages, subscriber));
  }

  /**
   * One subscription. Its state is touched only inside {@link #drain}, which one thread at a time
   * runs (the others leave it a note in {@code wip}); a page's arrival is handed over in volatile
   * fields.
   */
  private static final class Pump<P, T> implements Flow.Subscription {
    private final Pages<P, T> pages;
    private final MultiSubscriber<? super T> downstream;
    private final AtomicInteger wip = new AtomicInteger();
    private final AtomicLong requested = new AtomicLong();

    private volatile boolean cancelled;
    private volatile P arrived;
    private volatile Throwable failed;
    private volatile Cancellable inFlight;

    // Touched only in drain.
    private Iterator<T> items;
    private boolean fetching;
    private boolean lastPage;
    private boolean terminated;

    Pump(Pages<P, T> pages, MultiSubscriber<? super T> downstream) {
      this.pages = pages;
      this.downstream = downstream;
    }

    @Override
    public void request(long n) {
      if (n <= 0) {
        failed = Subscriptions.getInvalidRequestException();
      } else {
        Subscriptions.add(requested, n);
      }
      drain();
    }

    @Override
    public void cancel() {
      cancelled = true;
      drain();
    }

    private void drain() {
      if (wip.getAndIncrement() != 0) {
        return;
      }
      int missed = 1;
      do {
        step();
        missed = wip.addAndGet(-missed);
      } while (missed != 0);
    }

    /** Ends the subscription, withdrawing the page in flight (a waiting subscriber's wait). */
    private void end() {
      terminated = true;
      Cancellable flight = inFlight;
      if (flight != null) {
        flight.cancel();
      }
    }

    /** One pass: deliver what is wanted and held, then ask for a page if one is wanted. */
    private void step() {
      if (terminated) {
        return;
      }
      if (cancelled) {
        end();
        return;
      }
      Throwable failure = failed;
      if (failure != null) {
        end();
        downstream.onFailure(failure);
        return;
      }
      P page = arrived;
      if (page != null && fetching && (items == null || !items.hasNext())) {
        arrived = null;
        inFlight = null;
        fetching = false;
        items = pages.items(page).iterator();
        lastPage = pages.last(page);
      }
      while (items != null && items.hasNext() && requested.get() > 0) {
        if (cancelled) {
          return; // the next drain ends it
        }
        requested.decrementAndGet();
        try {
          downstream.onItem(items.next());
        } catch (RuntimeException thrown) { // a subscriber must not throw; if it does, it is told
          end();
          downstream.onFailure(thrown);
          return;
        }
      }
      if (cancelled || (items != null && items.hasNext())) {
        return;
      }
      if (lastPage) {
        terminated = true;
        downstream.onCompletion();
        return;
      }
      if (!fetching && requested.get() > 0) {
        fetching = true;
        Uni<P> uni;
        try {
          uni = pages.next();
        } catch (RuntimeException thrown) {
          failed = thrown;
          wip.incrementAndGet(); // look again
          return;
        }
        inFlight =
            uni.subscribe()
                .with(
                    received -> {
                      if (received == null) {
                        failed = new IllegalStateException("a page of a stream was null");
                      } else {
                        arrived = received;
                      }
                      drain();
                    },
                    thrown -> {
                      failed = thrown;
                      drain();
                    });
      }
    }
  }
}
