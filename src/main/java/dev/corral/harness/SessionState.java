package dev.corral.harness;

import dev.corral.proto.v1.ConfirmationResult;
import dev.corral.proto.v1.ContentBlock;
import dev.corral.proto.v1.Event;
import dev.corral.proto.v1.RetryStatus;
import dev.corral.proto.v1.Session;
import dev.corral.proto.v1.SessionBudget;
import dev.corral.proto.v1.SessionStatus;
import dev.corral.proto.v1.StopReason;
import dev.corral.proto.v1.StopReasonType;
import dev.corral.proto.v1.TextBlock;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * A session as the harness sees it: the fold of its events, in seq order. Folding the same events
 * from scratch always gives the same state, which is what lets any harness on any replica pick a
 * session up. Events at or below {@link #lastSeq()} are ignored, so replays are harmless.
 */
final class SessionState {

  private Session session;
  private long lastSeq;
  private SessionStatus status = SessionStatus.SESSION_STATUS_IDLE;
  private long statusSeq;
  private StopReason lastStopReason = StopReason.getDefaultInstance();
  private final List<Event> conversation = new ArrayList<>();

  /** Messages that arrived while a model call ran: they follow its reply, whenever it comes. */
  private final List<Event> arrivedDuringCall = new ArrayList<>();

  private final Map<String, ToolCallState> toolCalls = new LinkedHashMap<>();
  private String openSpanId;
  private long openSpanSeq;

  /** The last user message the open (or last) model call holds. */
  private long callInputUpTo;

  /** The seq of the last span end, if that call failed (0 otherwise). */
  private long failedCallEndSeq;

  private boolean openSpanCompacts;

  /** The latest summary of older history, or null. */
  private Compaction compaction;

  /** What the last turn's call reported as its context (input and cache tokens). */
  private long lastContextTokens;

  /** User messages up to this seq were seen by a model call that succeeded, or were abandoned. */
  private long messagesAnsweredUpTo;

  /** Tool results up to this seq were seen by a model call that succeeded, or were abandoned. */
  private long resultsAnsweredUpTo;

  private long lastResultSeq;

  /** The seq of the input that started the current turn (the first user message after an idle). */
  private long turnStartSeq;

  /**
   * The first seq of input that an interrupted or failed turn gave up on since the last answered
   * call (0: none). It stays in the history, unanswered; a refusal of the next call forgets it too.
   */
  private long abandonedInputFrom;

  private boolean turnOpen;

  /** The last call of a turn answered with a refusal (the Messages API's stop_reason). */
  private boolean replyRefused;

  /**
   * The API refused the last call for what its messages held and the turn gave up on it: the seq of
   * that call's span start, else 0.
   */
  private long refusedCallSeq;

  /** The refused call was a compaction (whose request holds no input newer than history). */
  private boolean refusedCallCompacted;

  /** The refusal names an image, or what one is made of. */
  private boolean refusedForImages;

  private static final java.util.regex.Pattern ABOUT_IMAGES =
      java.util.regex.Pattern.compile(
          "(?i)\\bimages?\\b|\\bmedia[ _]type\\b|\\bbase64\\b|unable to download"
              + "|\\.source\\b|could not process");

  /** The last call that ended was a compaction. */
  private boolean lastCallCompacted;

  /** The span end of the last turn call the API answered: it took everything before its start. */
  private long lastAnsweredCallEndSeq;

  /**
   * The span start of that call: messages after it came during the call, which did not see them.
   */
  private long lastAnsweredCallStartSeq;

  private com.google.protobuf.Timestamp lastUserMessageAt;
  private long lastUserMessageSeq;
  private long lastInterruptSeq;

  /** The last interrupt came while there was work to stop (see {@link #interruptCaughtWork()}). */
  private boolean interruptCaughtWork;

  /**
   * Compaction calls that answered no summary since the last compaction (see {@link
   * #blankSummaries()}).
   */
  private int blankSummaries;

  private int failuresSinceInput;
  private int modelRequests;
  private long tokens;

  /** The state before any event, for {@code session} (agent snapshot, budget). */
  SessionState(Session session) {
    this.session = session;
  }

  /**
   * Bytes of user messages that no model call has seen yet which the state holds whole. A session
   * whose turns cannot run (its budget reached, or waiting on the client) takes messages without
   * end; past this, each is folded as a short notice, so that neither the state nor a request grows
   * with them. It is far beyond any model's context window.
   */
  static final int MAX_UNANSWERED_INPUT_BYTES = 4 * 1024 * 1024;

  /** The seqs and sizes of the messages counted against {@link #MAX_UNANSWERED_INPUT_BYTES}. */
  private final java.util.ArrayDeque<long[]> unansweredInput = new java.util.ArrayDeque<>();

  private long unansweredInputBytes;

  /** The seq of the first user message no call has answered (there is one). */
  private long firstUnansweredMessageSeq() {
    for (long[] message : unansweredInput) {
      if (message[0] > messagesAnsweredUpTo) {
        return message[0];
      }
    }
    return lastUserMessageSeq;
  }

  /** {@code message} with a notice in place of its content, which no model call will read. */
  private static Event withoutContent(Event message) {
    return withNotice(message, "[A message sent after the session's budget was spent.]");
  }

  /** {@code message} with {@code notice} as its only content. */
  private static Event withNotice(Event message, String notice) {
    return message.toBuilder()
        .setUserMessage(
            message.getUserMessage().toBuilder()
                .clearContent()
                .addContent(
                    ContentBlock.newBuilder().setText(TextBlock.newBuilder().setText(notice))))
        .build();
  }

  /** {@code message} itself, or a notice in its place when it would pass the budget. */
  private Event withinInputBudget(Event message) {
    while (!unansweredInput.isEmpty() && unansweredInput.peekFirst()[0] <= messagesAnsweredUpTo) {
      unansweredInputBytes -= unansweredInput.pollFirst()[1];
    }
    Event kept = message;
    long size = message.getSerializedSize();
    if (unansweredInputBytes + size > MAX_UNANSWERED_INPUT_BYTES) {
      kept =
          withNotice(
              message,
              "[A message of "
                  + size
                  + " bytes is not shown: the messages waiting for an answer passed "
                  + MAX_UNANSWERED_INPUT_BYTES
                  + " bytes. Ask the user to send it again.]");
      size = kept.getSerializedSize();
    }
    unansweredInput.addLast(new long[] {message.getSeq(), size});
    unansweredInputBytes += size;
    return kept;
  }

  /** Folds one event; events at or below the last folded seq are ignored. */
  SessionState apply(Event event) {
    if (event.getSeq() <= lastSeq) {
      return this;
    }
    if (event.getSeq() != lastSeq + 1) {
      throw new IllegalStateException(
          "event " + event.getSeq() + " of " + session.getId() + " folded after " + lastSeq);
    }
    lastSeq = event.getSeq();
    switch (event.getPayloadCase()) {
      case USER_MESSAGE -> {
        // Once the budget is spent no model call will read it (a session's budget never grows):
        // its content is not held, or a client could grow the state without bound, each message
        // answered by an idle that needs no model call.
        (openSpanId != null ? arrivedDuringCall : conversation)
            .add(budgetReached() ? withoutContent(event) : withinInputBudget(event));
        if (!turnOpen) {
          turnOpen = true;
          turnStartSeq = event.getSeq();
        }
        lastUserMessageAt = event.getProcessedAt();
        lastUserMessageSeq = event.getSeq();
        failuresSinceInput = 0;
      }
      case USER_INTERRUPT -> {
        lastInterruptSeq = event.getSeq();
        // (whatever is answered after it, the work it came to stop is stopped: a custom call's
        // result sent after the interrupt does not carry the turn on)
        interruptCaughtWork =
            hasUnansweredInput()
                || status == SessionStatus.SESSION_STATUS_RUNNING
                || openSpanId != null
                || !unansweredCalls().isEmpty();
      }
      case USER_TOOL_CONFIRMATION -> {
        var confirmation = event.getUserToolConfirmation();
        toolCalls.computeIfPresent(
            confirmation.getToolUseId(),
            (id, call) -> call.confirmed(confirmation.getResult(), confirmation.getDenyMessage()));
      }
      case USER_CUSTOM_TOOL_RESULT, AGENT_TOOL_RESULT, AGENT_MCP_TOOL_RESULT ->
          answer(event, answeredCall(event));
      case AGENT_MESSAGE, AGENT_THINKING -> conversation.add(event);
      case AGENT_TOOL_USE -> {
        conversation.add(event);
        var use = event.getAgentToolUse();
        toolCalls.put(
            event.getId(),
            new ToolCallState(
                event.getId(),
                event.getSeq(),
                use.getCallId(),
                use.getName(),
                use.getInputJson(),
                ToolCallState.Kind.BUILT_IN,
                "",
                dev.corral.tool.BuiltInTool.named(use.getName())
                    .map(dev.corral.tool.BuiltInTool::readOnly)
                    .orElse(false),
                use.getEvaluatedPermission(),
                ConfirmationResult.CONFIRMATION_RESULT_UNSPECIFIED,
                "",
                false));
      }
      case AGENT_MCP_TOOL_USE -> {
        conversation.add(event);
        var use = event.getAgentMcpToolUse();
        toolCalls.put(
            event.getId(),
            new ToolCallState(
                event.getId(),
                event.getSeq(),
                use.getCallId(),
                use.getName(),
                use.getInputJson(),
                ToolCallState.Kind.MCP,
                use.getMcpServerName(),
                use.getReadOnly(),
                use.getEvaluatedPermission(),
                ConfirmationResult.CONFIRMATION_RESULT_UNSPECIFIED,
                "",
                false));
      }
      case AGENT_CUSTOM_TOOL_USE -> {
        conversation.add(event);
        var use = event.getAgentCustomToolUse();
        toolCalls.put(
            event.getId(),
            new ToolCallState(
                event.getId(),
                event.getSeq(),
                use.getCallId(),
                use.getName(),
                use.getInputJson(),
                ToolCallState.custom(use.getInputJson()),
                "",
                false,
                dev.corral.proto.v1.EvaluatedPermission.EVALUATED_PERMISSION_ALLOW,
                ConfirmationResult.CONFIRMATION_RESULT_UNSPECIFIED,
                "",
                false));
      }
      case SPAN_MODEL_REQUEST_START -> {
        openSpanId = event.getId();
        openSpanSeq = event.getSeq();
        callInputUpTo = lastUserMessageSeq;
        openSpanCompacts = COMPACTION.equals(event.getSpanModelRequestStart().getPurpose());
        modelRequests++;
      }
      case AGENT_CONTEXT_COMPACTED -> {
        blankSummaries = 0;
        var compacted = event.getAgentContextCompacted();
        compaction =
            new Compaction(compacted.getFromSeq(), compacted.getUpToSeq(), compacted.getSummary());
        lastContextTokens = 0;
        // What the summary stands for is never sent again: a state holds the context, not the
        // whole log (a long session's fold no longer grows with every event it ever had).
        conversation.removeIf(folded -> folded.getSeq() <= compacted.getUpToSeq());
        toolCalls
            .values()
            .removeIf(call -> call.answered() && call.seq() <= compacted.getUpToSeq());
      }
      case SPAN_MODEL_REQUEST_END -> {
        var end = event.getSpanModelRequestEnd();
        if (openSpanId == null
            || !end.getModelRequestStartId().isEmpty()
                && !end.getModelRequestStartId().equals(openSpanId)) {
          // The end of no call under way (one a writer with the lease made up): it answers no
          // input and refuses no turn, which would forget a turn whose calls still run.
          break;
        }
        var usage = end.getModelUsage();
        // Every token the model read or wrote: with prompt caching almost all of a call's input
        // is cache reads or writes, which input_tokens leaves out.
        tokens +=
            usage.getInputTokens()
                + usage.getCacheReadInputTokens()
                + usage.getCacheCreationInputTokens()
                + usage.getOutputTokens();
        failedCallEndSeq = end.getIsError() ? event.getSeq() : 0;
        boolean turn = !openSpanCompacts;
        boolean compacted = openSpanCompacts;
        openSpanCompacts = false;
        if (compacted
            && end.getIsError()
            && ModelCalls.BLANK_SUMMARY.equals(end.getErrorMessage())) {
          blankSummaries++; // not an overload, an interrupt or a crash: those ask again anyway
        }
        lastCallCompacted = compacted;
        // A compaction answers nothing: the turn's input waits for the call after it.
        if (!end.getIsError() && turn) {
          lastContextTokens =
              usage.getInputTokens()
                  + usage.getCacheReadInputTokens()
                  + usage.getCacheCreationInputTokens();
          messagesAnsweredUpTo = openSpanSeq;
          resultsAnsweredUpTo = openSpanSeq;
          lastAnsweredCallEndSeq = event.getSeq();
          lastAnsweredCallStartSeq = openSpanSeq;
          failuresSinceInput = 0;
          long abandoned = abandonedInputFrom;
          abandonedInputFrom = 0;
          replyRefused = REFUSAL.equals(end.getStopReason());
          if (replyRefused) {
            forgetRefusedTurn(abandoned);
          }
        }
        openSpanId = null;
        // The call's reply (if any) was appended just before its end.
        conversation.addAll(arrivedDuringCall);
        arrivedDuringCall.clear();
      }
      case SESSION_ERROR -> {
        // Model failures count toward the retry limit, and so does a call whose harness died while
        // it ran (its close logs one); a call the user interrupted, or whose replica gave its
        // lease back, logs no session.error and does not.
        if (event.getSessionError().getErrorType().startsWith("model_")) {
          failuresSinceInput++;
        }
        if (event.getSessionError().getInputRefused()
            && event.getSessionError().getRetryStatus() == RetryStatus.RETRY_STATUS_EXHAUSTED) {
          refusedCallSeq = openSpanSeq;
          refusedCallCompacted = lastCallCompacted;
          refusedForImages = ABOUT_IMAGES.matcher(event.getSessionError().getMessage()).find();
        }
      }
      case SESSION_STATUS_RUNNING -> status(event, SessionStatus.SESSION_STATUS_RUNNING);
      case SESSION_STATUS_IDLE -> {
        status(event, SessionStatus.SESSION_STATUS_IDLE);
        lastStopReason = event.getSessionStatusIdle().getStopReason();
        // A wait for confirmations or custom tool results only pauses the turn: a message sent
        // meanwhile joins it rather than starting another (a refusal then forgets the whole turn,
        // not half of its reply).
        if (lastStopReason.getType() != StopReasonType.STOP_REASON_TYPE_REQUIRES_ACTION) {
          turnOpen = false;
        }
        if (abandonedInputFrom == 0
            && switch (lastStopReason.getType()) {
              case STOP_REASON_TYPE_INTERRUPTED,
                  STOP_REASON_TYPE_RETRIES_EXHAUSTED,
                  STOP_REASON_TYPE_BUDGET_REACHED ->
                  true;
              default -> false;
            }) {
          // the turn's input that no call answered stays in the history: a refusal of a later
          // turn may be about it (a message sent during the last answered call is such input,
          // though its seq is below that call's end)
          abandonedInputFrom = Math.max(turnStartSeq, lastAnsweredCallEndSeq + 1);
          if (lastUserMessageSeq > messagesAnsweredUpTo) {
            abandonedInputFrom = Math.min(abandonedInputFrom, firstUnansweredMessageSeq());
          }
        }
        switch (lastStopReason.getType()) {
          // The turn is given up: its input stays in the history, but waits for new input.
          // (messages sent after the interrupt start the next turn)
          case STOP_REASON_TYPE_INTERRUPTED -> {
            messagesAnsweredUpTo = Math.max(messagesAnsweredUpTo, lastInterruptSeq);
            resultsAnsweredUpTo = Math.max(resultsAnsweredUpTo, lastResultSeq);
          }
          case STOP_REASON_TYPE_RETRIES_EXHAUSTED, STOP_REASON_TYPE_BUDGET_REACHED -> {
            // A message that came while the failed call ran was not in it: it waits for a turn
            // of its own. That is when this idle ends the failed call itself (its span end, the
            // error and this idle are appended together); any other idle gives up on all input.
            boolean endsFailedCall = failedCallEndSeq > 0 && event.getSeq() == failedCallEndSeq + 2;
            messagesAnsweredUpTo =
                Math.max(messagesAnsweredUpTo, endsFailedCall ? callInputUpTo : lastUserMessageSeq);
            if (lastUserMessageSeq > messagesAnsweredUpTo) {
              // its turn gets every try: the failed call's error came after it, but was not its
              failuresSinceInput = 0;
            }
            resultsAnsweredUpTo = Math.max(resultsAnsweredUpTo, lastResultSeq);
            // Input the API refused outright would be refused in every later request: what the
            // refused call sent beyond what an answered call already took goes, and, when the
            // refusal names an image, so does every image (an image URL that has since expired,
            // say, is refused in whichever turn it was first sent).
            if (refusedCallSeq > 0) {
              if (!refusedCallCompacted) {
                forgetRefusedInput();
              }
              if (refusedForImages) {
                withholdImages();
              }
            }
          }
          default -> {}
        }
        refusedCallSeq = 0;
        if (!turnOpen && lastUserMessageSeq > messagesAnsweredUpTo) {
          // Messages this idle left for a turn of their own (sent during an interrupted or failed
          // call) start that turn: a refusal in it forgets from the first of them, not from the
          // input of the turn that ended here.
          turnOpen = true;
          turnStartSeq = firstUnansweredMessageSeq();
        }
      }
      case SESSION_STATUS_RESCHEDULED -> status(event, SessionStatus.SESSION_STATUS_RESCHEDULING);
      case SESSION_STATUS_TERMINATED -> status(event, SessionStatus.SESSION_STATUS_TERMINATED);
      default -> {}
    }
    return this;
  }

  private void status(Event event, SessionStatus newStatus) {
    status = newStatus;
    statusSeq = event.getSeq();
  }

  /**
   * Takes the refused turn out of the model's context: the Messages API keeps refusing while the
   * turn that triggered a refusal is in the history, so the turn goes, from the input that started
   * it (or input given up before it that no call answered since) to the partial reply (and, so that
   * no tool result loses its call, back to the earliest call that a result in it answers). The
   * events stay in the log; messages that arrived during the refused call stay in the context and
   * start the next call. History already folded into a compaction summary stays in the summary.
   */
  private void forgetRefusedTurn(long abandonedInputFrom) {
    forgetFrom(abandonedInputFrom > 0 ? Math.min(turnStartSeq, abandonedInputFrom) : turnStartSeq);
  }

  /**
   * Takes out of the model's context what the refused call sent that no answered call had taken:
   * the events after the last answered call (the input of this turn and of turns given up before
   * it), and back to the calls whose results go. Input that arrived during the refused call was not
   * in it, and stays.
   */
  private void forgetRefusedInput() {
    List<Event> arrivedAfter = new ArrayList<>();
    while (!conversation.isEmpty()
        && conversation.get(conversation.size() - 1).getSeq() > refusedCallSeq) {
      arrivedAfter.add(0, conversation.remove(conversation.size() - 1));
    }
    forgetFrom(lastAnsweredCallEndSeq + 1);
    // messages that came during the answered call follow its reply, but that call never saw them
    conversation.removeIf(
        event -> event.hasUserMessage() && event.getSeq() > lastAnsweredCallStartSeq);
    conversation.addAll(arrivedAfter);
  }

  /**
   * Forgets the events from {@code firstSeq} on, and back to the calls of the results that go. The
   * context is not always in seq order: a message that came during a call follows that call's
   * reply. So the cut stops at the event {@code firstSeq} itself when the context holds it: a reply
   * before it answered an earlier turn, though its seq is higher.
   */
  private void forgetFrom(long firstSeq) {
    // back from the end, then on while a result in what goes still waits for its call
    Set<String> callsOfResults = new HashSet<>();
    boolean tookFirst = false;
    int cut = conversation.size();
    while (cut > 0) {
      Event event = conversation.get(cut - 1);
      if ((tookFirst || event.getSeq() < firstSeq) && callsOfResults.isEmpty()) {
        break;
      }
      callsOfResults.remove(event.getId());
      String call = answeredCall(event);
      if (call != null) {
        callsOfResults.add(call);
      }
      tookFirst |= event.getSeq() == firstSeq;
      cut--;
    }
    conversation.subList(cut, conversation.size()).clear();
  }

  /** Note that stands in the model's context for an image taken out after a refused request. */
  static final String WITHHELD_IMAGE =
      "[corral: an image was here; the model API refused a request that held it, so it is no"
          + " longer sent. It stays in the session's log.]";

  /** Every image of the context as a {@link #WITHHELD_IMAGE} note. */
  private void withholdImages() {
    conversation.replaceAll(SessionState::withoutImages);
  }

  private static Event withoutImages(Event event) {
    Event.Builder builder = event.toBuilder();
    switch (event.getPayloadCase()) {
      case USER_MESSAGE -> notes(builder.getUserMessageBuilder().getContentBuilderList());
      case AGENT_TOOL_RESULT -> notes(builder.getAgentToolResultBuilder().getContentBuilderList());
      case AGENT_MCP_TOOL_RESULT ->
          notes(builder.getAgentMcpToolResultBuilder().getContentBuilderList());
      case USER_CUSTOM_TOOL_RESULT ->
          notes(builder.getUserCustomToolResultBuilder().getContentBuilderList());
      default -> {
        return event;
      }
    }
    return builder.build();
  }

  private static void notes(List<ContentBlock.Builder> blocks) {
    for (ContentBlock.Builder block : blocks) {
      if (block.hasImage()) {
        block.setText(TextBlock.newBuilder().setText(WITHHELD_IMAGE));
      }
    }
  }

  /** The id of the tool use event that {@code event} answers, or null if it answers none. */
  static String answeredCall(Event event) {
    return switch (event.getPayloadCase()) {
      case USER_CUSTOM_TOOL_RESULT -> event.getUserCustomToolResult().getCustomToolUseId();
      case AGENT_TOOL_RESULT -> event.getAgentToolResult().getToolUseId();
      case AGENT_MCP_TOOL_RESULT -> event.getAgentMcpToolResult().getMcpToolUseId();
      default -> null;
    };
  }

  private void answer(Event event, String toolUseId) {
    conversation.add(event);
    if (!toolCalls.containsKey(toolUseId)) {
      // A result for no call this session made (emitted by a client that read a lease epoch):
      // the projection leaves it out, and it is no input for the model to answer.
      return;
    }
    toolCalls.computeIfPresent(toolUseId, (id, call) -> call.answer());
    lastResultSeq = event.getSeq();
  }

  Session session() {
    return session;
  }

  /**
   * Takes the session's record as read now (its events are folded, not read from it); a kept state
   * is reused by the session's next harness run.
   */
  SessionState refreshed(Session now) {
    if (!now.getId().equals(session.getId())) {
      throw new IllegalArgumentException("state of " + session.getId() + " for " + now.getId());
    }
    this.session = now;
    return this;
  }

  String sessionId() {
    return session.getId();
  }

  long lastSeq() {
    return lastSeq;
  }

  SessionStatus status() {
    return status;
  }

  long statusSeq() {
    return statusSeq;
  }

  StopReason lastStopReason() {
    return lastStopReason;
  }

  /** The Messages API's stop reason of a reply its safety classifiers refused. */
  static final String REFUSAL = "refusal";

  /** The last call of a turn answered with a refusal. */
  boolean replyRefused() {
    return replyRefused;
  }

  /** The purpose of a span whose call summarises older history. */
  static final String COMPACTION = "compaction";

  /** A summary of the events from {@code fromSeq} to {@code upToSeq}. */
  record Compaction(long fromSeq, long upToSeq, String summary) {}

  /** When the latest user message was appended (database time), or null. */
  com.google.protobuf.Timestamp lastUserMessageAt() {
    return lastUserMessageAt;
  }

  /** The latest compaction, or null if the history was never compacted. */
  Compaction compaction() {
    return compaction;
  }

  /** The input and cache tokens the last turn's call reported (0 after a compaction). */
  long lastContextTokens() {
    return lastContextTokens;
  }

  /**
   * The events the model sees after the latest summary (all of {@link #conversation()} without
   * one), in its order.
   */
  List<Event> context() {
    List<Event> all = conversation();
    if (compaction == null) {
      return all;
    }
    List<Event> after = new ArrayList<>();
    for (Event event : all) {
      if (event.getSeq() > compaction.upToSeq()) {
        after.add(event);
      }
    }
    return after;
  }

  /**
   * The events the model's context is built from, in the order the model sees them: the log's,
   * except that a message that arrived while a model call ran follows that call's reply.
   */
  List<Event> conversation() {
    if (arrivedDuringCall.isEmpty()) {
      return Collections.unmodifiableList(conversation);
    }
    List<Event> all = new ArrayList<>(conversation);
    all.addAll(arrivedDuringCall);
    return Collections.unmodifiableList(all);
  }

  List<ToolCallState> unansweredCalls() {
    return toolCalls.values().stream().filter(call -> !call.answered()).toList();
  }

  /** A model call whose start is logged but whose end is not. */
  String openSpanId() {
    return openSpanId;
  }

  /** Input (a user message or a tool result) that no successful model call has seen yet. */
  boolean hasUnansweredInput() {
    return lastUserMessageSeq > messagesAnsweredUpTo || lastResultSeq > resultsAnsweredUpTo;
  }

  /** An interrupt that no status change has handled yet. */
  boolean interruptPending() {
    return lastInterruptSeq > statusSeq;
  }

  /**
   * The pending interrupt came while there was work to stop: input waiting for its turn (a message
   * and an interrupt sent together to an idle session, or an interrupt that came before the turn's
   * status_running did), a running turn, or calls waiting for their answers. It stops that work
   * even if the calls were answered after it.
   */
  boolean interruptCaughtWork() {
    return interruptPending() && interruptCaughtWork;
  }

  /**
   * Compaction calls that answered no summary since the last compaction, in this turn or earlier
   * ones: a summary the model will not write is asked for once more, not at every turn.
   */
  int blankSummaries() {
    return blankSummaries;
  }

  int failuresSinceInput() {
    return failuresSinceInput;
  }

  int modelRequests() {
    return modelRequests;
  }

  long tokens() {
    return tokens;
  }

  /** Whether the session's budget of tokens or model requests is spent: no model call comes. */
  boolean budgetReached() {
    SessionBudget budget = session.getBudget();
    return (budget.getMaxTokens() > 0 && tokens >= budget.getMaxTokens())
        || (budget.getMaxModelRequests() > 0 && modelRequests >= budget.getMaxModelRequests());
  }

  long lastUserMessageSeq() {
    return lastUserMessageSeq;
  }
}
