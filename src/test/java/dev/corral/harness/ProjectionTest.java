package dev.corral.harness;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import dev.corral.agent.AgentRules;
import dev.corral.model.ModelResponse;
import dev.corral.proto.v1.Agent;
import dev.corral.proto.v1.AgentToolset;
import dev.corral.proto.v1.Event;
import dev.corral.proto.v1.McpToolset;
import dev.corral.proto.v1.ModelUsage;
import dev.corral.proto.v1.Session;
import dev.corral.proto.v1.Tool;
import dev.corral.proto.v1.ToolConfig;
import dev.corral.session.NewEvent;
import dev.corral.testing.Fixtures;
import dev.corral.testing.MessagesRules;
import dev.corral.tool.OfferedTools;
import java.util.List;
import org.junit.jupiter.api.Test;

class ProjectionTest {

  private static final Agent AGENT =
      Agent.newBuilder()
          .setModel("claude-test")
          .setSystem("Be brief.")
          .addTools(
              Tool.newBuilder()
                  .setToolset(
                      AgentToolset.newBuilder()
                          .addConfigs(ToolConfig.newBuilder().setName("grep").setEnabled(false))))
          .build();

  private final SessionState state =
      new SessionState(Session.newBuilder().setId("sesn_x").setAgent(AGENT).build());
  private long seq;

  @Test
  void aReplyOfBlankTextAloneIsNoTurnAndTheRequestStaysValid() {
    // Given a model reply that held only an empty text (a block corral does not know reads so)
    fold(NewEvent.of(Fixtures.userMessage("hello")));
    fold(EventsFactory.spanStart("sevt_span0000000000000000000000", "claude-test"));
    fold(EventsFactory.block("sevt_text0000000000000000000000", new ModelResponse.Text(""), AGENT));
    fold(
        EventsFactory.spanEnd(
            "sevt_span0000000000000000000000",
            new ModelResponse("m", List.of(), "end_turn", ModelUsage.getDefaultInstance())));
    fold(NewEvent.of(Fixtures.userMessage("are you there?")));

    // When
    JsonNode messages = Projection.request(state, 1000, 0).path("messages");

    // Then no blank text goes out, and the roles still alternate (one user turn)
    assertThat(messages).hasSize(1);
    assertThat(messages.get(0).path("role").asText()).isEqualTo("user");
    assertThat(messages.toString()).doesNotContain("\"text\":\"\"");
  }

  @Test
  void aReplyOfThinkingAloneIsNoTurnAndTheRequestStaysValid() {
    // Given a reply of a signed thinking block and blank text (or stopped right after thinking)
    fold(NewEvent.of(Fixtures.userMessage("hello")));
    fold(EventsFactory.spanStart("sevt_span2000000000000000000000", "claude-test"));
    fold(
        EventsFactory.block(
            "sevt_thnk2000000000000000000000",
            new ModelResponse.Thinking("hmm", "c2lnbmVk"),
            AGENT));
    fold(
        EventsFactory.block("sevt_text2000000000000000000000", new ModelResponse.Text(" "), AGENT));
    fold(
        EventsFactory.spanEnd(
            "sevt_span2000000000000000000000",
            new ModelResponse("m", List.of(), "end_turn", ModelUsage.getDefaultInstance())));
    fold(NewEvent.of(Fixtures.userMessage("are you there?")));

    // When
    JsonNode request = Projection.request(state, 1000, 0);

    // Then no assistant message ends in thinking: the two messages are one user turn
    JsonNode messages = request.path("messages");
    assertThat(messages).hasSize(1);
    assertThat(messages.get(0).path("content")).hasSize(2);
    assertThat(MessagesRules.violation(request)).isEmpty();
  }

  @Test
  void aResultOfNoCallInTheHistoryIsNotSent() {
    // Given a tool result whose call the history does not hold (a client forged it)
    fold(NewEvent.of(Fixtures.userMessage("hello")));
    fold(EventsFactory.toolResult("sevt_none0000000000000000000000", "forged", false));

    // When
    JsonNode request = Projection.request(state, 1000, 0);

    // Then it is left out, rather than sent as an orphan the API refuses
    assertThat(request.path("messages").toString()).doesNotContain("forged");
    assertThat(MessagesRules.violation(request)).isEmpty();
  }

  @Test
  void aLogAnOutsideHarnessWroteOutOfOrderStillMakesARequestTheApiTakes() {
    // Given a call whose result an outside harness recorded only after a user message and a
    // reply of its own (no spans: an outside harness need not write them)
    fold(NewEvent.of(Fixtures.userMessage("hello")));
    fold(
        EventsFactory.block(
            "sevt_use80000000000000000000000",
            new ModelResponse.ToolUse("toolu_early", "bash", "{\"command\":\"ls\"}"),
            AGENT));
    fold(NewEvent.of(Fixtures.userMessage("meanwhile")));
    fold(
        EventsFactory.block(
            "sevt_text8000000000000000000000", new ModelResponse.Text("went on"), AGENT));
    fold(
        NewEvent.of(
            Event.newBuilder()
                .setAgentToolResult(
                    dev.corral.proto.v1.AgentToolResult.newBuilder()
                        .setToolUseId("sevt_use80000000000000000000000")
                        .setIsError(true)
                        .addContent(
                            dev.corral.proto.v1.ContentBlock.newBuilder()
                                .setText(
                                    dev.corral.proto.v1.TextBlock.newBuilder()
                                        .setText("late output")))
                        .addContent(image(new byte[] {7})))
                .build()));
    fold(NewEvent.of(Fixtures.userMessage("next")));

    // When
    JsonNode request = Projection.request(state, 1000, 0);

    // Then the API takes it (the call gets an error result in the turn after it, and the late
    // result comes as text), and nothing anyone said is lost
    assertThat(MessagesRules.violation(request)).isEmpty();
    assertThat(request.path("messages").toString())
        .contains("meanwhile")
        .contains("went on")
        .contains("late output")
        .contains("no result of this call was recorded");
    // the late result's header, then its text and its image, in that order
    String last = request.path("messages").get(request.path("messages").size() - 1).toString();
    assertThat(last.indexOf("recorded after the conversation went on"))
        .isLessThan(last.indexOf("late output"));
    assertThat(last.indexOf("late output")).isLessThan(last.indexOf("\"image\""));
  }

