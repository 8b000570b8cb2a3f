package dev.corral.harness;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.corral.common.IdKind;
import dev.corral.common.LogFields;
import dev.corral.model.AnthropicMessages;
import dev.corral.model.ModelException;
import dev.corral.model.ModelResponse;
import dev.corral.model.StreamListener;
import dev.corral.proto.v1.Event;
import dev.corral.proto.v1.EventDelta;
import dev.corral.proto.v1.SessionStatus;
import dev.corral.proto.v1.StopReasonType;
import dev.corral.session.LiveDeltas;
import dev.corral.session.NewEvent;
import dev.corral.tool.OfferedTools;
import dev.corral.tool.ToolRouter;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Timer;
import io.opentelemetry.api.trace.Span;
import io.opentelemetry.api.trace.SpanKind;
import io.opentelemetry.api.trace.StatusCode;
import io.opentelemetry.context.Scope;
import io.smallrye.mutiny.Uni;
import io.smallrye.mutiny.subscription.Cancellable;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Executor;
import java.util.concurrent.ThreadLocalRandom;
import java.util.function.Supplier;
import org.jboss.logging.Logger;

/**
 * The model call a harness run has going, with its retries: the backoff before a retry, the span
 * start appended while the request streams, the text deltas relayed to live subscribers, and the
 * answer (or the failure, with a retry status) appended at its end. At most one call at a time.
 */
final class ModelCalls {

  /**
   * Why a compaction call that answered no summary failed, as its span's end records it: the
   * summary is asked for once more, and only such answers count toward that once.
   */
  static final String BLANK_SUMMARY = "the compaction call answered no summary";

  private static final Logger LOGGER = Logger.getLogger(ModelCalls.class);

  private final String sessionId;
  private final AnthropicMessages model;
  private final LiveDeltas deltas;
  private final Executor context;
  private final AppendQueue appends;
  private final MeterRegistry metrics;
  private final ModelLabels labels;
  private final Supplier<SessionState> state;
  private final ToolRouter tools;
  private final TurnTrace trace;
  private Call current;
  private Duration retryAfter;
  private boolean stopped;

  /**
   * How far the API's count of a request's tokens ran above corral's estimate, learnt from a
   * request it refused as too long (text that is not English or code has fewer bytes per token):
   * every later estimate of this run is scaled by it, so that the next attempt compacts or cuts.
   */
  private double estimateScale = 1;

  /** corral's estimate of the last request sent, unscaled. */
  private long lastEstimate;

  ModelCalls(
      String sessionId,
      AnthropicMessages model,
      LiveDeltas deltas,
      Executor context,
      AppendQueue appends,
      Supplier<SessionState> state,
      MeterRegistry metrics,
      ToolRouter tools,
      TurnTrace trace,
      ModelLabels labels) {
    this.trace = trace;
    this.labels = labels;
    this.metrics = metrics;
    this.tools = tools;
    this.sessionId = sessionId;
    this.model = model;
    this.deltas = deltas;
    this.context = context;
    this.appends = appends;
    this.state = state;
  }

  /**
   * Whether a call is going: from its backoff until the log holds the span it ended (a call whose
   * answer was appended is over once the open span in the log is no longer its own).
   */
  boolean active() {
    if (current != null && current.finished && !current.spanId.equals(state.get().openSpanId())) {
      current = null;
    }
    return current != null;
  }

  /**
   * Starts attempt {@code attempt} (1 for the first), after a backoff when it is a retry, unless
   * {@code atOnce}: the attempt before it was cut by its replica's end, which says nothing of the
   * API that a backoff would spare. An agent with MCP servers first learns their tools (from the
   * session's cache when it is fresh).
   */
  void call(int attempt, boolean atOnce) {
    Call call = new Call(IdKind.EVENT.next());
    current = call;
    SessionState now = state.get();
    if (now.session().getAgent().getMcpServersCount() == 0) {
      prepare(call, attempt, atOnce, OfferedTools.NONE);
      return;
    }
    call.offering =
        tools
            .offered(now.session())
            .onFailure()
            .recoverWithItem(OfferedTools.NONE)
            .subscribe()
            .with(offered -> context.execute(() -> prepare(call, attempt, atOnce, offered)));
  }

