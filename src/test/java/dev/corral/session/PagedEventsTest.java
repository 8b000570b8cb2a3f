package dev.corral.session;

import static org.assertj.core.api.Assertions.assertThat;

import io.smallrye.mutiny.Uni;
import io.smallrye.mutiny.helpers.test.AssertSubscriber;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;

class PagedEventsTest {

  /** Pages handed out by the test: each call of next() waits for the test to complete it. */
  private static final class Controlled implements PagedEvents.Pages<List<Integer>, Integer> {
    final List<CompletableFuture<List<Integer>>> asked = new ArrayList<>();
    final AtomicBoolean cancelled = new AtomicBoolean();

    @Override
    public synchronized Uni<List<Integer>> next() {
      CompletableFuture<List<Integer>> page = new CompletableFuture<>();
      asked.add(page);
      return Uni.createFrom()
          .completionStage(page)
          .onCancellation()
          .invoke(() -> cancelled.set(true));
    }

    @Override
    public List<Integer> items(List<Integer> page) {
      return page;
    }

    @Override
    public boolean last(List<Integer> page) {
      return page.isEmpty();
    }

    synchronized CompletableFuture<List<Integer>> page(int index) {
      return asked.get(index);
    }

    synchronized int pagesAsked() {
      return asked.size();
    }
  }

  /** Pages that are their own items, from {@code next}, the last one as {@code last} says. */
  private static PagedEvents.Pages<List<Integer>, Integer> pagesOf(
      java.util.function.Supplier<Uni<List<Integer>>> next,
      java.util.function.Predicate<List<Integer>> last) {
    return new PagedEvents.Pages<>() {
      @Override
      public Uni<List<Integer>> next() {
        return next.get();
      }

      @Override
      public List<Integer> items(List<Integer> page) {
        return page;
      }

      @Override
      public boolean last(List<Integer> page) {
        return last.test(page);
      }
    };
  }

  @Test
  void aPageIsAskedForOnlyWhenTheSubscriberWantsMoreThanItHolds() {
    Controlled pages = new Controlled();
    AssertSubscriber<Integer> subscriber =
        new PagedEvents<>(() -> pages).subscribe().withSubscriber(AssertSubscriber.create());

    assertThat(pages.pagesAsked()).as("nothing wanted, nothing asked").isZero();
    subscriber.request(1);
    assertThat(pages.pagesAsked()).isEqualTo(1);
    subscriber.request(1); // still one page in flight
    assertThat(pages.pagesAsked()).isEqualTo(1);

    pages.page(0).complete(List.of(1, 2, 3));
    subscriber.assertItems(1, 2);
    assertThat(pages.pagesAsked()).as("the page still holds an item").isEqualTo(1);

    subscriber.request(1);
    subscriber.assertItems(1, 2, 3);
    assertThat(pages.pagesAsked()).as("all taken, nothing more wanted").isEqualTo(1);

    subscriber.request(5);
    assertThat(pages.pagesAsked()).isEqualTo(2);
    pages.page(1).complete(List.of(4));
    subscriber.assertItems(1, 2, 3, 4);
    assertThat(pages.pagesAsked()).as("four more wanted").isEqualTo(3);
    subscriber.assertNotTerminated();

    pages.page(2).complete(List.of()); // the last page
    subscriber.assertCompleted().assertItems(1, 2, 3, 4);
    assertThat(pages.pagesAsked()).isEqualTo(3);
  }

  @Test
  void theLastPagesItemsAreDeliveredBeforeTheStreamCompletes() {
    PagedEvents.Pages<List<Integer>, Integer> pages =
        pagesOf(() -> Uni.createFrom().item(List.of(7, 8)), page -> true);
    AssertSubscriber<Integer> subscriber =
        new PagedEvents<>(() -> pages).subscribe().withSubscriber(AssertSubscriber.create(1));

    subscriber.assertItems(7).assertNotTerminated();
    subscriber.request(1);
    subscriber.assertItems(7, 8).assertCompleted();
  }

  @Test
  void cancellingStopsThePageInFlight() {
    Controlled pages = new Controlled();
    AssertSubscriber<Integer> subscriber =
        new PagedEvents<>(() -> pages).subscribe().withSubscriber(AssertSubscriber.create(1));
    assertThat(pages.pagesAsked()).isEqualTo(1);

    subscriber.cancel();

    assertThat(pages.cancelled).as("the wait for the page is cancelled").isTrue();
    pages.page(0).complete(List.of(1));
    subscriber.request(1);
    subscriber.assertHasNotReceivedAnyItem().assertNotTerminated();
    assertThat(pages.pagesAsked()).isEqualTo(1);
  }