  @Test
  void aResultWhoseCallACompactionTookBetweenTwoRepliesLeavesNoTwoAssistantTurnsInARow() {
    // Given two calls, the first answered, then a reply of the outside harness's own, then the
    // second call's result; and a compaction (of the outside harness) that took the first call
    fold(NewEvent.of(Fixtures.userMessage("hello")));
    fold(
        EventsFactory.block(
            "sevt_usea0000000000000000000000",
            new ModelResponse.ToolUse("toolu_a", "bash", "{\"command\":\"ls\"}"),
            AGENT));
    long firstCall = seq;
    fold(
        EventsFactory.block(
            "sevt_useb0000000000000000000000",
            new ModelResponse.ToolUse("toolu_b", "bash", "{\"command\":\"pwd\"}"),
            AGENT));
    fold(result("sevt_usea0000000000000000000000", "output a"));
    fold(
        EventsFactory.block(
            "sevt_textb000000000000000000000", new ModelResponse.Text("went on"), AGENT));
    fold(result("sevt_useb0000000000000000000000", "output b"));
    fold(EventsFactory.compacted(1, firstCall, "earlier: a call", 100, 10));
    fold(NewEvent.of(Fixtures.userMessage("next")));

    // When
    JsonNode request = Projection.request(state, 1000, 0);

    // Then the API takes it: the open call gets an error result before the reply that went on
    assertThat(MessagesRules.violation(request)).isEmpty();
    assertThat(request.path("messages").toString())
        .contains("went on")
        .contains("output b")
        .contains("no result of this call was recorded");
  }

  @Test
  void aResultWhoseCallACompactionTookBetweenTwoRepliesWithoutCallsJoinsTheReplies() {
    // Given a call, a reply that said something, the call's result, another reply; and a
    // compaction (of an outside harness) that took the call alone
    fold(NewEvent.of(Fixtures.userMessage("hello")));
    fold(
        EventsFactory.block(
            "sevt_usec0000000000000000000000",
            new ModelResponse.ToolUse("toolu_c", "bash", "{\"command\":\"ls\"}"),
            AGENT));
    long call = seq;
    fold(
        EventsFactory.block(
            "sevt_textc000000000000000000000", new ModelResponse.Text("one"), AGENT));
    fold(result("sevt_usec0000000000000000000000", "output c"));
    fold(
        EventsFactory.block(
            "sevt_textd000000000000000000000", new ModelResponse.Text("two"), AGENT));
    fold(EventsFactory.compacted(1, call, "earlier: a call", 100, 10));
    fold(NewEvent.of(Fixtures.userMessage("next")));

    // When
    JsonNode request = Projection.request(state, 1000, 0);

    // Then the API takes it: both replies are one assistant turn
    assertThat(MessagesRules.violation(request)).isEmpty();
    JsonNode messages = request.path("messages");
    assertThat(messages.get(messages.size() - 2).path("role").asText()).isEqualTo("assistant");
    assertThat(messages.get(messages.size() - 2).toString()).contains("one").contains("two");
  }

  private static NewEvent result(String callEventId, String text) {
    return NewEvent.of(
        Event.newBuilder()
            .setAgentToolResult(
                dev.corral.proto.v1.AgentToolResult.newBuilder()
                    .setToolUseId(callEventId)
                    .addContent(
                        dev.corral.proto.v1.ContentBlock.newBuilder()
                            .setText(dev.corral.proto.v1.TextBlock.newBuilder().setText(text))))
            .build());
  }

  @Test
  void aRefusalForgetsInputThatAnInterruptedTurnLeftUnansweredBeforeIt() {
    // Given a message whose turn the user interrupted while its call ran (nothing answered it)
    fold(NewEvent.of(Fixtures.userMessage("abandoned input")));
    fold(EventsFactory.spanStart("sevt_span6000000000000000000000", "claude-test"));
    fold(
        NewEvent.of(
            Event.newBuilder()
                .setUserInterrupt(dev.corral.proto.v1.UserInterrupt.getDefaultInstance())
                .build()));
    fold(EventsFactory.failedSpanEnd("sevt_span6000000000000000000000", "interrupted by the user"));
    fold(
        EventsFactory.idle(
            Decision.stopReason(dev.corral.proto.v1.StopReasonType.STOP_REASON_TYPE_INTERRUPTED)));
    // and a next message, whose call (which held both) the model refused
    fold(NewEvent.of(Fixtures.userMessage("next message")));
    fold(EventsFactory.spanStart("sevt_span7000000000000000000000", "claude-test"));
    fold(
        EventsFactory.spanEnd(
            "sevt_span7000000000000000000000",
            new ModelResponse("m", List.of(), "refusal", ModelUsage.getDefaultInstance())));
    fold(NewEvent.of(Fixtures.userMessage("something else")));

    // When
    JsonNode request = Projection.request(state, 1000, 0);

    // Then neither goes to the model again: the refusal may have been about either
    String sent = request.path("messages").toString();
    assertThat(sent).doesNotContain("abandoned input").doesNotContain("next message");
    assertThat(sent).contains("something else");
    assertThat(MessagesRules.violation(request)).isEmpty();
  }

  @Test
  void aRefusalAfterAConfirmationWaitForgetsTheWholeTurnEvenIfAMessageCameDuringTheWait() {
    // Given a turn that thought, asked to run a tool, and waited for its confirmation
    fold(NewEvent.of(Fixtures.userMessage("clean up")));
    fold(EventsFactory.spanStart("sevt_span3000000000000000000000", "claude-test"));
    fold(
        EventsFactory.block(
            "sevt_thnk3000000000000000000000",
            new ModelResponse.Thinking("rm it", "c2lnbmVk"),
            AGENT));
    NewEvent call =
        EventsFactory.block(
            "sevt_call3000000000000000000000",
            new ModelResponse.ToolUse("toolu_3", "bash", "{\"command\":\"rm -rf x\"}"),
            AGENT);
    fold(call);
    fold(
        EventsFactory.spanEnd(
            "sevt_span3000000000000000000000",
            new ModelResponse("m", List.of(), "tool_use", ModelUsage.getDefaultInstance())));
    fold(
        EventsFactory.idle(
            dev.corral.proto.v1.StopReason.newBuilder()
                .setType(dev.corral.proto.v1.StopReasonType.STOP_REASON_TYPE_REQUIRES_ACTION)
                .build()));
    // and a message sent during the wait, then the call's result, and a refused reply
    fold(NewEvent.of(Fixtures.userMessage("quickly please")));
    fold(EventsFactory.toolResult(call.id(), "removed", false));
    fold(EventsFactory.spanStart("sevt_span4000000000000000000000", "claude-test"));
    fold(
        EventsFactory.spanEnd(
            "sevt_span4000000000000000000000",
            new ModelResponse("m", List.of(), "refusal", ModelUsage.getDefaultInstance())));
    fold(NewEvent.of(Fixtures.userMessage("something else")));

    // When
    JsonNode request = Projection.request(state, 1000, 0);

    // Then the whole refused turn is gone, its thinking with it, and the request is valid
    String sent = request.path("messages").toString();
    assertThat(sent).doesNotContain("rm it").doesNotContain("clean up");
    assertThat(sent).contains("something else");
    assertThat(MessagesRules.violation(request)).isEmpty();
  }

