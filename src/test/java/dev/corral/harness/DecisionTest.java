package dev.corral.harness;

import static org.assertj.core.api.Assertions.assertThat;

import dev.corral.model.ModelResponse;
import dev.corral.proto.v1.Agent;
import dev.corral.proto.v1.AgentToolset;
import dev.corral.proto.v1.ConfirmationResult;
import dev.corral.proto.v1.CustomTool;
import dev.corral.proto.v1.Event;
import dev.corral.proto.v1.ModelUsage;
import dev.corral.proto.v1.PermissionPolicy;
import dev.corral.proto.v1.Session;
import dev.corral.proto.v1.SessionBudget;
import dev.corral.proto.v1.StopReasonType;
import dev.corral.proto.v1.Tool;
import dev.corral.proto.v1.ToolConfig;
import dev.corral.proto.v1.UserInterrupt;
import dev.corral.proto.v1.UserToolConfirmation;
import dev.corral.session.NewEvent;
import dev.corral.testing.Fixtures;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;

/** Event histories replayed from scratch into the fold, and what the pure decision says next. */
class DecisionTest {

  private static final Agent AGENT =
      Agent.newBuilder()
          .setId("agent_x")
          .setModel("claude-test")
          .addTools(
              Tool.newBuilder()
                  .setToolset(
                      AgentToolset.newBuilder()
                          .addConfigs(
                              ToolConfig.newBuilder()
                                  .setName("write")
                                  .setPermissionPolicy(
                                      PermissionPolicy.PERMISSION_POLICY_ALWAYS_ASK))))
          .addTools(
              Tool.newBuilder()
                  .setCustom(
                      CustomTool.newBuilder()
                          .setName("lookup")
                          .setInputSchemaJson("{\"type\":\"object\"}")))
          .addTools(
              Tool.newBuilder()
                  .setMcpToolset(
                      dev.corral.proto.v1.McpToolset.newBuilder().setMcpServerName("gh")))
          .addMcpServers(
              dev.corral.proto.v1.McpServer.newBuilder()
                  .setName("gh")
                  .setUrl("https://mcp.example.com/mcp"))
          .build();

  private final History history =
      new History(Session.newBuilder().setId("sesn_x").setAgent(AGENT).build());

  @Test
  void newUserMessageCallsTheModel() {
    history.add(Fixtures.userMessage("hi"));

    assertThat(history.next()).isEqualTo(new Step.CallModel(1));
  }

  @Test
  void answeredTurnEndsIdleAndThenThereIsNothingToDo() {
    history.add(Fixtures.userMessage("hi"));
    history.modelTurn(new ModelResponse.Text("hello"));

    assertThat(history.next())
        .isEqualTo(new Step.Idle(Decision.stopReason(StopReasonType.STOP_REASON_TYPE_END_TURN)));
    history.add(EventsFactory.idle(Decision.stopReason(StopReasonType.STOP_REASON_TYPE_END_TURN)));
    assertThat(history.next()).isEqualTo(new Step.Done());
  }

  @Test
  void allowedToolCallRunsAndItsResultGoesBackToTheModel() {
    history.add(Fixtures.userMessage("list"));
    String call = history.modelTurn(new ModelResponse.ToolUse("toolu_1", "bash", "{}"));

    assertThat(history.next()).isInstanceOf(Step.RunTools.class);
    assertThat(history.nextWith(Set.of(), Set.of(call), false)).isEqualTo(new Step.Wait());
    history.add(EventsFactory.toolResult(call, "out", false));
    assertThat(history.next()).isEqualTo(new Step.CallModel(1));
  }

  @Test
  void askingCallAndCustomCallWaitForTheClient() {
    history.add(Fixtures.userMessage("go"));
    List<String> calls =
        history.modelTurn(
            new ModelResponse.ToolUse("toolu_w", "write", "{}"),
            new ModelResponse.ToolUse("toolu_l", "lookup", "{}"));

    Step step = history.next();
    assertThat(step).isInstanceOf(Step.Idle.class);
    assertThat(((Step.Idle) step).reason().getEventIdsList()).containsExactlyElementsOf(calls);
  }

