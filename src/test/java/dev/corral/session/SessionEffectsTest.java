package dev.corral.session;

import static dev.corral.testing.Fixtures.userMessage;
import static org.assertj.core.api.Assertions.assertThat;

import dev.corral.proto.v1.Event;
import dev.corral.proto.v1.ModelUsage;
import dev.corral.proto.v1.SessionStatusIdle;
import dev.corral.proto.v1.SessionStatusRunning;
import dev.corral.proto.v1.SpanModelRequestEnd;
import dev.corral.proto.v1.StopReason;
import dev.corral.proto.v1.StopReasonType;
import java.util.List;
import org.junit.jupiter.api.Test;

class SessionEffectsTest {

  private static final Event RUNNING =
      Event.newBuilder().setSessionStatusRunning(SessionStatusRunning.getDefaultInstance()).build();
  private static final StopReason END_TURN =
      StopReason.newBuilder().setType(StopReasonType.STOP_REASON_TYPE_END_TURN).build();
  private static final Event IDLE =
      Event.newBuilder()
          .setSessionStatusIdle(SessionStatusIdle.newBuilder().setStopReason(END_TURN))
          .build();

  @Test
  void userMessageMarksWorkPendingAndKeepsTheStatus() {
    SessionEffects effects = SessionEffects.of(List.of(NewEvent.of(userMessage("hi"))));

    assertThat(effects.status()).isNull();
    assertThat(effects.workPending()).isTrue();
  }

  @Test
  void lastStatusEventOfABatchWinsAndIdleCarriesItsStopReason() {
    SessionEffects effects = SessionEffects.of(List.of(NewEvent.of(RUNNING), NewEvent.of(IDLE)));

    assertThat(effects.status()).isEqualTo("idle");
    assertThat(effects.stopReason()).isEqualTo(END_TURN.toByteArray());
    assertThat(effects.workPending()).isFalse();
  }

  @Test
  void runningClearsTheStopReason() {
    SessionEffects effects = SessionEffects.of(List.of(NewEvent.of(IDLE), NewEvent.of(RUNNING)));

    assertThat(effects.status()).isEqualTo("running");
    assertThat(effects.stopReason()).isNull();
  }

  @Test
  void modelRequestEndsAddUpTheirUsage() {
    Event end =
        Event.newBuilder()
            .setSpanModelRequestEnd(
                SpanModelRequestEnd.newBuilder()
                    .setModelUsage(
                        ModelUsage.newBuilder()
                            .setInputTokens(10)
                            .setOutputTokens(3)
                            .setCacheReadInputTokens(7)))
            .build();

    SessionEffects effects = SessionEffects.of(List.of(NewEvent.of(end), NewEvent.of(end)));

    assertThat(effects.usage().getInputTokens()).isEqualTo(20);
    assertThat(effects.usage().getOutputTokens()).isEqualTo(6);
    assertThat(effects.usage().getCacheReadInputTokens()).isEqualTo(14);
  }
}