  @Test
  void toolResultsLeadTheUserTurnThatFollowsTheirCalls() {
    fold(NewEvent.of(Fixtures.userMessage("list files")));
    NewEvent call =
        EventsFactory.block(
            "sevt_call0000000000000000000000",
            new ModelResponse.ToolUse("toolu_1", "bash", "{\"command\":\"ls\"}"),
            AGENT);
    fold(EventsFactory.spanStart("sevt_span0000000000000000000000", "claude-test"));
    fold(
        EventsFactory.block(
            "sevt_text0000000000000000000000", new ModelResponse.Text("Listing."), AGENT));
    fold(call);
    fold(
        EventsFactory.spanEnd(
            "sevt_span0000000000000000000000",
            new ModelResponse("m", List.of(), "tool_use", ModelUsage.getDefaultInstance())));
    fold(NewEvent.of(Fixtures.userMessage("also show sizes")));
    fold(EventsFactory.toolResult(call.id(), "a.txt", false));

    JsonNode request = Projection.request(state, 1000, 0);

    JsonNode messages = request.path("messages");
    assertThat(messages).hasSize(3);
    assertThat(messages.get(1).path("role").asText()).isEqualTo("assistant");
    assertThat(messages.get(1).path("content").get(1).path("input").path("command").asText())
        .isEqualTo("ls");
    JsonNode user = messages.get(2).path("content");
    assertThat(user.get(0).path("type").asText()).isEqualTo("tool_result");
    assertThat(user.get(0).path("tool_use_id").asText()).isEqualTo("toolu_1");
    assertThat(user.get(1).path("text").asText()).isEqualTo("also show sizes");
    assertThat(user.get(1).path("cache_control").path("type").asText()).isEqualTo("ephemeral");
  }

  @Test
  void theImagesOfAnErrorResultFollowTheResultsForTheApiTakesOnlyTextInOne() {
    // Given a call whose result is an error with a screenshot (a browser tool's failed click)
    fold(NewEvent.of(Fixtures.userMessage("click it")));
    NewEvent call =
        EventsFactory.block(
            "sevt_call5000000000000000000000",
            new ModelResponse.ToolUse("toolu_5", "bash", "{\"command\":\"click\"}"),
            AGENT);
    fold(EventsFactory.spanStart("sevt_span5000000000000000000000", "claude-test"));
    fold(call);
    fold(
        EventsFactory.spanEnd(
            "sevt_span5000000000000000000000",
            new ModelResponse("m", List.of(), "tool_use", ModelUsage.getDefaultInstance())));
    Event failed = EventsFactory.toolResult(call.id(), "click failed", true).payload();
    fold(
        NewEvent.of(
            failed.toBuilder()
                .setAgentToolResult(
                    failed.getAgentToolResult().toBuilder().addContent(image(new byte[] {7})))
                .build()));

    // When
    JsonNode request = Projection.request(state, 1000, 0);

    // Then the error result holds text alone, and the image follows it in the same user turn,
    // after a note naming its call
    JsonNode user = request.path("messages").get(2).path("content");
    assertThat(user.get(0).path("is_error").asBoolean()).isTrue();
    assertThat(user.get(0).path("content").findValuesAsText("type")).containsOnly("text");
    assertThat(user.get(0).toString())
        .contains("click failed")
        .contains("follows the tool results");
    assertThat(user.get(1).path("text").asText()).contains("error result of tool call toolu_5");
    assertThat(user.get(2).path("type").asText()).isEqualTo("image");
    assertThat(MessagesRules.violation(request)).isEmpty();
  }

  @Test
  void aLargeToolResultIsSentTrimmedWithANoteSayingWhereTheRestIs() {
    // Given a tool result of 250 000 characters
    fold(NewEvent.of(Fixtures.userMessage("dump it")));
    NewEvent call =
        EventsFactory.block(
            "sevt_call1000000000000000000000",
            new ModelResponse.ToolUse("toolu_9", "bash", "{\"command\":\"cat big\"}"),
            AGENT);
    fold(EventsFactory.spanStart("sevt_span1000000000000000000000", "claude-test"));
    fold(call);
    fold(
        EventsFactory.spanEnd(
            "sevt_span1000000000000000000000",
            new ModelResponse("m", List.of(), "tool_use", ModelUsage.getDefaultInstance())));
    String big = "HEAD" + "x".repeat(250_000) + "TAIL";
    NewEvent result = EventsFactory.toolResult(call.id(), big, false);
    fold(result);

    // When
    String sent =
        Projection.request(state, 1000, 0)
            .path("messages")
            .get(2)
            .path("content")
            .get(0)
            .path("content")
            .get(0)
            .path("text")
            .asText();

    // Then the model gets the head, the tail and a note; the event itself stays whole
    assertThat(sent.length()).isLessThan(Projection.MAX_RESULT_CHARS);
    assertThat(sent).startsWith("HEAD").endsWith("TAIL").contains("250008 characters");
    assertThat(sent).contains("event " + result.id());
    assertThat(
            state
                .conversation()
                .get(state.conversation().size() - 1)
                .getAgentToolResult()
                .getContent(0)
                .getText()
                .getText())
        .isEqualTo(big);
  }

  @Test
  void aTrimmedResultNeverSplitsACharacterOutsideTheBasicPlane() {
    // Given a result whose head and tail cuts fall in the middle of an emoji each
    NewEvent call = toolCall("toolu_e", "sevt_calle000000000000000000000");
    String emoji = "\uD83D\uDE00";
    String big = "a".repeat(59_999) + emoji + "b".repeat(60_000) + emoji + "c".repeat(19_999);
    fold(EventsFactory.toolResult(call.id(), big, false));

    // When it is sent
    JsonNode request = Projection.request(state, 1000, 0);
    String sent = resultTexts(request).get(0);

    // Then it is cut next to the emojis, never between their halves, and the API would take it
    assertThat(sent).startsWith("a".repeat(59_999) + "\n").endsWith("\n" + "c".repeat(19_999));
    assertThat(unpairedSurrogate(sent)).isFalse();
    assertThat(MessagesRules.violation(request)).isEmpty();
  }

