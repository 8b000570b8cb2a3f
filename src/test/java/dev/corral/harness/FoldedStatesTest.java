package dev.corral.harness;

import static org.assertj.core.api.Assertions.assertThat;

import dev.corral.proto.v1.Event;
import dev.corral.proto.v1.Session;
import dev.corral.testing.Fixtures;
import org.junit.jupiter.api.Test;

/** The kept states of idle sessions are bounded by what they hold, not by how many events. */
class FoldedStatesTest {

  @Test
  void statesOfLargeEventsAreDroppedOnceTheyHoldTooManyBytes() {
    // Given twenty sessions, each of one reply of 4 MiB (the model's: a user's message that large
    // would be folded as a notice, past the budget of unanswered input)
    FoldedStates kept = new FoldedStates();
    String large = "x".repeat(4 << 20);
    for (int i = 0; i < 20; i++) {
      SessionState state = new SessionState(Session.newBuilder().setId("sesn_" + i).build());
      state.apply(reply(large).toBuilder().setSeq(1).setId("sevt_" + i).build());
      kept.keep(state);
    }

    // Then the oldest went once they held more than the budget, and the newest stays
    assertThat(kept.size()).isLessThanOrEqualTo((int) (FoldedStates.MAX_BYTES / (4 << 20)));
    assertThat(kept.take("sesn_19")).isNotNull();
    assertThat(kept.take("sesn_0")).isNull();
  }

  @Test
  void oneStateHeavierThanAQuarterOfTheBudgetPushesNoOtherOut() {
    // Given states kept for ten sessions
    FoldedStates kept = new FoldedStates();
    for (int i = 0; i < 10; i++) {
      kept.keep(stateWith("sesn_" + i, "small"));
    }

    // When one session's state outweighs a quarter of the budget
    kept.keep(stateWith("sesn_heavy", "x".repeat((int) (FoldedStates.MAX_BYTES / 4) + 1)));

    // Then it is not kept, and the others stay
    assertThat(kept.size()).isEqualTo(10);
    assertThat(kept.take("sesn_heavy")).isNull();
    assertThat(kept.take("sesn_0")).isNotNull();
  }

  private static SessionState stateWith(String sessionId, String text) {
    SessionState state = new SessionState(Session.newBuilder().setId(sessionId).build());
    state.apply(reply(text).toBuilder().setSeq(1).setId("sevt_1").build());
    return state;
  }

  private static Event reply(String text) {
    return Event.newBuilder()
        .setAgentMessage(
            dev.corral.proto.v1.AgentMessage.newBuilder()
                .addContent(
                    dev.corral.proto.v1.ContentBlock.newBuilder()
                        .setText(dev.corral.proto.v1.TextBlock.newBuilder().setText(text))))
        .build();
  }

  @Test
  void aCompactedStateHoldsOnlyWhatFollowsItsSummary() {
    // Given three turns, the first two of which a summary replaced
    SessionState state = new SessionState(Session.newBuilder().setId("sesn_c").build());
    long seq = 0;
    for (String text : new String[] {"one", "two", "three"}) {
      state.apply(
          Fixtures.userMessage(text).toBuilder().setSeq(++seq).setId("sevt_" + seq).build());
    }
    state.apply(
        Event.newBuilder()
            .setSeq(++seq)
            .setId("sevt_c")
            .setAgentContextCompacted(
                dev.corral.proto.v1.AgentContextCompacted.newBuilder()
                    .setFromSeq(1)
                    .setUpToSeq(2)
                    .setSummary("one and two"))
            .build());

    // Then the state keeps the third turn and the summary, not what the summary stands for
    assertThat(state.conversation()).extracting(Event::getSeq).containsExactly(3L);
    assertThat(Projection.request(state, 1000, 0).path("messages").toString())
        .contains("one and two")
        .contains("three")
        .doesNotContain("\"one\"");
  }
}
