package dev.corral.harness;

import static org.assertj.core.api.Assertions.assertThat;

import dev.corral.proto.v1.AgentMcpToolResult;
import dev.corral.proto.v1.AgentMcpToolUse;
import dev.corral.proto.v1.AgentToolResult;
import dev.corral.proto.v1.AgentToolUse;
import dev.corral.proto.v1.Event;
import dev.corral.testing.Fixtures;
import java.util.List;
import java.util.OptionalInt;
import org.junit.jupiter.api.Test;

class ContextBudgetTest {

  @Test
  void aCutNeverFallsInsideOneModelTurnThatCallsAnMcpToolThenAnotherTool() {
    // Given one model turn that called an MCP tool and then bash, and both results
    List<Event> context =
        List.of(
            Fixtures.userMessage("go").toBuilder().setSeq(1).build(),
            Event.newBuilder()
                .setSeq(2)
                .setId("sevt_mcp00000000000000000000000")
                .setAgentMcpToolUse(
                    AgentMcpToolUse.newBuilder()
                        .setCallId("toolu_m")
                        .setMcpServerName("srv")
                        .setName("x")
                        .setInputJson("{}"))
                .build(),
            Event.newBuilder()
                .setSeq(3)
                .setId("sevt_bash0000000000000000000000")
                .setAgentToolUse(
                    AgentToolUse.newBuilder()
                        .setCallId("toolu_b")
                        .setName("bash")
                        .setInputJson("{\"command\":\"ls\"}"))
                .build(),
            Event.newBuilder()
                .setSeq(4)
                .setAgentMcpToolResult(
                    AgentMcpToolResult.newBuilder()
                        .setMcpToolUseId("sevt_mcp00000000000000000000000"))
                .build(),
            Event.newBuilder()
                .setSeq(5)
                .setAgentToolResult(
                    AgentToolResult.newBuilder().setToolUseId("sevt_bash0000000000000000000000"))
                .build());

    // When nothing fits, so the cut falls as late as it may
    OptionalInt cut = ContextBudget.cut(context, 0);

    // Then it falls where the turn starts, at the MCP call, never between the turn's two calls
    assertThat(cut).hasValue(1);
  }
}