  @Test
  void aResultOfWhitespaceAloneIsSentAsNoOutput() {
    NewEvent call = toolCall("toolu_w", "sevt_callw000000000000000000000");
    fold(EventsFactory.toolResult(call.id(), " \n\t", false));

    JsonNode request = Projection.request(state, 1000, 0);

    assertThat(resultTexts(request)).containsExactly("(no output)");
    assertThat(MessagesRules.violation(request)).isEmpty();
  }

  @Test
  void aTurnWhoseResultsAloneOutgrowTheWindowIsSentWithThemCutToFit() {
    // Given one turn of twelve calls that each answered 100,000 characters (some 300,000 tokens)
    fold(NewEvent.of(Fixtures.userMessage("read them all")));
    fold(EventsFactory.spanStart("sevt_span2000000000000000000000", "claude-test"));
    List<NewEvent> calls = new java.util.ArrayList<>();
    for (int i = 0; i < 12; i++) {
      NewEvent call =
          EventsFactory.block(
              String.format("sevt_call%021d", i),
              new ModelResponse.ToolUse("toolu_" + i, "read", "{\"file_path\":\"/f\"}"),
              AGENT);
      calls.add(call);
      fold(call);
    }
    fold(
        EventsFactory.spanEnd(
            "sevt_span2000000000000000000000",
            new ModelResponse("m", List.of(), "tool_use", ModelUsage.getDefaultInstance())));
    List<NewEvent> results = new java.util.ArrayList<>();
    for (int i = 0; i < 12; i++) {
      results.add(
          EventsFactory.toolResult(
              calls.get(i).id(), head(i) + "x".repeat(99_988) + tail(i), false));
      fold(results.get(i));
    }
    var request = Projection.request(state, 1000, 0);
    // (no compaction can shorten the turn: the only cut leaves it whole)
    assertThat(ContextBudget.cut(state.context(), 50_000)).hasValue(1);

    // When it is made to fit 100,000 tokens
    boolean cut = Projection.fit(request, state.context(), 100_000);

    // Then every result keeps its head and tail and says where the rest is, and it fits
    assertThat(cut).isTrue();
    assertThat(ContextBudget.estimate(request)).isBetween(90_000L, 100_000L);
    List<String> texts = resultTexts(request);
    assertThat(texts).hasSize(12);
    for (int i = 0; i < 12; i++) {
      assertThat(texts.get(i))
          .startsWith(head(i))
          .endsWith(tail(i))
          .contains("100000 characters")
          .contains("event " + results.get(i).id());
    }
    assertThat(MessagesRules.violation(request)).isEmpty();
  }

  @Test
  void onlyTheLatestImagesAreSentAndTheOlderOnesLeaveANote() {
    // Given 25 messages with an image each
    for (int i = 0; i < 25; i++) {
      Event message = Fixtures.userMessage("image " + i);
      fold(
          NewEvent.of(
              message.toBuilder()
                  .setUserMessage(
                      message.getUserMessage().toBuilder().addContent(image(new byte[] {(byte) i})))
                  .build()));
    }

    // When they are sent
    JsonNode request = Projection.request(state, 1000, 0);

    // Then the latest 20 go as images, the 5 before as notes, and the API would take it
    List<String> kinds = new java.util.ArrayList<>();
    request
        .path("messages")
        .get(0)
        .path("content")
        .forEach(block -> kinds.add(block.path("type").asText()));
    assertThat(kinds.stream().filter("image"::equals)).hasSize(Projection.MAX_IMAGES);
    assertThat(request.toString().split("an image was here", -1)).hasSize(6);
    assertThat(request.toString())
        .contains(java.util.Base64.getEncoder().encodeToString(new byte[] {24}));
    assertThat(MessagesRules.violation(request)).isEmpty();
  }

  @Test
  void inputTheApiRefusedLeavesTheContextWithEveryImageBeforeIt() {
    // Given a turn with an image that the model answered
    fold(NewEvent.of(withImage(Fixtures.userMessage("look at this"), 1)));
    answered("sevt_span5000000000000000000000", "a cat");
    // and a turn the API refused outright (an image it cannot process; an earlier one whose URL
    // has expired reads the same), until the turn gave up
    fold(NewEvent.of(withImage(Fixtures.userMessage("and this?"), 2)));
    refused(
        new dev.corral.model.ModelException(
            400, "invalid_request_error", "Could not process image", false, null));

    // When the user writes again
    fold(NewEvent.of(Fixtures.userMessage("hello again")));
    JsonNode request = Projection.request(state, 1000, 0);

    // Then the refused turn is gone, every image left is a note, and the API would take it
    String sent = request.path("messages").toString();
    assertThat(sent).contains("look at this").contains("a cat").contains("hello again");
    assertThat(sent).doesNotContain("and this?").doesNotContain("\"type\":\"image\"");
    assertThat(sent).contains(SessionState.WITHHELD_IMAGE);
    assertThat(MessagesRules.violation(request)).isEmpty();
  }

  @Test
  void aTurnThatGaveUpOnAnOverloadedApiKeepsItsInputAndImages() {
    // Given a turn whose calls found the API overloaded until it gave up
    fold(NewEvent.of(withImage(Fixtures.userMessage("and this?"), 2)));
    refused(new dev.corral.model.ModelException(529, "overloaded_error", "Overloaded", true, null));

    // When the user writes again
    fold(NewEvent.of(Fixtures.userMessage("hello again")));
    JsonNode request = Projection.request(state, 1000, 0);

    // Then nothing was refused for what it held: the input and its image are still sent
    String sent = request.path("messages").toString();
    assertThat(sent).contains("and this?").contains("\"type\":\"image\"");
    assertThat(sent).doesNotContain(SessionState.WITHHELD_IMAGE);
  }

  @Test
  void aRefusalOfTheAccountOrConfigurationForgetsNothing() {
    // Given a turn refused because the account has no credit left
    fold(NewEvent.of(withImage(Fixtures.userMessage("and this?"), 2)));
    refused(
        new dev.corral.model.ModelException(
            400,
            "invalid_request_error",
            "Your credit balance is too low to access the Anthropic API.",
            false,
            null));

    // When the user writes again (after the operator added credit)
    fold(NewEvent.of(Fixtures.userMessage("hello again")));
    String sent = Projection.request(state, 1000, 0).path("messages").toString();

    // Then the input and its image are still there: leaving them out would not have helped
    assertThat(sent).contains("and this?").contains("\"type\":\"image\"");
  }