  @Test
  void deniedCallGetsTheDenialAsResult() {
    history.add(Fixtures.userMessage("go"));
    String call = history.modelTurn(new ModelResponse.ToolUse("toolu_w", "write", "{}"));
    history.add(
        Event.newBuilder()
            .setUserToolConfirmation(
                UserToolConfirmation.newBuilder()
                    .setToolUseId(call)
                    .setResult(ConfirmationResult.CONFIRMATION_RESULT_DENY))
            .build());

    assertThat(history.next()).isInstanceOf(Step.ApplyDenials.class);
  }

  @Test
  void callsInheritedFromADeadHarnessAreResolvedNotRerunUnlessReadOnly() {
    history.add(Fixtures.userMessage("go"));
    List<String> calls =
        history.modelTurn(
            new ModelResponse.ToolUse("toolu_b", "bash", "{}"),
            new ModelResponse.ToolUse("toolu_r", "read", "{}"));

    Step step = history.nextWith(Set.copyOf(calls), Set.of(), false);
    assertThat(step).isInstanceOf(Step.ResolveUnknown.class);
    assertThat(((Step.ResolveUnknown) step).calls())
        .extracting(ToolCallState::name)
        .containsExactly("bash");
    history.add(EventsFactory.toolResult(calls.get(0), "unknown", true));
    Step then = history.nextWith(Set.copyOf(calls), Set.of(), false);
    assertThat(((Step.RunTools) then).calls())
        .extracting(ToolCallState::name)
        .containsExactly("read");
  }

  @Test
  void mcpCallsInheritedFromADeadHarnessAreResolvedUnlessTheServerSaidReadOnly() {
    // Given a turn that called two tools of an MCP server, one marked read-only
    history.add(Fixtures.userMessage("go"));
    List<dev.corral.tool.OfferedTools.Tool> offered =
        List.of(
            new dev.corral.tool.OfferedTools.Tool("gh", "create_issue", "", "{}", false),
            new dev.corral.tool.OfferedTools.Tool("gh", "search", "", "{}", true));
    List<String> calls =
        history.modelTurn(
            offered,
            new ModelResponse.ToolUse("toolu_w", "mcp__gh__create_issue", "{}"),
            new ModelResponse.ToolUse("toolu_s", "mcp__gh__search", "{}"));

    // When a new harness finds them without results
    Step step = history.nextWith(Set.copyOf(calls), Set.of(), false);

    // Then the one that may have changed something gets an unknown outcome, the other runs again
    assertThat(step).isInstanceOf(Step.ResolveUnknown.class);
    assertThat(((Step.ResolveUnknown) step).calls())
        .extracting(ToolCallState::name)
        .containsExactly("create_issue");
    ToolCallState unknown = ((Step.ResolveUnknown) step).calls().get(0);
    NewEvent result = EventsFactory.resultOf(unknown, "unknown", true);
    assertThat(result.payload().hasAgentMcpToolResult()).isTrue();
    history.add(result);
    Step then = history.nextWith(Set.copyOf(calls), Set.of(), false);
    assertThat(((Step.RunTools) then).calls())
        .extracting(ToolCallState::name, ToolCallState::kind)
        .containsExactly(org.assertj.core.groups.Tuple.tuple("search", ToolCallState.Kind.MCP));
  }

  @Test
  void anMcpToolTheAgentDoesNotEnableIsNeverAnMcpCall() {
    history.add(Fixtures.userMessage("go"));
    List<String> calls =
        history.modelTurn(
            List.of(new dev.corral.tool.OfferedTools.Tool("other", "x", "", "{}", false)),
            new ModelResponse.ToolUse("toolu_x", "mcp__other__x", "{}"));
    assertThat(history.events().get(history.events().size() - 2).hasAgentMcpToolUse()).isFalse();
    assertThat(calls).hasSize(1);
  }