  private void prepare(Call call, int attempt, boolean atOnce, OfferedTools offered) {
    if (stopped || call.cancelled) {
      return;
    }
    call.offered = offered.tools();
    call.notices = offered.notices();
    SessionState now = state.get();
    byte[] request = body(call, now);
    Duration delay = attempt == 1 || atOnce ? Duration.ZERO : backoff(attempt - 1);
    if (attempt > 1) {
      metrics
          .counter(
              "corral.model.retries", "model", labels.model(now.session().getAgent().getModel()))
          .increment();
    }
    byte[] body = request;
    if (attempt == 1 && call.compaction == null && now.hasUnansweredInput()) {
      ttft(now);
    }
    if (delay.isZero()) {
      start(call, body);
      return;
    }
    call.delay =
        Uni.createFrom()
            .voidItem()
            .onItem()
            .delayIt()
            .by(delay)
            .subscribe()
            .with(ignored -> context.execute(() -> start(call, body)));
  }

  /**
   * The request for {@code now}: the conversation, or a compaction of its older part if it is too
   * large for the window. The span start that goes with it expects the log to be at {@code now}'s
   * last seq, so a request built from an older state is never sent as if it answered newer input.
   */
  private byte[] body(Call call, SessionState now) {
    call.builtAt = now.lastSeq();
    call.compaction = null;
    int maxTokens = model.config().maxTokens();
    int thinking = model.config().thinkingBudgetTokens();
    ObjectNode turn = Projection.request(now, call.offered, maxTokens, thinking);
    byte[] request = AnthropicMessages.serialize(turn);
    long window = model.config().contextWindowOf(now.session().getAgent().getModel());
    long limit = ContextBudget.limit(window, model.config().compactAt(), maxTokens);
    lastEstimate = ContextBudget.estimate(request.length, turn);
    long tokens = Math.max((long) (lastEstimate * estimateScale), now.lastContextTokens());
    if (tokens <= limit) {
      return tokens + maxTokens <= window ? request : estimated(turn, window, tokens);
    }
    // Too large for the window: the older history becomes a summary first.
    List<Event> context = now.context();
    long keep = (long) (window * ContextBudget.KEEP_SHARE / estimateScale);
    var cut = ContextBudget.cut(context, keep, thinking > 0);
    long unscaledLimit = (long) (limit / estimateScale);
    if (cut.isPresent()) {
      long from = now.compaction() != null ? now.compaction().fromSeq() : context.get(0).getSeq();
      long upTo =
          context.subList(0, cut.getAsInt()).stream().mapToLong(Event::getSeq).max().orElse(0);
      call.compaction =
          new Compacting(from, upTo, tokens, context.subList(cut.getAsInt(), context.size()));
      ObjectNode compaction =
          Projection.compactionRequest(now, call.offered, cut.getAsInt(), maxTokens, thinking);
      Projection.fit(compaction, context.subList(0, cut.getAsInt()), unscaledLimit);
      return estimated(compaction, window, 0);
    }
    // One turn alone is too large (its tool results, say): its largest results are cut shorter.
    // Whether or not they could be, what the prompt leaves of the window is all the reply may ask
    // for: a turn of messages alone has nothing to cut, and may still fit with a shorter reply.
    boolean shortened = Projection.fit(turn, context, unscaledLimit);
    return estimated(turn, window, shortened ? 0 : tokens);
  }

  /**
   * {@code request} serialized, its estimate kept as the last request's, with its {@code
   * max_tokens} lowered if need be to what its prompt leaves of the {@code window}: the API refuses
   * a prompt and {@code max_tokens} that together pass it (a compaction's request of a long
   * history, say, or one whose estimate fell short). {@code atLeast}: the prompt's tokens as known
   * otherwise (the last call's count), if more.
   */
  private byte[] estimated(ObjectNode request, long window, long atLeast) {
    byte[] body = AnthropicMessages.serialize(request);
    lastEstimate = ContextBudget.estimate(body.length, request);
    long prompt = Math.max(atLeast, (long) (lastEstimate * estimateScale));
    if (ContextBudget.leaveRoom(request, window, prompt)) {
      body = AnthropicMessages.serialize(request);
    }
    return body;
  }

  /** Learns from a request the API refused as too long how far corral's estimate was short. */
  private void learnFrom(ModelException error) {
    if (!error.promptTooLong() || lastEstimate <= 0) {
      return;
    }
    double seen = error.promptTokens().map(tokens -> 1.05 * tokens / lastEstimate).orElse(0.0);
    estimateScale = Math.min(MAX_ESTIMATE_SCALE, Math.max(estimateScale * 1.25, seen));
  }