  @Test
  void aMessageSentDuringTheRefusedCallStaysAndInputOfAnEarlierAbandonedTurnGoes() {
    // Given an answered turn, then a turn given up on an overloaded API (its input never taken)
    fold(NewEvent.of(Fixtures.userMessage("first")));
    answered("sevt_span7000000000000000000000", "a first answer");
    fold(NewEvent.of(Fixtures.userMessage("huge abandoned input")));
    refused(new dev.corral.model.ModelException(529, "overloaded_error", "Overloaded", true, null));
    // and a turn whose call the API refused as too long, while another message arrived
    fold(NewEvent.of(Fixtures.userMessage("next")));
    refused(
        new dev.corral.model.ModelException(
            400,
            "invalid_request_error",
            "prompt is too long: 9000 tokens > 8000 maximum",
            true,
            null),
        NewEvent.of(Fixtures.userMessage("sent during the call")));
    // (the message that came during the call, which it did not hold, still waits for an answer)
    assertThat(state.hasUnansweredInput()).isTrue();

    // When the user writes again
    fold(NewEvent.of(Fixtures.userMessage("hello again")));
    JsonNode request = Projection.request(state, 1000, 0);

    // Then everything no answered call took is gone, except what the refused call never held
    String sent = request.path("messages").toString();
    assertThat(sent).contains("first").contains("a first answer");
    assertThat(sent).doesNotContain("huge abandoned input").doesNotContain("\"next\"");
    assertThat(sent).contains("sent during the call").contains("hello again");
    assertThat(MessagesRules.violation(request)).isEmpty();
  }

  @Test
  void aMessageSentDuringTheLastAnsweredCallIsForgottenWhenTheNextCallIsRefused() {
    // Given a call that was answered while a message too large for any request came
    fold(NewEvent.of(Fixtures.userMessage("first")));
    fold(EventsFactory.spanStart("sevt_span9000000000000000000000", "claude-test"));
    fold(NewEvent.of(Fixtures.userMessage("huge, sent during the call")));
    fold(
        EventsFactory.block(
            "sevt_text9000000000000000000000", new ModelResponse.Text("a first answer"), AGENT));
    fold(
        EventsFactory.spanEnd(
            "sevt_span9000000000000000000000",
            new ModelResponse("m", List.of(), "end_turn", ModelUsage.getDefaultInstance())));
    // and the call that took that message up refused as too long, until the turn gave up
    refused(
        new dev.corral.model.ModelException(
            400,
            "invalid_request_error",
            "prompt is too long: 9000 tokens > 8000 maximum",
            true,
            null));

    // When the user writes again
    fold(NewEvent.of(Fixtures.userMessage("hello again")));
    JsonNode request = Projection.request(state, 1000, 0);

    // Then the message no answered call saw is gone, and what was answered stays
    String sent = request.path("messages").toString();
    assertThat(sent).contains("first").contains("a first answer").contains("hello again");
    assertThat(sent).doesNotContain("huge, sent during the call");
    assertThat(MessagesRules.violation(request)).isEmpty();
  }

  @Test
  void inputRefusedForSomethingElseThanAnImageLeavesTheImagesBeforeIt() {
    // Given a turn with an image that the model answered
    fold(NewEvent.of(withImage(Fixtures.userMessage("look at this"), 1)));
    answered("sevt_span6000000000000000000000", "a cat");
    // and a turn the API refused for what a message held, naming no image
    fold(NewEvent.of(Fixtures.userMessage("and this text?")));
    refused(
        new dev.corral.model.ModelException(
            400,
            "invalid_request_error",
            "HTTP 400 invalid_request_error: messages.2.content.0.text: too long",
            false,
            null));

    // When the user writes again
    fold(NewEvent.of(Fixtures.userMessage("hello again")));
    String sent = Projection.request(state, 1000, 0).path("messages").toString();

    // Then the refused turn is gone, and the answered turn's image is still sent
    assertThat(sent).doesNotContain("and this text?").contains("hello again");
    assertThat(sent).contains("\"type\":\"image\"").doesNotContain(SessionState.WITHHELD_IMAGE);
  }

  @Test
  void aMessageDuringAFailedCallGetsEveryTryOfItsOwnTurn() {
    // Given a call that failed for good while a message came
    fold(NewEvent.of(Fixtures.userMessage("first")));
    refused(
        new dev.corral.model.ModelException(529, "overloaded_error", "Overloaded", true, null),
        NewEvent.of(Fixtures.userMessage("sent during the call")));

    // Then that message's turn starts with no failure counted against it
    assertThat(state.hasUnansweredInput()).isTrue();
    assertThat(state.failuresSinceInput()).isZero();
  }

  @Test
  void aResultForNoCallOfTheSessionIsNoInputToAnswer() {
    // Given an answered turn
    fold(NewEvent.of(Fixtures.userMessage("first")));
    answered("sevt_span8000000000000000000000", "an answer");

    // When a result arrives for a call the session never made
    fold(
        NewEvent.of(
            Event.newBuilder()
                .setAgentToolResult(
                    dev.corral.proto.v1.AgentToolResult.newBuilder()
                        .setToolUseId("sevt_nocall000000000000000000")
                        .addContent(
                            dev.corral.proto.v1.ContentBlock.newBuilder()
                                .setText(
                                    dev.corral.proto.v1.TextBlock.newBuilder().setText("forged"))))
                .build()));

    // Then the model is not called for it (a request would end on the assistant's reply)
    assertThat(state.hasUnansweredInput()).isFalse();
    assertThat(Projection.request(state, 1000, 0).path("messages").toString())
        .doesNotContain("forged");
  }

  @Test
  void aTurnGivenUpLeavesNoInputItHeldUnanswered() {
    // Given a turn whose call failed for good, with no message during it
    fold(NewEvent.of(Fixtures.userMessage("first")));
    refused(new dev.corral.model.ModelException(529, "overloaded_error", "Overloaded", true, null));

    // Then the session waits for new input rather than trying the turn again
    assertThat(state.hasUnansweredInput()).isFalse();
  }