  @Test
  void orphanModelCallIsClosedThenCalledAgain() {
    history.add(Fixtures.userMessage("hi"));
    history.add(EventsFactory.running());
    String span = "sevt_orphan0000000000000000000";
    history.add(EventsFactory.spanStart(span, "claude-test"));

    assertThat(history.next()).isEqualTo(new Step.CloseOrphanSpan(span));
    EventsFactory.orphanClosed(span, true, 1, 3).forEach(history::add);
    assertThat(history.next()).isEqualTo(new Step.CallModel(2));
  }

  @Test
  void aCallWhoseHarnessDiesEveryTimeIsGivenUpAfterItsRetries() {
    // Given a turn whose model call never ends: its harness dies during it each time (a reply
    // too large for the replica's memory, say)
    history.add(Fixtures.userMessage("hi"));
    history.add(EventsFactory.running());
    for (int attempt = 1; attempt <= 4; attempt++) {
      String span = String.format("sevt_orphan%019d", attempt);
      history.add(EventsFactory.spanStart(span, "claude-test"));
      assertThat(history.next()).isEqualTo(new Step.CloseOrphanSpan(span));
      EventsFactory.orphanClosed(span, true, attempt, 3).forEach(history::add);
      if (attempt <= 3) {
        assertThat(history.next()).isEqualTo(new Step.CallModel(attempt + 1));
      }
    }

    // Then the fourth close gave the turn up (three retries), and nothing more is tried
    assertThat(history.events().get(history.events().size() - 1).getSessionStatusIdle())
        .extracting(idle -> idle.getStopReason().getType())
        .isEqualTo(StopReasonType.STOP_REASON_TYPE_RETRIES_EXHAUSTED);
    assertThat(history.next()).isEqualTo(new Step.Done());
  }

  @Test
  void interruptWhileWorkingStopsEverythingAndAbandonsTheTurn() {
    history.add(Fixtures.userMessage("long job"));
    String call = history.modelTurn(new ModelResponse.ToolUse("toolu_b", "bash", "{}"));
    history.add(Event.newBuilder().setUserInterrupt(UserInterrupt.getDefaultInstance()).build());

    Step step = history.nextWith(Set.of(), Set.of(call), false);
    assertThat(step).isInstanceOf(Step.Interrupt.class);
    history.add(EventsFactory.toolResult(call, "interrupted", true));
    history.add(
        EventsFactory.idle(Decision.stopReason(StopReasonType.STOP_REASON_TYPE_INTERRUPTED)));
    assertThat(history.next()).isEqualTo(new Step.Done());
    history.add(Fixtures.userMessage("next"));
    assertThat(history.next()).isEqualTo(new Step.CallModel(1));
  }

  @Test
  void interruptOfAnIdleSessionIsIgnored() {
    history.add(Event.newBuilder().setUserInterrupt(UserInterrupt.getDefaultInstance()).build());
    assertThat(history.next()).isEqualTo(new Step.Done());
    history.add(Fixtures.userMessage("hi"));
    assertThat(history.next()).isEqualTo(new Step.CallModel(1));
  }

  @Test
  void anInterruptSentWithAMessageStopsItsTurnBeforeItStarts() {
    // Given an idle session sent a message and an interrupt together (or the interrupt came before
    // the turn's status_running)
    history.add(Fixtures.userMessage("delete everything"));
    history.add(Event.newBuilder().setUserInterrupt(UserInterrupt.getDefaultInstance()).build());

    // Then the turn is interrupted without a model call
    assertThat(history.next()).isInstanceOf(Step.Interrupt.class);
    history.add(
        EventsFactory.idle(Decision.stopReason(StopReasonType.STOP_REASON_TYPE_INTERRUPTED)));
    assertThat(history.next()).isEqualTo(new Step.Done());
    // and a message after it starts the next
    history.add(Fixtures.userMessage("never mind, list files"));
    assertThat(history.next()).isEqualTo(new Step.CallModel(1));
  }