  /** The most the estimate is scaled by: a token per byte. */
  private static final double MAX_ESTIMATE_SCALE = ContextBudget.BYTES_PER_TOKEN;

  /** Stops the call under way, if any; nothing it produced is appended. */
  void cancel() {
    if (current != null) {
      current.cancel();
    }
  }

  /** Cancels the call under way and starts no other. */
  void stop() {
    stopped = true;
    cancel();
  }

  private void start(Call call, byte[] request) {
    if (stopped || call.cancelled) {
      return;
    }
    SessionState now = state.get();
    if (now.lastSeq() != call.builtAt) {
      // the log moved while the call waited (a retry's backoff): a message that arrived meanwhile
      // must be in the request that its span start will count as answering it
      request = body(call, now);
    }
    List<NewEvent> events = new ArrayList<>();
    if (now.status() != SessionStatus.SESSION_STATUS_RUNNING) {
      events.add(EventsFactory.running());
    }
    // MCP servers that could not list their tools: the turn goes on without them.
    call.notices.forEach(notice -> events.add(NewEvent.of(notice)));
    String modelName = now.session().getAgent().getModel();
    call.span = trace.child("chat " + modelName, SpanKind.CLIENT);
    call.span.setAttribute(GenAi.SYSTEM, "anthropic");
    call.span.setAttribute(GenAi.OPERATION, "chat");
    call.span.setAttribute(GenAi.REQUEST_MODEL, modelName);
    call.span.setAttribute(GenAi.REQUEST_MAX_TOKENS, (long) model.config().maxTokens());
    call.span.setAttribute(GenAi.CORRAL_EVENT_ID, call.spanId);
    if (call.compaction != null) {
      call.span.setAttribute(GenAi.CORRAL_PURPOSE, SessionState.COMPACTION);
    }
    events.add(
        EventsFactory.spanStart(
            call.spanId,
            modelName,
            call.compaction != null ? SessionState.COMPACTION : "",
            TurnTrace.traceId(call.span)));
    // The request goes out while its span start commits: a model call has no side effect, and if
    // the append is refused (the lease is lost, or new input arrived) the call is cancelled. Its
    // answer is appended after the span start, since appends are made one at a time.
    appends.add(
        events,
        now.lastSeq(),
        appended -> {},
        () -> {
          call.cancel();
          if (current == call) {
            current = null;
          }
        });
    stream(call, request);
  }

  /** Counts a finished call: by model and outcome, its latency, its tokens, and retries. */
  private void measured(Call call, String outcome, dev.corral.proto.v1.ModelUsage usage) {
    call.traced(outcome, usage);
    String modelName = labels.model(state.get().session().getAgent().getModel());
    String purpose = call.compaction != null ? "compaction" : "turn";
    metrics
        .counter("corral.model.calls", "model", modelName, "outcome", outcome, "purpose", purpose)
        .increment();
    Timer.builder("corral.model.call")
        .description("Model calls, from the request to the end of the answer")
        .tag("model", modelName)
        .publishPercentileHistogram()
        .register(metrics)
        .record(System.nanoTime() - call.startedAt, java.util.concurrent.TimeUnit.NANOSECONDS);
    if (usage != null) {
      tokens(modelName, "input", usage.getInputTokens());
      tokens(modelName, "output", usage.getOutputTokens());
      tokens(modelName, "cache_read", usage.getCacheReadInputTokens());
      tokens(modelName, "cache_creation", usage.getCacheCreationInputTokens());
    }
  }

  /** From the user message's append (database time) to its turn's request leaving, at most. */
  private void ttft(SessionState now) {
    com.google.protobuf.Timestamp at = now.lastUserMessageAt();
    if (at == null) {
      return;
    }
    long nanos =
        java.time.Duration.between(
                java.time.Instant.ofEpochSecond(at.getSeconds(), at.getNanos()),
                java.time.Instant.now())
            .toNanos();
    Timer.builder("corral.ttft.overhead")
        .description("From a user message's append to the model request of its turn")
        .publishPercentileHistogram()
        .register(metrics)
        .record(Math.max(0, nanos), java.util.concurrent.TimeUnit.NANOSECONDS);
  }

  private void tokens(String modelName, String kind, long count) {
    metrics.counter("corral.model.tokens", "model", modelName, "kind", kind).increment(count);
  }