  private void answered(String spanId, String text) {
    fold(EventsFactory.spanStart(spanId, "claude-test"));
    fold(EventsFactory.block(spanId.replace("span", "text"), new ModelResponse.Text(text), AGENT));
    fold(
        EventsFactory.spanEnd(
            spanId,
            new ModelResponse("m", List.of(), "end_turn", ModelUsage.getDefaultInstance())));
    fold(
        EventsFactory.idle(
            Decision.stopReason(dev.corral.proto.v1.StopReasonType.STOP_REASON_TYPE_END_TURN)));
  }

  /** The last call of a turn failed with {@code error}, and the turn gave up. */
  private void refused(dev.corral.model.ModelException error, NewEvent... duringTheCall) {
    String spanId = "sevt_spanr" + String.format("%021d", seq + 1);
    fold(EventsFactory.spanStart(spanId, "claude-test"));
    for (NewEvent event : duringTheCall) {
      fold(event);
    }
    fold(EventsFactory.failedSpanEnd(spanId, error.getMessage()));
    fold(EventsFactory.sessionError(error, 1, true));
    fold(
        EventsFactory.idle(
            Decision.stopReason(
                dev.corral.proto.v1.StopReasonType.STOP_REASON_TYPE_RETRIES_EXHAUSTED)));
  }

  private static Event withImage(Event message, int data) {
    return message.toBuilder()
        .setUserMessage(
            message.getUserMessage().toBuilder().addContent(image(new byte[] {(byte) data})))
        .build();
  }

  private static dev.corral.proto.v1.ContentBlock image(byte[] data) {
    return dev.corral.proto.v1.ContentBlock.newBuilder()
        .setImage(
            dev.corral.proto.v1.ImageBlock.newBuilder()
                .setMediaType("image/png")
                .setData(com.google.protobuf.ByteString.copyFrom(data)))
        .build();
  }

