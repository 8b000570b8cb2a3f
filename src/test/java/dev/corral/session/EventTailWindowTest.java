package dev.corral.session;

import static org.assertj.core.api.Assertions.assertThat;

import dev.corral.proto.v1.Event;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;

/**
 * A stream that is caught up takes its pages from its session's shared window: those pages are
 * bounded as the pages it reads from the log are, in events and in bytes.
 */
class EventTailWindowTest {

  private static final int BUDGET = EventTail.STREAM_PAGE_BYTES;

  @Test
  void aPageFromTheWindowHoldsAtMostThePageBytesOrOneEvent() {
    // Given a window of four events of 250 KiB each
    List<Event> window = events(1, 4, "user.message", 250 * 1024);
    EventTail.Cursor cursor =
        new EventTail.Cursor("sesn_x", 0, Set.of(), java.util.function.Supplier::get);

    // When a stream takes its pages from it
    EventTail.Page first = cursor.advanceIn(window, 4, 256, BUDGET);
    EventTail.Page second = cursor.advanceIn(window, 4, 256, BUDGET);

    // Then each page holds one of them (one event may pass the budget), in order, nothing skipped
    assertThat(first.events()).extracting(Event::getSeq).containsExactly(1L);
    assertThat(second.events()).extracting(Event::getSeq).containsExactly(2L);
    List<Long> rest = new ArrayList<>();
    rest.addAll(seqs(cursor.advanceIn(window, 4, 256, BUDGET)));
    rest.addAll(seqs(cursor.advanceIn(window, 4, 256, BUDGET)));
    assertThat(rest).containsExactly(3L, 4L);
    assertThat(cursor.advanceIn(window, 4, 256, BUDGET).events()).isEmpty();
  }

  @Test
  void smallEventsFillAPageUpToItsBytesAndEventsTheFilterDropsCostNothing() {
    // Given a window of 100 events of 4 KiB, every other one of another type
    List<Event> window = new ArrayList<>();
    for (int seq = 1; seq <= 100; seq++) {
      window.addAll(events(seq, seq, seq % 2 == 0 ? "agent.message" : "user.message", 4096));
    }
    EventTail.Cursor all =
        new EventTail.Cursor("sesn_x", 0, Set.of(), java.util.function.Supplier::get);
    EventTail.Cursor users =
        new EventTail.Cursor("sesn_x", 0, Set.of("user.message"), java.util.function.Supplier::get);

    // When
    List<Event> page = all.advanceIn(window, 100, 256, BUDGET).events();
    List<Event> filtered = users.advanceIn(window, 100, 256, BUDGET).events();

    // Then a page holds what fits in 64 KiB (15 of these), and a filtered page 15 of its own type
    assertThat(page).hasSize(15);
    assertThat(page.stream().mapToLong(Event::getSerializedSize).sum()).isLessThanOrEqualTo(BUDGET);
    assertThat(filtered).hasSize(15).allMatch(event -> event.getType().equals("user.message"));
    assertThat(seqs(all.advanceIn(window, 100, 256, BUDGET))).first().isEqualTo(16L);
  }

  private static List<Event> events(long from, long to, String type, int bytes) {
    List<Event> events = new ArrayList<>();
    for (long seq = from; seq <= to; seq++) {
      events.add(
          Event.newBuilder()
              .setSessionId("sesn_x")
              .setSeq(seq)
              .setType(type)
              .setId("x".repeat(bytes))
              .build());
    }
    return events;
  }

  private static List<Long> seqs(EventTail.Page page) {
    return page.events().stream().map(Event::getSeq).toList();
  }
}