  private void stream(Call call, byte[] request) {
    call.startedAt = System.nanoTime();
    DeltaRelay relay = new DeltaRelay();
    // The HTTP request is made under the call's span, so its client span is the call's child.
    try (Scope ignored = call.span == null ? Scope.noop() : call.span.makeCurrent()) {
      call.stream =
          model.stream(request, call.compaction != null ? StreamListener.NONE : relay)
              .subscribe()
              .with(
                  response -> context.execute(() -> answered(call, relay, response)),
                  failure -> context.execute(() -> failed(call, failure)));
    }
  }

  private void answered(Call call, DeltaRelay relay, ModelResponse response) {
    if (stopped || call.cancelled) {
      return;
    }
    retryAfter = null;
    if (call.span != null) {
      call.span.setAttribute(GenAi.RESPONSE_ID, response.messageId());
      if (response.stopReason() != null) {
        call.span.setAttribute(GenAi.FINISH_REASONS, List.of(response.stopReason()));
      }
    }
    measured(call, "ok", response.usage());
    List<NewEvent> events = new ArrayList<>();
    var agent = state.get().session().getAgent();
    if (call.compaction != null) {
      compacted(call, response);
      return;
    }
    boolean refused = SessionState.REFUSAL.equals(response.stopReason());
    for (int i = 0; i < response.blocks().size(); i++) {
      ModelResponse.Block block = response.blocks().get(i);
      // A refused reply was stopped mid-way by the API's safety classifiers: what it said is
      // kept, but none of its tool calls (perhaps cut off in the middle of its input) runs.
      if (!(refused && block instanceof ModelResponse.ToolUse)) {
        events.add(EventsFactory.block(relay.idOf(i), block, agent, call.offered));
      }
    }
    events.add(EventsFactory.spanEnd(call.spanId, response));
    appends.addIfStillWanted(events, appended -> call.finished = true, () -> !call.cancelled);
  }

  /** Records the summary a compaction call answered, in place of the history it stands for. */
  private void compacted(Call call, ModelResponse response) {
    StringBuilder summary = new StringBuilder();
    for (ModelResponse.Block block : response.blocks()) {
      if (block instanceof ModelResponse.Text text) {
        summary.append(summary.length() == 0 ? "" : "\n\n").append(text.text());
      }
    }
    if (SessionState.REFUSAL.equals(response.stopReason())) {
      // The classifiers stopped the summary part-way; asking again with the same history would
      // be refused again, at every later turn. The history goes, with a note in its place (what
      // was said before the stop goes too: it may be what the classifiers stopped).
      summary.setLength(0);
      summary.append(Projection.SUMMARY_REFUSED);
    }
    if (dev.corral.common.InputRules.blank(summary.toString())) {
      if (state.get().blankSummaries() == 0) {
        // asked once more (the tokens of this answer still count toward the session's use)
        failed(
            call,
            new ModelException(200, "invalid_summary", BLANK_SUMMARY, true, null),
            response.usage());
        return;
      }
      // A history the model will not summarise would be sent again at every retry and every
      // later turn, each a full paid call: it goes, with a note in its place.
      summary.setLength(0);
      summary.append(Projection.SUMMARY_BLANK);
    }
    if (response.cutShort()) {
      // What the model would have said last (the state of the work, what remains) is missing;
      // the model must know that rather than take the summary for whole.
      summary.append("\n\n").append(Projection.SUMMARY_CUT_OFF);
    }
    Compacting compacting = call.compaction;
    long after =
        ContextBudget.estimate(
            Projection.request(
                state.get().session().getAgent(),
                call.offered,
                Projection.summaryMessage(compacting.upToSeq(), summary.toString()),
                compacting.kept(),
                model.config().maxTokens(),
                model.config().thinkingBudgetTokens()));
    List<NewEvent> events = new ArrayList<>();
    events.add(
        EventsFactory.compacted(
            compacting.fromSeq(),
            compacting.upToSeq(),
            summary.toString(),
            compacting.tokens(),
            after));
    events.add(EventsFactory.spanEnd(call.spanId, response));
    LogFields.session(sessionId)
        .seq(compacting.upToSeq())
        .log(
            () ->
                LOGGER.debugf(
                    "sessionId=%s compacted seq %d..%d: %d -> %d tokens",
                    sessionId,
                    compacting.fromSeq(),
                    compacting.upToSeq(),
                    compacting.tokens(),
                    after));
    appends.addIfStillWanted(events, appended -> call.finished = true, () -> !call.cancelled);
  }

  /** A compaction under way: the range it summarises and the events it keeps. */
  private record Compacting(long fromSeq, long upToSeq, long tokens, List<Event> kept) {}