  @Test
  void anImageCountsWhatTheModelPaysForItNotItsBase64() {
    // Given a message with two images of 200 KB each
    byte[] png = new byte[200_000];
    byte[] magic = {(byte) 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    System.arraycopy(magic, 0, png, 0, magic.length);
    dev.corral.proto.v1.ContentBlock image =
        dev.corral.proto.v1.ContentBlock.newBuilder()
            .setImage(
                dev.corral.proto.v1.ImageBlock.newBuilder()
                    .setMediaType("image/png")
                    .setData(com.google.protobuf.ByteString.copyFrom(png)))
            .build();
    Event message = Fixtures.userMessage("what differs?");
    message =
        message.toBuilder()
            .setUserMessage(
                message.getUserMessage().toBuilder().addContent(image).addContent(image))
            .build();
    fold(NewEvent.of(message));

    // When its size is estimated
    long tokens = ContextBudget.estimate(Projection.request(state, 1000, 0));

    // Then the images count some 1,600 tokens each, not the 130,000 their base64 reads as
    assertThat(tokens)
        .isGreaterThan(2L * ContextBudget.IMAGE_TOKENS)
        .isLessThan(2L * ContextBudget.IMAGE_TOKENS + 2_000);
  }

  @Test
  void mcpToolsTheApiWouldRefuseAreNotOffered() {
    // Given servers "a" and "a_" whose tools "_x" and "x" share a model name, and a tool whose
    // input
    // is not an object
    Agent agent =
        AGENT.toBuilder()
            .addTools(
                Tool.newBuilder().setMcpToolset(McpToolset.newBuilder().setMcpServerName("a")))
            .addTools(
                Tool.newBuilder().setMcpToolset(McpToolset.newBuilder().setMcpServerName("a_")))
            .build();
    List<OfferedTools.Tool> listed =
        List.of(
            new OfferedTools.Tool("a", "_x", "first", "{\"type\":\"object\"}", false),
            new OfferedTools.Tool("a_", "x", "second", "{\"type\":\"object\"}", false),
            new OfferedTools.Tool("a", "text", "not an object", "{\"type\":\"string\"}", false),
            new OfferedTools.Tool("a", "broken", "no JSON", "{", false));

    // When the tools are described to the model
    JsonNode tools = Projection.tools(agent, listed);

    // Then each name comes once (the first listed), and only tools that take an object
    List<String> mcp = new java.util.ArrayList<>();
    tools.forEach(
        tool -> {
          if (tool.path("name").asText().startsWith("mcp__")) {
            mcp.add(tool.path("name").asText() + ":" + tool.path("description").asText());
          }
        });
    assertThat(mcp).containsExactly("mcp__a___x:first");
    assertThat(McpNames.called(agent, listed, "mcp__a___x").orElseThrow().description())
        .isEqualTo("first");
    assertThat(McpNames.called(agent, listed, "mcp__a__text")).isEmpty();
  }

  @Test
  void anMcpToolOfAServerWithAnyNameIsOfferedUnderANameTheApiTakesAndItsCallFound() {
    // Given a server whose name has a space, listing a tool with a dot in its name, and one whose
    // name MCP does not allow
    Agent agent = withMcpServer(AGENT, "docs search");
    List<OfferedTools.Tool> listed =
        List.of(
            new OfferedTools.Tool(
                "docs search", "files.read", "reads", "{\"type\":\"object\"}", false),
            new OfferedTools.Tool(
                "docs search", "has space", "no", "{\"type\":\"object\"}", false));

    // When the tools are described to the model
    JsonNode tools = Projection.tools(agent, listed);

    // Then the first is offered under a name the API takes, and that name finds it again
    String offered = AgentRules.mcpModelName("docs search", "files.read");
    assertThat(tools.findValuesAsText("name")).contains(offered).doesNotContain("has space");
    assertThat(offered).matches("[A-Za-z0-9_-]{1,64}");
    assertThat(McpNames.called(agent, listed, offered).orElseThrow().name())
        .isEqualTo("files.read");
    assertThat(McpNames.enabled(agent, listed))
        .extracting(OfferedTools.Tool::name)
        .containsExactly("files.read");
  }

  @Test
  void anMcpToolWhoseSchemaIsMalformedDeepInsideIsNotOffered() {
    Agent agent = withMcpServer(AGENT, "srv");
    List<OfferedTools.Tool> listed =
        List.of(
            new OfferedTools.Tool(
                "srv",
                "bad",
                "a typo in a property's type",
                "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"strin\"}}}",
                false),
            new OfferedTools.Tool(
                "srv",
                "good",
                "fine",
                "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\"}}}",
                false));

    assertThat(McpNames.enabled(agent, listed))
        .extracting(OfferedTools.Tool::name)
        .containsExactly("good");
  }

  @Test
  void anMcpToolJudgedWhenListedIsOfferedOnThatVerdictWithoutParsingItsSchemaAgain() {
    // Given tools judged when listed: one accepted (its schema is then offered as listed, even
    // one no parser would read, which shows it was not parsed here), one refused
    Agent agent = withMcpServer(AGENT, "srv");
    List<OfferedTools.Tool> listed =
        List.of(
            new OfferedTools.Tool("srv", "judged", "", "{not json", false, true),
            new OfferedTools.Tool("srv", "refused", "", "{\"type\":\"object\"}", false, false));

    // Then the request projection takes the verdicts as they are
    assertThat(McpNames.enabled(agent, listed))
        .extracting(OfferedTools.Tool::name)
        .containsExactly("judged");
  }

  @Test
  void mcpToolDefinitionsTakeNoMoreThanTheirShareOfARequest() {
    // Given a server listing 128 tools of 10,000 characters of description each (1.28 M in all)
    Agent agent =
        AGENT.toBuilder()
            .addTools(
                Tool.newBuilder().setMcpToolset(McpToolset.newBuilder().setMcpServerName("big")))
            .build();
    List<OfferedTools.Tool> listed = new java.util.ArrayList<>();
    for (int i = 0; i < 128; i++) {
      listed.add(
          new OfferedTools.Tool(
              "big", "t" + i, "d".repeat(10_000), "{\"type\":\"object\"}", false));
    }

    // When they are offered
    List<OfferedTools.Tool> offered = McpNames.enabled(agent, listed);

    // Then only the first that fit the budget are
    assertThat(offered).hasSize(19);
    assertThat(offered.get(0).name()).isEqualTo("t0");
    long chars =
        offered.stream()
            .mapToLong(
                t -> t.name().length() + t.description().length() + t.inputSchemaJson().length())
            .sum();
    assertThat(chars).isLessThanOrEqualTo(McpNames.MAX_DEFINITION_CHARS);
  }

  @Test
  void aSchemasNumbersGoOutAsWritten() {
    Agent agent =
        AGENT.toBuilder()
            .addTools(
                Tool.newBuilder()
                    .setCustom(
                        dev.corral.proto.v1.CustomTool.newBuilder()
                            .setName("measure")
                            .setInputSchemaJson(
                                "{\"type\":\"object\",\"properties\":{\"n\":{\"type\":\"number\","
                                    + "\"maximum\":1e999,\"multipleOf\":1.50}}}")))
            .build();

    String tools = Projection.tools(agent).toString();

    // a double would make the maximum Infinity, which is no JSON number
    assertThat(tools).contains("\"maximum\":1E+999").contains("\"multipleOf\":1.50");
  }

  @Test
  void onlyEnabledToolsAreOfferedAndTheLastCarriesACacheBreakpoint() {
    fold(NewEvent.of(Fixtures.userMessage("hi")));

    JsonNode tools = Projection.request(state, 1000, 0).path("tools");

    List<String> names = new java.util.ArrayList<>();
    tools.forEach(tool -> names.add(tool.path("name").asText()));
    assertThat(names).containsExactly("bash", "read", "write", "edit", "glob", "session_log");
    assertThat(tools.get(tools.size() - 1).path("cache_control").path("type").asText())
        .isEqualTo("ephemeral");
    assertThat(tools.get(0).path("cache_control").isMissingNode()).isTrue();
  }

  private static String head(int i) {
    return String.format("HEAD%02d", i);
  }

  private static String tail(int i) {
    return String.format("TAIL%02d", i);
  }

  /** A model turn that made one bash call, folded; the call's event. */
  private NewEvent toolCall(String callId, String eventId) {
    fold(NewEvent.of(Fixtures.userMessage("run it")));
    NewEvent call =
        EventsFactory.block(
            eventId, new ModelResponse.ToolUse(callId, "bash", "{\"command\":\"x\"}"), AGENT);
    fold(EventsFactory.spanStart("sevt_spanz000000000000000000000", "claude-test"));
    fold(call);
    fold(
        EventsFactory.spanEnd(
            "sevt_spanz000000000000000000000",
            new ModelResponse("m", List.of(), "tool_use", ModelUsage.getDefaultInstance())));
    return call;
  }

  /** The text of every tool result block of {@code request}, in order. */
  private static List<String> resultTexts(JsonNode request) {
    List<String> texts = new java.util.ArrayList<>();
    for (JsonNode message : request.path("messages")) {
      for (JsonNode block : message.path("content")) {
        if (block.path("type").asText().equals("tool_result")) {
          block.path("content").forEach(content -> texts.add(content.path("text").asText()));
        }
      }
    }
    return texts;
  }

  private static boolean unpairedSurrogate(String text) {
    for (int i = 0; i < text.length(); i++) {
      char c = text.charAt(i);
      if (Character.isHighSurrogate(c)
          && (i + 1 == text.length() || !Character.isLowSurrogate(text.charAt(++i)))) {
        return true;
      }
      if (Character.isLowSurrogate(c)) {
        return true;
      }
    }
    return false;
  }

  @Test
  void aSummaryOverACallOfAnMcpServerThatIsDownMayCallNoTool() {
    // Given an agent whose only tools are an MCP server's, and a turn that called one of them
    Agent agent = withMcpServer(Agent.newBuilder().setModel("claude-test").build(), "srv");
    SessionState mine =
        new SessionState(Session.newBuilder().setId("sesn_y").setAgent(agent).build());
    List<OfferedTools.Tool> listed =
        List.of(new OfferedTools.Tool("srv", "search", "Searches", "{\"type\":\"object\"}", false));
    fold(mine, NewEvent.of(Fixtures.userMessage("look it up")));
    fold(mine, EventsFactory.spanStart("sevt_span5000000000000000000000", "claude-test"));
    fold(
        mine,
        EventsFactory.block(
            "sevt_call5000000000000000000000",
            new ModelResponse.ToolUse("toolu_m", "mcp__srv__search", "{}"),
            agent,
            listed));
    fold(
        mine,
        EventsFactory.spanEnd(
            "sevt_span5000000000000000000000",
            new ModelResponse("m", List.of(), "tool_use", ModelUsage.getDefaultInstance())));
    fold(mine, EventsFactory.resultOf(mine.unansweredCalls().get(0), "found", false));
    fold(mine, EventsFactory.spanStart("sevt_span6000000000000000000000", "claude-test"));
    fold(
        mine,
        EventsFactory.block(
            "sevt_text6000000000000000000000", new ModelResponse.Text("Found it."), agent));
    fold(
        mine,
        EventsFactory.spanEnd(
            "sevt_span6000000000000000000000",
            new ModelResponse("m", List.of(), "end_turn", ModelUsage.getDefaultInstance())));
    fold(mine, NewEvent.of(Fixtures.userMessage("thanks")));

    // When the summary of all but the last turn is asked for while the server lists nothing
    int cut = mine.context().size() - 2;
    JsonNode request = Projection.compactionRequest(mine, List.of(), cut, 1000, 0);

    // Then the called tool is described (the history names it) and no tool may be called
    assertThat(request.path("tools").findValuesAsText("name")).contains("mcp__srv__search");
    assertThat(request.path("tool_choice").path("type").asText()).isEqualTo("none");
    assertThat(MessagesRules.violation(request)).isEmpty();
  }

  @Test
  void aSummaryWhosePartEndsOnAReplyAsksInAUserTurn() {
    // Given a turn answered, then another message
    fold(NewEvent.of(Fixtures.userMessage("hello")));
    fold(EventsFactory.spanStart("sevt_span7000000000000000000000", "claude-test"));
    fold(
        EventsFactory.block(
            "sevt_text7000000000000000000000", new ModelResponse.Text("Hi."), AGENT));
    fold(
        EventsFactory.spanEnd(
            "sevt_span7000000000000000000000",
            new ModelResponse("m", List.of(), "end_turn", ModelUsage.getDefaultInstance())));
    fold(NewEvent.of(Fixtures.userMessage("bye")));

    // When the part to summarise ends on the reply
    JsonNode request = Projection.compactionRequest(state, 2, 4096, 1024);

    // Then the instruction is a user turn of its own, not a prefill of the reply
    JsonNode messages = request.path("messages");
    JsonNode last = messages.get(messages.size() - 1);
    assertThat(last.path("role").asText()).isEqualTo("user");
    assertThat(last.path("content").get(0).path("text").asText())
        .isEqualTo(Projection.SUMMARY_INSTRUCTION);
    assertThat(MessagesRules.violation(request)).isEmpty();
  }

  @Test
  void aToolLoopBegunWithThinkingKeepsItOverManyCalls() {
    // Given a loop whose first reply thought, then called two tools one after the other
    fold(NewEvent.of(Fixtures.userMessage("list files twice")));
    for (int i = 0; i < 2; i++) {
      String n = Integer.toString(i);
      fold(EventsFactory.spanStart("sevt_spanA" + n + "00000000000000000000", "claude-test"));
      if (i == 0) {
        fold(
            EventsFactory.block(
                "sevt_thnkA000000000000000000000",
                new ModelResponse.Thinking("list them", "c2lnbmVk"),
                AGENT));
      }
      fold(
          EventsFactory.block(
              "sevt_callA" + n + "00000000000000000000",
              new ModelResponse.ToolUse("toolu_a" + n, "bash", "{\"command\":\"ls\"}"),
              AGENT));
      fold(
          EventsFactory.spanEnd(
              "sevt_spanA" + n + "00000000000000000000",
              new ModelResponse("m", List.of(), "tool_use", ModelUsage.getDefaultInstance())));
      fold(EventsFactory.toolResult("sevt_callA" + n + "00000000000000000000", "a.txt", false));
    }

    // When the loop's third request is made
    JsonNode request = Projection.request(state, 4096, 2048);

    // Then it still thinks, and the API takes it
    assertThat(request.path("thinking").path("budget_tokens").asInt()).isEqualTo(2048);
    assertThat(MessagesRules.violation(request)).isEmpty();
  }

  @Test
  void aToolLoopBegunWithoutThinkingGoesOnWithoutItWhenThinkingIsTurnedOn() {
    // Given a loop whose call was made with thinking off, and its result
    fold(NewEvent.of(Fixtures.userMessage("list files")));
    fold(EventsFactory.spanStart("sevt_span8000000000000000000000", "claude-test"));
    fold(
        EventsFactory.block(
            "sevt_call8000000000000000000000",
            new ModelResponse.ToolUse("toolu_8", "bash", "{\"command\":\"ls\"}"),
            AGENT));
    fold(
        EventsFactory.spanEnd(
            "sevt_span8000000000000000000000",
            new ModelResponse("m", List.of(), "tool_use", ModelUsage.getDefaultInstance())));
    fold(EventsFactory.toolResult("sevt_call8000000000000000000000", "a.txt", false));

    // When the next request is made after thinking was turned on
    JsonNode request = Projection.request(state, 4096, 2048);

    // Then the loop ends without thinking, and the API takes the request
    assertThat(request.has("thinking")).isFalse();
    assertThat(MessagesRules.violation(request)).isEmpty();

    // And once the loop has ended, the next turn thinks
    fold(EventsFactory.spanStart("sevt_span9000000000000000000000", "claude-test"));
    fold(
        EventsFactory.block(
            "sevt_text9000000000000000000000", new ModelResponse.Text("One file."), AGENT));
    fold(
        EventsFactory.spanEnd(
            "sevt_span9000000000000000000000",
            new ModelResponse("m", List.of(), "end_turn", ModelUsage.getDefaultInstance())));
    fold(NewEvent.of(Fixtures.userMessage("thanks")));
    JsonNode next = Projection.request(state, 4096, 2048);
    assertThat(next.path("thinking").path("budget_tokens").asInt()).isEqualTo(2048);
    assertThat(MessagesRules.violation(next)).isEmpty();
  }

  private static Agent withMcpServer(Agent agent, String server) {
    return agent.toBuilder()
        .addTools(Tool.newBuilder().setMcpToolset(McpToolset.newBuilder().setMcpServerName(server)))
        .build();
  }

  private void fold(NewEvent event) {
    fold(state, event);
  }

  private void fold(SessionState target, NewEvent event) {
    Event stored =
        event.payload().toBuilder()
            .setId(event.id())
            .setType(event.type().wireName())
            .setSeq(++seq)
            .build();
    target.apply(stored);
  }

  @Test
  void anAgentStoredWithACustomToolNamedAsABuiltInOneOffersEachNameOnce() {
    Agent agent =
        Agent.newBuilder()
            .addTools(Tool.newBuilder().setToolset(AgentToolset.getDefaultInstance()))
            .addTools(
                Tool.newBuilder()
                    .setCustom(
                        dev.corral.proto.v1.CustomTool.newBuilder()
                            .setName("session_log")
                            .setInputSchemaJson("{\"type\":\"object\"}")))
            .build();

    List<String> names = Projection.tools(agent).findValuesAsText("name");

    assertThat(names).contains("session_log", "bash").doesNotHaveDuplicates();
  }
}