  @Test
  void anInterruptSentWhileACustomCallWaitsWinsOverItsResultSentAfterIt() {
    // Given a turn waiting for the client's answer to a custom call
    history.add(Fixtures.userMessage("look it up"));
    String call = history.modelTurn(new ModelResponse.ToolUse("toolu_l", "lookup", "{}"));
    history.add(
        EventsFactory.idle(
            dev.corral.proto.v1.StopReason.newBuilder()
                .setType(StopReasonType.STOP_REASON_TYPE_REQUIRES_ACTION)
                .addEventIds(call)
                .build()));

    // When the user interrupts, and the result comes after the interrupt, before any run saw it
    history.add(Event.newBuilder().setUserInterrupt(UserInterrupt.getDefaultInstance()).build());
    history.add(customResult(call));

    // Then the turn is stopped, not carried on with the result
    assertThat(history.next()).isEqualTo(new Step.Interrupt(List.of(), null));
    history.add(
        EventsFactory.idle(Decision.stopReason(StopReasonType.STOP_REASON_TYPE_INTERRUPTED)));
    assertThat(history.next()).isEqualTo(new Step.Done());
  }

  @Test
  void budgetOfModelRequestsStopsTheNextCall() {
    History limited = oneModelRequest();
    limited.add(Fixtures.userMessage("go"));
    String call = limited.modelTurn(new ModelResponse.ToolUse("toolu_b", "bash", "{}"));
    limited.add(EventsFactory.toolResult(call, "done", false));

    assertThat(limited.next())
        .isEqualTo(
            new Step.Idle(Decision.stopReason(StopReasonType.STOP_REASON_TYPE_BUDGET_REACHED)));
  }

  @Test
  void messagesAnsweredOnlyByTheSpentBudgetAreNotHeld() {
    // Given a session whose budget is spent, sent 40 messages of 256 KiB, each answered by the
    // idle that says so (which needs no model call, and answers the message)
    History limited = oneModelRequest();
    limited.add(Fixtures.userMessage("go"));
    limited.modelTurn(new ModelResponse.Text("done"));
    limited.add(EventsFactory.idle(Decision.stopReason(StopReasonType.STOP_REASON_TYPE_END_TURN)));
    String big = "x".repeat(256 * 1024);
    for (int i = 0; i < 40; i++) {
      limited.add(Fixtures.userMessage(i + big));
      assertThat(limited.next())
          .isEqualTo(
              new Step.Idle(Decision.stopReason(StopReasonType.STOP_REASON_TYPE_BUDGET_REACHED)));
      limited.add(
          EventsFactory.idle(Decision.stopReason(StopReasonType.STOP_REASON_TYPE_BUDGET_REACHED)));
    }

    // Then the state holds none of their content: no model call will ever read it
    long held = limited.state.conversation().stream().mapToLong(Event::getSerializedSize).sum();
    assertThat(held).isLessThan(64 * 1024);
  }

  @Test
  void messagesThatPileUpWithoutATurnAreKeptWithinABudgetOfBytes() {
    // Given a session sent 40 messages of 256 KiB that no turn has answered yet
    History limited = new History(Session.newBuilder().setId("sesn_w").setAgent(AGENT).build());
    limited.add(Fixtures.userMessage("go"));
    limited.modelTurn(new ModelResponse.Text("done"));
    limited.add(EventsFactory.idle(Decision.stopReason(StopReasonType.STOP_REASON_TYPE_END_TURN)));
    String big = "x".repeat(256 * 1024);
    for (int i = 0; i < 40; i++) {
      limited.add(Fixtures.userMessage(i + big));
    }

    // Then the state holds at most the budget of them whole, and notices in place of the rest
    long held = limited.state.conversation().stream().mapToLong(Event::getSerializedSize).sum();
    assertThat(held).isLessThan(SessionState.MAX_UNANSWERED_INPUT_BYTES + 64 * 1024);
    Event last = limited.state.conversation().get(limited.state.conversation().size() - 1);
    assertThat(last.getUserMessage().getContent(0).getText().getText()).contains("is not shown");
    // and the decision is unchanged: a model call for them
    assertThat(limited.next()).isInstanceOf(Step.CallModel.class);

    // And once a turn has seen them, the next messages are whole again
    History fresh = new History(Session.newBuilder().setId("sesn_y").setAgent(AGENT).build());
    for (int i = 0; i < 20; i++) {
      fresh.add(Fixtures.userMessage(i + big));
    }
    fresh.modelTurn(new ModelResponse.Text("read them"));
    fresh.add(Fixtures.userMessage("after" + big));
    Event after = fresh.state.conversation().get(fresh.state.conversation().size() - 1);
    assertThat(after.getUserMessage().getContent(0).getText().getText()).startsWith("after");
  }

