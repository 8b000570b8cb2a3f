package dev.corral.rest;

import static org.assertj.core.api.Assertions.assertThat;

import dev.corral.proto.v1.AgentToolUse;
import dev.corral.proto.v1.Event;
import org.junit.jupiter.api.Test;

class EventShapesTest {

  @Test
  void aToolInputWithANumberNoDecimalHoldsIsShownAsTheModelWroteIt() {
    // Given a tool use whose input a prompt-injected model wrote with an exponent past any
    // BigDecimal's (the model's reply is checked with doubles, which read it as Infinity)
    String input = "{\"n\":1e2147483648}";
    Event use =
        Event.newBuilder()
            .setId("sevt_use00000000000000000000000")
            .setSessionId("sesn_0000000000000000000000000")
            .setSeq(3)
            .setType("agent.tool_use")
            .setAgentToolUse(AgentToolUse.newBuilder().setName("bash").setInputJson(input))
            .build();

    // When it is shaped for a REST page or an SSE stream, then it is, with its input as text
    assertThat(EventShapes.event(use).path("input").asText()).isEqualTo(input);
  }
}