  @Test
  void aFailedPageFailsTheStream() {
    Controlled pages = new Controlled();
    AssertSubscriber<Integer> subscriber =
        new PagedEvents<>(() -> pages).subscribe().withSubscriber(AssertSubscriber.create(10));
    pages.page(0).complete(List.of(1));
    pages.page(1).completeExceptionally(new IllegalStateException("the database went away"));

    subscriber
        .assertItems(1)
        .assertFailedWith(IllegalStateException.class, "the database went away");
    assertThat(pages.pagesAsked()).isEqualTo(2);
  }

  @Test
  void aRequestOfNothingFailsTheStreamAndWithdrawsThePageInFlight() {
    Controlled pages = new Controlled();
    AssertSubscriber<Integer> subscriber =
        new PagedEvents<>(() -> pages).subscribe().withSubscriber(AssertSubscriber.create(1));
    assertThat(pages.pagesAsked()).isEqualTo(1);

    subscriber.request(0);

    subscriber.assertFailedWith(IllegalArgumentException.class);
    assertThat(pages.cancelled).isTrue();
  }

  @Test
  void aSubscriberThatThrowsIsToldAndNoPageFollows() {
    Controlled pages = new Controlled();
    java.util.concurrent.atomic.AtomicReference<Throwable> told =
        new java.util.concurrent.atomic.AtomicReference<>();
    AtomicInteger items = new AtomicInteger();
    new PagedEvents<>(() -> pages)
        .subscribe()
        .withSubscriber(
            new io.smallrye.mutiny.subscription.MultiSubscriber<Integer>() {
              @Override
              public void onSubscribe(java.util.concurrent.Flow.Subscription subscription) {
                subscription.request(10);
              }

              @Override
              public void onItem(Integer item) {
                items.incrementAndGet();
                throw new IllegalStateException("a broken subscriber");
              }

              @Override
              public void onFailure(Throwable failure) {
                told.set(failure);
              }

              @Override
              public void onCompletion() {}
            });

    pages.page(0).complete(List.of(1, 2));

    assertThat(told.get()).hasMessage("a broken subscriber");
    assertThat(items).hasValue(1);
    assertThat(pages.pagesAsked()).isEqualTo(1);
  }

  @Test
  void aNullPageFailsTheStream() {
    Controlled pages = new Controlled();
    AssertSubscriber<Integer> subscriber =
        new PagedEvents<>(() -> pages).subscribe().withSubscriber(AssertSubscriber.create(1));

    pages.page(0).complete(null);

    subscriber.assertFailedWith(IllegalStateException.class, "null");
  }

  @Test
  void pagesFromOtherThreadsAndRequestsFromAnotherDeliverEveryItemOnceInOrder() {
    ExecutorService pool = Executors.newFixedThreadPool(3);
    try {
      AtomicInteger nextItem = new AtomicInteger();
      AtomicInteger calls = new AtomicInteger();
      AtomicInteger inFlight = new AtomicInteger();
      AtomicBoolean overlapped = new AtomicBoolean();
      int total = 20_000;
      PagedEvents.Pages<List<Integer>, Integer> pages =
          pagesOf(
              () -> {
                if (inFlight.incrementAndGet() > 1) {
                  overlapped.set(true);
                }
                return Uni.createFrom()
                    .item(
                        () -> {
                          int first = nextItem.get();
                          int call = calls.incrementAndGet();
                          int size = Math.min(total - first, call % 4 == 0 ? 0 : call % 7);
                          nextItem.addAndGet(size);
                          inFlight.decrementAndGet();
                          return IntStream.range(first, first + size).boxed().toList();
                        })
                    .runSubscriptionOn(pool);
              },
              page -> nextItem.get() == total);
      AssertSubscriber<Integer> subscriber =
          new PagedEvents<>(() -> pages).subscribe().withSubscriber(AssertSubscriber.create());
      for (int i = 0; i < total; i += 3) {
        pool.execute(() -> subscriber.request(3));
      }

      subscriber.awaitCompletion(Duration.ofSeconds(30));
      assertThat(subscriber.getItems())
          .containsExactlyElementsOf(IntStream.range(0, total).boxed().toList());
      assertThat(overlapped).as("never two pages in flight").isFalse();
    } finally {
      pool.shutdownNow();
    }
  }
}