  @Test
  void failedCallsAreRetriedUntilTheLimit() {
    history.add(Fixtures.userMessage("hi"));
    for (int attempt = 1; attempt <= 4; attempt++) {
      assertThat(history.next()).isEqualTo(new Step.CallModel(attempt));
      String span = dev.corral.common.IdKind.EVENT.next();
      history.add(EventsFactory.spanStart(span, "claude-test"));
      history.add(EventsFactory.failedSpanEnd(span, "overloaded"));
      history.add(
          EventsFactory.sessionError(
              new dev.corral.model.ModelException(
                  529, "overloaded_error", "Overloaded", true, null),
              attempt,
              false));
    }
    assertThat(history.next())
        .isEqualTo(
            new Step.Idle(Decision.stopReason(StopReasonType.STOP_REASON_TYPE_RETRIES_EXHAUSTED)));
  }

  @Test
  void aRefusedReplyIdlesAsARefusalAndItsWholeTurnLeavesTheContext() {
    // Given an answered turn, then a turn whose tool call ran before the reply was refused
    history.add(Fixtures.userMessage("first"));
    history.modelTurn(new ModelResponse.Text("answer"));
    history.add(EventsFactory.idle(Decision.stopReason(StopReasonType.STOP_REASON_TYPE_END_TURN)));
    history.add(Fixtures.userMessage("the trigger"));
    String call = history.modelTurn(new ModelResponse.ToolUse("toolu_l", "lookup", "{}"));
    history.add(customResult(call));
    history.refusedTurn(new ModelResponse.Text("I can hel"));

    // Then the session idles as refused, and the model will not see the refused turn again
    assertThat(history.next())
        .isEqualTo(new Step.Idle(Decision.stopReason(StopReasonType.STOP_REASON_TYPE_REFUSAL)));
    assertThat(texts(history.state.context())).containsExactly("first", "answer");
    history.add(EventsFactory.idle(Decision.stopReason(StopReasonType.STOP_REASON_TYPE_REFUSAL)));
    assertThat(history.next()).isEqualTo(new Step.Done());

    // When the user writes again, the next call starts from the turn before the refused one
    history.add(Fixtures.userMessage("something else"));
    assertThat(history.next()).isEqualTo(new Step.CallModel(1));
    assertThat(texts(history.state.context())).containsExactly("first", "answer", "something else");
    history.modelTurn(new ModelResponse.Text("fine"));
    assertThat(history.next())
        .isEqualTo(new Step.Idle(Decision.stopReason(StopReasonType.STOP_REASON_TYPE_END_TURN)));

    // And a replay of the log folds to the same context
    History replayed = new History(history.state.session());
    history.events.forEach(replayed::fold);
    assertThat(replayed.state.context()).isEqualTo(history.state.context());
  }

