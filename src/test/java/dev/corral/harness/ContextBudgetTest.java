package dev.corral.harness;

import static org.assertj.core.api.Assertions.assertThat;

import dev.corral.proto.v1.Agent;
import dev.corral.proto.v1.AgentMcpToolResult;
import dev.corral.proto.v1.AgentMcpToolUse;
import dev.corral.proto.v1.AgentMessage;
import dev.corral.proto.v1.AgentToolResult;
import dev.corral.proto.v1.AgentToolUse;
import dev.corral.proto.v1.ContentBlock;
import dev.corral.proto.v1.Event;
import dev.corral.proto.v1.TextBlock;
import dev.corral.testing.Fixtures;
import dev.corral.testing.MessagesRules;
import java.util.List;
import java.util.OptionalInt;
import org.junit.jupiter.api.Test;

class ContextBudgetTest {

  @Test
  void aRequestsReplyGetsWhatItsPromptLeavesOfTheWindow() {
    var request =
        com.fasterxml.jackson.databind.json.JsonMapper.builder().build().createObjectNode();
    request.put("max_tokens", 8_192);
    // room enough: unchanged
    assertThat(ContextBudget.leaveRoom(request, 200_000, 150_000)).isFalse();
    assertThat(request.path("max_tokens").asInt()).isEqualTo(8_192);
    // less room: what is left
    assertThat(ContextBudget.leaveRoom(request, 200_000, 195_000)).isTrue();
    assertThat(request.path("max_tokens").asInt()).isEqualTo(5_000);
    // never below the least reply, nor to the thinking budget
    request.put("max_tokens", 8_192);
    request.putObject("thinking").put("type", "enabled").put("budget_tokens", 4_000);
    ContextBudget.leaveRoom(request, 200_000, 199_500);
    assertThat(request.path("max_tokens").asInt()).isEqualTo(4_001);
  }

  @Test
  void withThinkingOnTheKeptTurnsBeginWithAThinkingBlock() {
    // Given a tool loop whose first reply thought, and whose later replies did not (as the model
    // does: it thinks again only after the next user message)
    List<Event> context =
        List.of(
            Fixtures.userMessage("go").toBuilder().setSeq(1).build(),
            Event.newBuilder()
                .setSeq(2)
                .setAgentThinking(
                    dev.corral.proto.v1.AgentThinking.newBuilder()
                        .setThinking("plan")
                        .setSignature("sig"))
                .build(),
            bash(3, "sevt_bash1000000000000000000000"),
            result(4, "sevt_bash1000000000000000000000"),
            bash(5, "sevt_bash2000000000000000000000"),
            result(6, "sevt_bash2000000000000000000000"),
            Event.newBuilder()
                .setSeq(7)
                .setAgentMessage(
                    AgentMessage.newBuilder()
                        .addContent(
                            ContentBlock.newBuilder()
                                .setText(TextBlock.newBuilder().setText("done"))))
                .build());

    // Then without thinking the cut may fall inside the loop, and with thinking only where it
    // thought
    assertThat(ContextBudget.cut(context, 0, false)).hasValue(6);
    assertThat(ContextBudget.cut(context, 0, true)).hasValue(1);
  }

  private static Event bash(long seq, String id) {
    return Event.newBuilder()
        .setSeq(seq)
        .setId(id)
        .setAgentToolUse(
            AgentToolUse.newBuilder()
                .setCallId("toolu_" + seq)
                .setName("bash")
                .setInputJson("{\"command\":\"ls\"}"))
        .build();
  }

  private static Event result(long seq, String callId) {
    return Event.newBuilder()
        .setSeq(seq)
        .setAgentToolResult(AgentToolResult.newBuilder().setToolUseId(callId))
        .build();
  }

  @Test
  void compactionLeavesRoomInTheWindowForTheReply() {
    // 80% of the window, unless the reply's max_tokens needs more of it
    assertThat(ContextBudget.limit(200_000, 0.8, 8_192)).isEqualTo(160_000);
    assertThat(ContextBudget.limit(200_000, 0.8, 64_000)).isEqualTo(136_000);
    // a max_tokens that leaves less than compaction could make room for is the API's to refuse
    assertThat(ContextBudget.limit(200_000, 0.8, 128_000)).isEqualTo(160_000);
  }

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
            bash(3, "sevt_bash0000000000000000000000"),
            Event.newBuilder()
                .setSeq(4)
                .setAgentMcpToolResult(
                    AgentMcpToolResult.newBuilder()
                        .setMcpToolUseId("sevt_mcp00000000000000000000000"))
                .build(),
            result(5, "sevt_bash0000000000000000000000"));

    // When nothing fits, so the cut falls as late as it may
    OptionalInt cut = ContextBudget.cut(context, 0);

    // Then it falls where the turn starts, at the MCP call, never between the turn's two calls
    assertThat(cut).hasValue(1);
  }

  @Test
  void aReplyOfBlankTextAloneIsNoPlaceToCut() {
    // Given a reply of blank text between two user messages, then a real reply
    List<Event> context =
        List.of(
            Fixtures.userMessage("first").toBuilder().setSeq(1).build(),
            reply(2, "\n"),
            Fixtures.userMessage("second").toBuilder().setSeq(3).build(),
            reply(4, "An answer."),
            Fixtures.userMessage("third").toBuilder().setSeq(5).build());

    // When the cut may keep everything it likes
    OptionalInt cut = ContextBudget.cut(context, Long.MAX_VALUE);

    // Then it falls at the real reply, and what it keeps follows the summary as a valid request
    assertThat(cut).hasValue(3);
    var request =
        Projection.request(
            Agent.newBuilder().setModel("claude-test").build(),
            Projection.summaryMessage(2, "The user said first."),
            context.subList(cut.getAsInt(), context.size()),
            1000,
            0);
    assertThat(MessagesRules.violation(request)).isEmpty();
  }

  @Test
  void keptHistoryThatStartsWithTheUsersTurnJoinsTheSummarysMessage() {
    // Given kept history that starts with a user message (a blank reply before it projected to
    // nothing)
    List<Event> kept =
        List.of(
            reply(2, " "),
            Fixtures.userMessage("second").toBuilder().setSeq(3).build(),
            reply(4, "An answer."),
            Fixtures.userMessage("third").toBuilder().setSeq(5).build());

    // When it follows a summary
    var request =
        Projection.request(
            Agent.newBuilder().setModel("claude-test").build(),
            Projection.summaryMessage(1, "The user said first."),
            kept,
            1000,
            0);

    // Then the summary and the user's message are one user turn, and roles alternate
    assertThat(MessagesRules.violation(request)).isEmpty();
    var first = request.path("messages").get(0).path("content");
    assertThat(first.get(0).path("text").asText()).contains("The user said first.");
    assertThat(first.get(1).path("text").asText()).isEqualTo("second");
  }

  private static Event reply(long seq, String text) {
    return Event.newBuilder()
        .setSeq(seq)
        .setId("sevt_reply" + "0".repeat(20) + seq)
        .setAgentMessage(
            AgentMessage.newBuilder()
                .addContent(
                    ContentBlock.newBuilder().setText(TextBlock.newBuilder().setText(text))))
        .build();
  }
}
