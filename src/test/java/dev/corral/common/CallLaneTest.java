package dev.corral.common;

import static org.assertj.core.api.Assertions.assertThat;

import io.smallrye.mutiny.Uni;
import io.smallrye.mutiny.helpers.test.UniAssertSubscriber;
import org.junit.jupiter.api.Test;

/** Calls waiting in one lane hold bounded memory: a number of calls and bytes of their input. */
class CallLaneTest {

  /** A call that runs until the test ends. */
  private static final CallLane.Call<String> FOREVER =
      new CallLane.Call<>() {
        @Override
        public Uni<String> start() {
          return Uni.createFrom().nothing();
        }

        @Override
        public void interrupt() {}
      };

  @Test
  void callsWaitingBeyondTheLanesBytesAreRefusedUntilRoomIsMade() {
    // Given a lane of 100 bytes of waiting input, busy with a call
    CallLane lane = CallLane.ofSandbox(64, 100);
    lane.submit(FOREVER, 10).subscribe().withSubscriber(UniAssertSubscriber.create());

    // When calls of 60, 60 and 40 bytes wait behind it
    var first = lane.submit(FOREVER, 60).subscribe().withSubscriber(UniAssertSubscriber.create());
    var second = lane.submit(FOREVER, 60).subscribe().withSubscriber(UniAssertSubscriber.create());
    var third = lane.submit(FOREVER, 40).subscribe().withSubscriber(UniAssertSubscriber.create());

    // Then the one that would pass the bytes is refused, saying why, and the others wait
    second.assertFailedWith(ResourceExhaustedException.class, "KiB of input together");
    first.assertNotTerminated();
    third.assertNotTerminated();
    assertThat(lane.waiting()).isEqualTo(2);

    // And once a waiting call is given up, its bytes are free for another
    first.cancel();
    var fourth = lane.submit(FOREVER, 60).subscribe().withSubscriber(UniAssertSubscriber.create());
    fourth.assertNotTerminated();
    assertThat(lane.waiting()).isEqualTo(2);
  }

  @Test
  void aCallThatFindsNoneWaitingIsTakenWhateverItsSize() {
    // Given a busy lane of 100 bytes
    CallLane lane = CallLane.ofSandbox(64, 100);
    lane.submit(FOREVER, 10).subscribe().withSubscriber(UniAssertSubscriber.create());

    // When a call of 1,000 bytes comes with none waiting, and another after it
    var big = lane.submit(FOREVER, 1000).subscribe().withSubscriber(UniAssertSubscriber.create());
    var small = lane.submit(FOREVER, 1).subscribe().withSubscriber(UniAssertSubscriber.create());

    // Then the first waits, and nothing more may wait behind it
    big.assertNotTerminated();
    small.assertFailedWith(ResourceExhaustedException.class);
  }
}