  @Test
  void aRefusalOfTheTurnAMessageSentDuringAnInterruptedCallStartsForgetsTheUnansweredInputToo() {
    // Given a call interrupted, with a message sent while it ran (the interrupt leaves it for a
    // turn of its own)
    history.add(Fixtures.userMessage("first"));
    history.add(EventsFactory.running());
    String span = "sevt_interrupted00000000000000";
    history.add(EventsFactory.spanStart(span, "claude-test"));
    history.add(Event.newBuilder().setUserInterrupt(UserInterrupt.getDefaultInstance()).build());
    history.add(Fixtures.userMessage("the trigger"));
    assertThat(history.nextWith(Set.of(), Set.of(), true)).isInstanceOf(Step.Interrupt.class);
    history.add(EventsFactory.failedSpanEnd(span, "interrupted by the user"));
    history.add(
        EventsFactory.idle(Decision.stopReason(StopReasonType.STOP_REASON_TYPE_INTERRUPTED)));

    // When the message's own turn is refused
    assertThat(history.next()).isEqualTo(new Step.CallModel(1));
    history.refusedTurn(new ModelResponse.Text("No"));

    // Then the refusal takes that turn out of the context, and the interrupted turn's input with
    // it: no call answered that input, the refused call held it too, and kept it would make every
    // later turn refused in the same way
    assertThat(history.next())
        .isEqualTo(new Step.Idle(Decision.stopReason(StopReasonType.STOP_REASON_TYPE_REFUSAL)));
    assertThat(texts(history.state.context())).isEmpty();
  }

  @Test
  void aRefusalKeepsTheAnsweredReplyThatAMessageSentDuringItsCallFollows() {
    // Given a call whose reply was appended after an interrupt and a message came (the message
    // follows the reply in the context, though its seq is lower)
    history.add(Fixtures.userMessage("first"));
    history.add(EventsFactory.running());
    String span = dev.corral.common.IdKind.EVENT.next();
    history.add(EventsFactory.spanStart(span, "claude-test"));
    history.add(Event.newBuilder().setUserInterrupt(UserInterrupt.getDefaultInstance()).build());
    history.add(Fixtures.userMessage("sent meanwhile"));
    history.replyEnds(span, "answer");
    history.add(
        EventsFactory.idle(Decision.stopReason(StopReasonType.STOP_REASON_TYPE_INTERRUPTED)));
    assertThat(texts(history.state.context())).containsExactly("first", "answer", "sent meanwhile");

    // When the message's own turn is refused
    assertThat(history.next()).isEqualTo(new Step.CallModel(1));
    history.refusedTurn(new ModelResponse.Text("No"));

    // Then only that turn leaves the context: the answered reply stays with its input
    assertThat(texts(history.state.context())).containsExactly("first", "answer");
    History replayed = new History(history.state.session());
    history.events.forEach(replayed::fold);
    assertThat(replayed.state.context()).isEqualTo(history.state.context());
  }

  @Test
  void theEndOfNoCallUnderWayRefusesNoTurn() {
    // Given a turn whose call runs, and a writer with the lease that appends a refused end of a
    // call that is not under way (no span is open)
    history.add(Fixtures.userMessage("list"));
    String call = history.modelTurn(new ModelResponse.ToolUse("toolu_1", "bash", "{}"));
    history.add(
        EventsFactory.spanEnd(
            dev.corral.common.IdKind.EVENT.next(),
            new ModelResponse(
                "m",
                List.of(new ModelResponse.Text("No")),
                SessionState.REFUSAL,
                ModelUsage.getDefaultInstance())));

    // When the call's result comes
    history.add(EventsFactory.toolResult(call, "out", false));

    // Then the model is called with the turn whole: its message, its call and the result
    assertThat(history.next()).isEqualTo(new Step.CallModel(1));
    assertThat(texts(history.state.context())).contains("list");
    assertThat(history.state.context()).hasSize(3);
  }

