package dev.corral.session;

import static org.assertj.core.api.Assertions.assertThat;

import dev.corral.proto.v1.EventDelta;
import io.smallrye.mutiny.helpers.test.AssertSubscriber;
import org.junit.jupiter.api.Test;

class LiveDeltasTest {

  @Test
  void aSubscriberThatTakesNothingKeepsTheFirstDeltasUpToItsBufferAndLosesTheRest() {
    // Given a subscriber that asks for nothing yet
    LiveDeltas deltas = new LiveDeltas();
    LiveDeltas.Handle handle = deltas.follow("sesn_1");
    AssertSubscriber<EventDelta> subscriber =
        handle.deltas().subscribe().withSubscriber(AssertSubscriber.create(0));

    // When 1,000 deltas are published
    for (int i = 0; i < 1000; i++) {
      deltas.publish("sesn_1", EventDelta.newBuilder().setText(Integer.toString(i)).build());
    }

    // Then it gets none until it asks, then the first 256 in order, and nothing past them
    assertThat(subscriber.getItems()).isEmpty();
    subscriber.request(10);
    assertThat(subscriber.getItems())
        .extracting(EventDelta::getText)
        .containsExactly("0", "1", "2", "3", "4", "5", "6", "7", "8", "9");
    subscriber.request(10_000);
    assertThat(subscriber.getItems()).hasSize(256);
    assertThat(subscriber.getItems().get(255).getText()).isEqualTo("255");

    // And deltas published once it has room reach it; none after the handle completes
    deltas.publish("sesn_1", EventDelta.newBuilder().setText("late").build());
    assertThat(subscriber.getItems()).hasSize(257);
    handle.complete();
    deltas.publish("sesn_1", EventDelta.newBuilder().setText("after").build());
    subscriber.assertCompleted();
    assertThat(subscriber.getItems()).hasSize(257);
  }
}