  private void failed(Call call, Throwable failure) {
    failed(call, failure, null);
  }

  /**
   * @param usage what the call used, if an answer came (it counts toward the session's tokens)
   */
  private void failed(Call call, Throwable failure, dev.corral.proto.v1.ModelUsage usage) {
    if (stopped || call.cancelled) {
      return;
    }
    ModelException error =
        failure instanceof ModelException known
            ? known
            : new ModelException(
                0, "unknown_error", String.valueOf(failure.getMessage()), true, null);
    measured(call, ModelLabels.outcome(error.errorType()), null);
    learnFrom(error);
    int attempt = state.get().failuresSinceInput() + 1;
    boolean last = !error.retryable() || attempt > model.config().maxRetries();
    retryAfter = error.retryAfter().orElse(null);
    List<NewEvent> events = new ArrayList<>();
    events.add(EventsFactory.failedSpanEnd(call.spanId, error.getMessage(), usage));
    events.add(EventsFactory.sessionError(error, attempt, last));
    if (last) {
      events.add(
          EventsFactory.idle(
              Decision.stopReason(StopReasonType.STOP_REASON_TYPE_RETRIES_EXHAUSTED)));
    }
    LogFields.session(sessionId)
        .log(
            () ->
                LOGGER.debugf(
                    "sessionId=%s model call failed (%s), last=%s",
                    sessionId, error.errorType(), last));
    appends.addIfStillWanted(events, appended -> call.finished = true, () -> !call.cancelled);
  }

  private Duration backoff(int retry) {
    if (retryAfter != null) {
      // the server's word, within reason: not below zero, not past corral.model.retry-after-max
      long most = model.config().retryAfterMax().toMillis();
      return Duration.ofMillis(Math.max(0, Math.min(most, retryAfter.toMillis())));
    }
    long max = model.config().retryMaxBackoff().toMillis();
    long initial = model.config().retryInitialBackoff().toMillis();
    long exponential = Math.min(max, initial * (1L << Math.min(20, retry - 1)));
    double jitter = 0.5 + ThreadLocalRandom.current().nextDouble();
    return Duration.ofMillis((long) (exponential * jitter));
  }

  /** Forwards text deltas to live subscribers under the ids the finished blocks will get. */
  private final class DeltaRelay implements StreamListener {
    private final Map<Integer, String> ids = new HashMap<>();

    @Override
    public void blockStarted(int index, String type) {
      ids.put(index, IdKind.EVENT.next());
    }

    @Override
    public void textDelta(int index, String text) {
      deltas.publish(
          sessionId,
          EventDelta.newBuilder()
              .setEventId(idOf(index))
              .setType("agent.message")
              .setText(text)
              .build());
    }

    String idOf(int index) {
      return ids.computeIfAbsent(index, i -> IdKind.EVENT.next());
    }
  }

  /** One call, from its backoff to the fold of its last event. */
  private static final class Call {
    private final String spanId;
    private Compacting compaction;
    private long builtAt = -1; // the last seq of the state its request was built from
    private long startedAt = System.nanoTime();
    private Cancellable offering;
    private List<OfferedTools.Tool> offered = List.of();
    private List<Event> notices = List.of();
    private Cancellable delay;
    private Cancellable stream;
    private boolean cancelled;
    private boolean finished;
    private Span span;

    Call(String spanId) {
      this.spanId = spanId;
    }

    /** Ends the call's trace span with its outcome ("ok" or the error type) and token usage. */
    void traced(String outcome, dev.corral.proto.v1.ModelUsage usage) {
      if (span == null) {
        return;
      }
      if (usage != null) {
        span.setAttribute(GenAi.USAGE_INPUT, usage.getInputTokens());
        span.setAttribute(GenAi.USAGE_OUTPUT, usage.getOutputTokens());
        span.setAttribute(GenAi.USAGE_CACHE_READ, usage.getCacheReadInputTokens());
        span.setAttribute(GenAi.USAGE_CACHE_CREATION, usage.getCacheCreationInputTokens());
      }
      if (!outcome.equals("ok")) {
        span.setAttribute(GenAi.ERROR_TYPE, outcome);
        span.setStatus(StatusCode.ERROR, outcome);
      }
      span.end();
      span = null;
    }

    void cancel() {
      traced("cancelled", null);
      cancelled = true;
      finished = true;
      if (offering != null) {
        offering.cancel();
      }
      if (delay != null) {
        delay.cancel();
      }
      if (stream != null) {
        stream.cancel();
      }
    }
  }
}