  @Test
  void aRefusalForgetsAMessageSentDuringTheLastAnsweredCallThatAnInterruptGaveUp() {
    // Given a message sent while an answered call ran, whose own call was interrupted (it is
    // given up, but stays in the history)
    history.add(Fixtures.userMessage("first"));
    history.add(EventsFactory.running());
    String answered = dev.corral.common.IdKind.EVENT.next();
    history.add(EventsFactory.spanStart(answered, "claude-test"));
    history.add(Fixtures.userMessage("the trigger"));
    history.replyEnds(answered, "answer");
    assertThat(history.next()).isEqualTo(new Step.CallModel(1));
    String interrupted = dev.corral.common.IdKind.EVENT.next();
    history.add(EventsFactory.spanStart(interrupted, "claude-test"));
    history.add(Event.newBuilder().setUserInterrupt(UserInterrupt.getDefaultInstance()).build());
    assertThat(history.nextWith(Set.of(), Set.of(), true)).isInstanceOf(Step.Interrupt.class);
    history.add(EventsFactory.failedSpanEnd(interrupted, "interrupted by the user"));
    history.add(
        EventsFactory.idle(Decision.stopReason(StopReasonType.STOP_REASON_TYPE_INTERRUPTED)));

    // When the next message's turn, which held the given-up message too, is refused
    history.add(Fixtures.userMessage("again"));
    assertThat(history.next()).isEqualTo(new Step.CallModel(1));
    history.refusedTurn(new ModelResponse.Text("No"));

    // Then the given-up message goes with it (kept, it would have every later turn refused),
    // and the answered turn stays
    assertThat(texts(history.state.context())).containsExactly("first", "answer");
  }

  @Test
  void aRefusedTurnTakesTheCallOfAResultInItAlongSoThatNoResultLosesItsCall() {
    // Given a call that waited for the client across an idle, answered after a new message
    history.add(Fixtures.userMessage("first"));
    String call = history.modelTurn(new ModelResponse.ToolUse("toolu_l", "lookup", "{}"));
    history.add(
        EventsFactory.idle(
            dev.corral.proto.v1.StopReason.newBuilder()
                .setType(StopReasonType.STOP_REASON_TYPE_REQUIRES_ACTION)
                .addEventIds(call)
                .build()));
    history.add(Fixtures.userMessage("the trigger"));
    history.add(customResult(call));

    // When the reply to both is refused
    history.refusedTurn(new ModelResponse.Text("No"));

    // Then the context keeps no half of the call: the whole turn goes, back to the input that
    // started it (a wait for the client pauses a turn; a thinking block before the call would
    // otherwise end an assistant message)
    assertThat(texts(history.state.context())).isEmpty();
  }

  @Test
  void aMessageSentWhileTheRefusedCallRanStaysAndIsAnsweredNext() {
    history.add(Fixtures.userMessage("the trigger"));
    history.add(EventsFactory.running());
    String span = dev.corral.common.IdKind.EVENT.next();
    history.add(EventsFactory.spanStart(span, "claude-test"));
    history.add(Fixtures.userMessage("sent meanwhile"));
    history.add(
        EventsFactory.block(
            "sevt_refused00000000000000000", new ModelResponse.Text("I"), AGENT, List.of()));
    history.add(
        EventsFactory.spanEnd(
            span,
            new ModelResponse(
                "m",
                List.of(new ModelResponse.Text("I")),
                SessionState.REFUSAL,
                ModelUsage.getDefaultInstance())));

    assertThat(history.next()).isEqualTo(new Step.CallModel(1));
    assertThat(texts(history.state.context())).containsExactly("sent meanwhile");
  }

  private static Event customResult(String call) {
    return Event.newBuilder()
        .setUserCustomToolResult(
            dev.corral.proto.v1.UserCustomToolResult.newBuilder()
                .setCustomToolUseId(call)
                .addContent(
                    dev.corral.proto.v1.ContentBlock.newBuilder()
                        .setText(dev.corral.proto.v1.TextBlock.newBuilder().setText("result"))))
        .build();
  }

  /** The text of each user or agent message of {@code events}; a tool event as its type. */
  private static List<String> texts(List<Event> events) {
    return events.stream()
        .map(
            event ->
                event.hasUserMessage()
                    ? Fixtures.text(event)
                    : event.hasAgentMessage()
                        ? event.getAgentMessage().getContent(0).getText().getText()
                        : event.getPayloadCase().name())
        .toList();
  }

  @Test
  void replayingTheSameHistoryGivesTheSameState() {
    history.add(Fixtures.userMessage("go"));
    history.modelTurn(new ModelResponse.ToolUse("toolu_w", "write", "{}"));
    History replayed = new History(history.state.session());
    history.events.forEach(replayed::fold);

    assertThat(replayed.next()).isEqualTo(history.next());
    assertThat(replayed.state.lastSeq()).isEqualTo(history.state.lastSeq());
    assertThat(replayed.state.unansweredCalls()).isEqualTo(history.state.unansweredCalls());
  }

  /** A history whose session may make one model request. */
  private static History oneModelRequest() {
    return new History(
        Session.newBuilder()
            .setId("sesn_x")
            .setAgent(AGENT)
            .setBudget(SessionBudget.newBuilder().setMaxModelRequests(1))
            .build());
  }

  /** A log being written, folded as it grows. */
  private static final class History {
    private final SessionState state;
    private final List<Event> events = new ArrayList<>();

    History(Session session) {
      state = new SessionState(session);
    }

    void add(Event payload) {
      add(NewEvent.of(payload));
    }

    void add(NewEvent event) {
      Event stored =
          event.payload().toBuilder()
              .setId(event.id())
              .setType(event.type().wireName())
              .setSeq(events.size() + 1L)
              .build();
      events.add(stored);
      state.apply(stored);
    }

    void fold(Event event) {
      state.apply(event);
    }

    List<Event> events() {
      return events;
    }

    /** A successful model turn that answered {@code blocks}; returns the ids of their events. */
    List<String> modelTurn(ModelResponse.Block... blocks) {
      return modelTurn(List.of(), blocks);
    }

    List<String> modelTurn(
        List<dev.corral.tool.OfferedTools.Tool> offered, ModelResponse.Block... blocks) {
      return modelTurn(offered, "tool_use", blocks);
    }

    /** A model turn whose reply the API's safety classifiers stopped, as the harness logs it. */
    void refusedTurn(ModelResponse.Block... blocks) {
      modelTurn(List.of(), SessionState.REFUSAL, blocks);
    }

    List<String> modelTurn(
        List<dev.corral.tool.OfferedTools.Tool> offered,
        String stopReason,
        ModelResponse.Block... blocks) {
      if (state.status() != dev.corral.proto.v1.SessionStatus.SESSION_STATUS_RUNNING) {
        add(EventsFactory.running());
      }
      String span = dev.corral.common.IdKind.EVENT.next();
      add(EventsFactory.spanStart(span, "claude-test"));
      List<String> ids = new ArrayList<>();
      for (ModelResponse.Block block : blocks) {
        NewEvent event =
            EventsFactory.block(dev.corral.common.IdKind.EVENT.next(), block, AGENT, offered);
        ids.add(event.id());
        add(event);
      }
      add(
          EventsFactory.spanEnd(
              span,
              new ModelResponse(
                  "m", List.of(blocks), stopReason, ModelUsage.getDefaultInstance())));
      return ids;
    }

    /** The text reply of the call of span {@code span}, then its span's successful end. */
    void replyEnds(String span, String text) {
      add(
          EventsFactory.block(
              dev.corral.common.IdKind.EVENT.next(),
              new ModelResponse.Text(text),
              AGENT,
              List.of()));
      add(
          EventsFactory.spanEnd(
              span,
              new ModelResponse(
                  "m",
                  List.of(new ModelResponse.Text(text)),
                  "end_turn",
                  ModelUsage.getDefaultInstance())));
    }

    String modelTurn(ModelResponse.Block block) {
      return modelTurn(new ModelResponse.Block[] {block}).get(0);
    }

    Step next() {
      return nextWith(Set.of(), Set.of(), false);
    }

    Step nextWith(Set<String> inherited, Set<String> toolsInFlight, boolean modelInFlight) {
      return Decision.next(state, inherited, toolsInFlight, modelInFlight, 3);
    }
  }
}
