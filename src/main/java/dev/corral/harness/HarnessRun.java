package dev.corral.harness;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.corral.common.IdKind;
import dev.corral.common.NotFoundException;
import dev.corral.model.ModelException;
import dev.corral.model.ModelResponse;
import dev.corral.model.StreamListener;
import dev.corral.proto.v1.Event;
import dev.corral.proto.v1.EventDelta;
import dev.corral.proto.v1.Session;
import dev.corral.proto.v1.SessionStatus;
import dev.corral.proto.v1.StopReasonType;
import dev.corral.session.AlreadyAnsweredException;
import dev.corral.session.AppendRequest;
import dev.corral.session.Appended;
import dev.corral.session.EventPage;
import dev.corral.session.EventSlice;
import dev.corral.session.LeaseLostException;
import dev.corral.session.NewEvent;
import dev.corral.session.SequenceConflictException;
import dev.corral.session.SessionClosedException;
import dev.corral.tool.ToolOutcome;
import dev.corral.tool.ToolRouter;
import io.smallrye.mutiny.Uni;
import io.smallrye.mutiny.subscription.Cancellable;
import io.vertx.core.Context;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ThreadLocalRandom;
import java.util.function.Consumer;
import org.jboss.logging.Logger;

/**
 * One harness working one session under one lease epoch: an actor on a single Vert.x context.
 *
 * <p>It folds the log into {@link SessionState}, asks {@link Decision} what to do, and does it:
 * appends (one at a time, each carrying the epoch), model calls and tool calls. Everything it
 * learns comes back through the log: it folds its own appends and follows the session's tail for
 * what others append (a user interrupt, a new message). It never blocks; every callback hops onto
 * its context. When the decision is {@link Step.Done} or its lease is lost, it ends.
 */
final class HarnessRun {

  private static final Logger LOGGER = Logger.getLogger(HarnessRun.class);
  private static final int LOAD_PAGE = 1000;

  private final String sessionId;
  private final long epoch;
  private final Context context;
  private final HarnessServices services;
  private final Consumer<HarnessRun> onEnd;

  private SessionState state;
  private Set<String> inherited = Set.of();
  private final Map<String, Cancellable> toolsInFlight = new HashMap<>();
  private ModelCall model;
  private final ArrayDeque<Batch> appends = new ArrayDeque<>();
  private boolean appending;
  private long waitForSeq;
  private Cancellable tail;
  private boolean ended;
  private Duration retryAfter;
  private List<Event> prepared = List.of();

  HarnessRun(
      String sessionId,
      long epoch,
      Context context,
      HarnessServices services,
      Consumer<HarnessRun> onEnd) {
    this.sessionId = sessionId;
    this.epoch = epoch;
    this.context = context;
    this.services = services;
    this.onEnd = onEnd;
  }

  String sessionId() {
    return sessionId;
  }

  long epoch() {
    return epoch;
  }

  void start() {
    onContext(this::load);
  }

  /** The lease was lost (renewal failed): stop at once, append nothing more. */
  void leaseLost() {
    onContext(() -> end(false, "lease lost"));
  }

  /** The replica shuts down: stop and give the lease back so another replica takes over now. */
  void shutdown() {
    onContext(() -> end(true, "replica shutting down"));
  }

  // --- loading and following the log --------------------------------------------------------

  /** Reads the session and the first page of its log at once (two connections, no wait). */
  private void load() {
    Uni.combine()
        .all()
        .unis(services.sessions().get(sessionId), firstPage(0), services.tools().prepare(sessionId))
        .asTuple()
        .subscribe()
        .with(
            loaded ->
                onContext(
                    () -> {
                      state = new SessionState(loaded.getItem1());
                      prepared = loaded.getItem3();
                      loaded(loaded.getItem1(), loaded.getItem2());
                    }),
            this::failed);
  }

  private Uni<EventPage> firstPage(long after) {
    return services
        .log()
        .read(new EventSlice(sessionId, EventSlice.Position.AFTER, after, LOAD_PAGE, Set.of()));
  }

  private void loadEvents(Session session, long after) {
    firstPage(after).subscribe().with(page -> onContext(() -> loaded(session, page)), this::failed);
  }

  private void loaded(Session session, EventPage page) {
    page.events().forEach(state::apply);
    if (page.hasMore()) {
      loadEvents(session, state.lastSeq());
      return;
    }
    // A dead harness that was working may have started any call it could run.
    if (state.status() == SessionStatus.SESSION_STATUS_RUNNING) {
      Set<String> runnable = new HashSet<>();
      state.unansweredCalls().stream()
          .filter(ToolCallState::runnable)
          .forEach(call -> runnable.add(call.eventId()));
      inherited = Set.copyOf(runnable);
    }
    tail =
        services
            .tail()
            .follow(sessionId, state.lastSeq(), Set.of())
            .subscribe()
            .with(
                event -> onContext(() -> followed(event)),
                this::failed,
                () -> onContext(() -> end(false, "session deleted")));
    if (!prepared.isEmpty()) {
      append(prepared.stream().map(NewEvent::of).toList(), null);
      prepared = List.of();
    }
    step();
  }

  private void followed(Event event) {
    if (ended || event.getSeq() <= state.lastSeq()) {
      return;
    }
    state.apply(event);
    step();
  }

  // --- deciding --------------------------------------------------------------------------------

  private void step() {
    if (ended || appending || state == null || state.lastSeq() < waitForSeq) {
      return;
    }
    toolsInFlight
        .keySet()
        .removeIf(
            id -> state.unansweredCalls().stream().noneMatch(call -> call.eventId().equals(id)));
    if (model != null && model.finished && !model.spanId.equals(state.openSpanId())) {
      model = null;
    }
    Step next =
        Decision.next(
            state,
            inherited,
            toolsInFlight.keySet(),
            model != null,
            services.model().config().maxRetries());
    if (next instanceof Step.Interrupt interrupt) {
      interrupt(interrupt);
    } else if (next instanceof Step.CloseOrphanSpan orphan) {
      append(List.of(spanEnd(orphan.spanId(), "the harness restarted while this call ran")), null);
    } else if (next instanceof Step.ResolveUnknown unknown) {
      append(withRunning(results(unknown.calls(), HarnessRun::unknownOutcome)), null);
    } else if (next instanceof Step.ApplyDenials denials) {
      append(withRunning(results(denials.calls(), HarnessRun::denial)), null);
    } else if (next instanceof Step.RunTools run) {
      runTools(run.calls());
    } else if (next instanceof Step.CallModel call) {
      callModel(call.attempt());
    } else if (next instanceof Step.Idle idle) {
      append(List.of(status(idle.reason())), state.lastSeq());
    } else if (next instanceof Step.Done) {
      end(true, true, "nothing to do");
    }
  }

  private void interrupt(Step.Interrupt interrupt) {
    toolsInFlight.values().forEach(Cancellable::cancel);
    if (model != null) {
      model.cancel();
    }
    List<NewEvent> events =
        new ArrayList<>(
            results(
                interrupt.unanswered(),
                call ->
                    "The user interrupted the session before this "
                        + call.name()
                        + " call finished."));
    if (interrupt.openSpanId() != null) {
      events.add(spanEnd(interrupt.openSpanId(), "interrupted by the user"));
    }
    events.add(status(Decision.stopReason(StopReasonType.STOP_REASON_TYPE_INTERRUPTED)));
    append(events, state.lastSeq());
  }

  // --- tools
  // --------------------------------------------------------------------------------------

  private void runTools(List<ToolCallState> calls) {
    calls.forEach(call -> toolsInFlight.put(call.eventId(), () -> {}));
    Runnable launch = () -> calls.forEach(this::runTool);
    if (state.status() == SessionStatus.SESSION_STATUS_RUNNING) {
      launch.run();
    } else {
      append(List.of(running()), null, appended -> launch.run());
    }
  }

  private void runTool(ToolCallState call) {
    if (ended) {
      return;
    }
    Cancellable running =
        services
            .tools()
            .execute(
                new ToolRouter.ToolCall(sessionId, call.eventId(), call.name(), call.inputJson()))
            .onFailure()
            .recoverWithItem(
                failure -> ToolOutcome.error("The tool failed: " + failure.getMessage()))
            .subscribe()
            .with(outcome -> onContext(() -> toolDone(call, outcome)));
    toolsInFlight.put(call.eventId(), running);
  }

  private void toolDone(ToolCallState call, ToolOutcome outcome) {
    if (ended || !toolsInFlight.containsKey(call.eventId())) {
      return;
    }
    List<NewEvent> events = new ArrayList<>();
    outcome.notices().forEach(notice -> events.add(NewEvent.of(notice)));
    events.add(EventsFactory.toolResult(call.eventId(), outcome.output(), outcome.isError()));
    append(events, null);
  }

  // --- the model
  // -----------------------------------------------------------------------------------

  private void callModel(int attempt) {
    ModelCall call = new ModelCall(IdKind.EVENT.next());
    model = call;
    ObjectNode request =
        Projection.request(
            state,
            services.model().config().maxTokens(),
            services.model().config().thinkingBudgetTokens());
    Duration delay = attempt == 1 ? Duration.ZERO : backoff(attempt - 1);
    if (delay.isZero()) {
      startModelCall(call, request);
      return;
    }
    call.delay =
        Uni.createFrom()
            .voidItem()
            .onItem()
            .delayIt()
            .by(delay)
            .subscribe()
            .with(ignored -> onContext(() -> startModelCall(call, request)));
  }

  private void startModelCall(ModelCall call, ObjectNode request) {
    if (ended || call.cancelled) {
      return;
    }
    List<NewEvent> events = new ArrayList<>();
    if (state.status() != SessionStatus.SESSION_STATUS_RUNNING) {
      events.add(running());
    }
    events.add(EventsFactory.spanStart(call.spanId, state.session().getAgent().getModel()));
    // The request goes out while its span start commits: a model call has no side effect, and if
    // the append is refused (the lease is lost, or new input arrived) the call is cancelled. Its
    // answer is appended after the span start, since appends are made one at a time.
    append(
        events,
        state.lastSeq(),
        appended -> {},
        () -> {
          call.cancel();
          model = null;
        });
    stream(call, request);
  }

  private void stream(ModelCall call, ObjectNode request) {
    if (ended || call.cancelled) {
      return;
    }
    DeltaRelay relay = new DeltaRelay();
    call.stream =
        services.model().stream(request, relay)
            .subscribe()
            .with(
                response -> onContext(() -> modelAnswered(call, relay, response)),
                failure -> onContext(() -> modelFailed(call, failure)));
  }

  private void modelAnswered(ModelCall call, DeltaRelay relay, ModelResponse response) {
    if (ended || call.cancelled) {
      return;
    }
    retryAfter = null;
    List<NewEvent> events = new ArrayList<>();
    var agent = state.session().getAgent();
    for (int i = 0; i < response.blocks().size(); i++) {
      events.add(EventsFactory.block(relay.idOf(i), response.blocks().get(i), agent));
    }
    events.add(EventsFactory.spanEnd(call.spanId, response));
    append(events, null, appended -> call.finished = true);
  }

  private void modelFailed(ModelCall call, Throwable failure) {
    if (ended || call.cancelled) {
      return;
    }
    ModelException error =
        failure instanceof ModelException known
            ? known
            : new ModelException(
                0, "unknown_error", String.valueOf(failure.getMessage()), true, null);
    int attempt = state.failuresSinceInput() + 1;
    boolean last = !error.retryable() || attempt > services.model().config().maxRetries();
    retryAfter = error.retryAfter().orElse(null);
    List<NewEvent> events = new ArrayList<>();
    events.add(spanEnd(call.spanId, error.getMessage()));
    events.add(EventsFactory.sessionError(error, attempt, last));
    if (last) {
      events.add(status(Decision.stopReason(StopReasonType.STOP_REASON_TYPE_RETRIES_EXHAUSTED)));
    }
    LOGGER.debugf(
        "sessionId=%s model call failed (%s), last=%s", sessionId, error.errorType(), last);
    append(events, null, appended -> call.finished = true);
  }

  private Duration backoff(int retry) {
    if (retryAfter != null) {
      return retryAfter;
    }
    long initial = services.model().config().retryInitialBackoff().toMillis();
    long max = services.model().config().retryMaxBackoff().toMillis();
    long exponential = Math.min(max, initial * (1L << Math.min(20, retry - 1)));
    double jitter = 0.5 + ThreadLocalRandom.current().nextDouble();
    return Duration.ofMillis((long) (exponential * jitter));
  }

  /** Forwards text deltas to live subscribers under the ids the finished blocks will get. */
  private final class DeltaRelay implements StreamListener {
    private final Map<Integer, String> ids = new HashMap<>();
    private final Map<Integer, String> types = new HashMap<>();

    @Override
    public void blockStarted(int index, String type) {
      ids.put(index, IdKind.EVENT.next());
      types.put(index, type);
    }

    @Override
    public void textDelta(int index, String text) {
      services
          .deltas()
          .publish(
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

  /** The model call this run has going, from its backoff to the fold of its last event. */
  private static final class ModelCall {
    private final String spanId;
    private Cancellable delay;
    private Cancellable stream;
    private boolean cancelled;
    private boolean finished;

    ModelCall(String spanId) {
      this.spanId = spanId;
    }

    void cancel() {
      cancelled = true;
      finished = true;
      if (delay != null) {
        delay.cancel();
      }
      if (stream != null) {
        stream.cancel();
      }
    }
  }

  // --- appending ---------------------------------------------------------------------------------

  private record Batch(
      List<NewEvent> events, Long expectedLastSeq, Consumer<Appended> then, Runnable refused) {}

  private void append(List<NewEvent> events, Long expectedLastSeq) {
    append(events, expectedLastSeq, appended -> {}, () -> {});
  }

  private void append(List<NewEvent> events, Long expectedLastSeq, Consumer<Appended> then) {
    append(events, expectedLastSeq, then, () -> {});
  }

  private void append(
      List<NewEvent> events, Long expectedLastSeq, Consumer<Appended> then, Runnable refused) {
    appends.add(new Batch(events, expectedLastSeq, then, refused));
    pump();
  }

  private void pump() {
    if (ended || appending || appends.isEmpty()) {
      return;
    }
    appending = true;
    Batch batch = appends.poll();
    services
        .log()
        .append(new AppendRequest(sessionId, batch.events(), batch.expectedLastSeq(), epoch))
        .subscribe()
        .with(
            appended -> onContext(() -> appended(batch, appended)),
            failure -> onContext(() -> refused(batch, failure)));
  }

  private void appended(Batch batch, Appended appended) {
    appending = false;
    for (Event event : appended.events()) {
      if (event.getSeq() == state.lastSeq() + 1) {
        state.apply(event);
      }
    }
    batch.then().accept(appended);
    pump();
    step();
  }

  private void refused(Batch batch, Throwable failure) {
    appending = false;
    batch.refused().run();
    if (failure instanceof SequenceConflictException conflict) {
      waitForSeq = conflict.lastSeq();
    } else if (failure instanceof AlreadyAnsweredException) {
      waitForSeq = state.lastSeq() + 1;
    } else if (failure instanceof LeaseLostException) {
      end(false, "lease lost");
      return;
    } else if (failure instanceof SessionClosedException || failure instanceof NotFoundException) {
      end(false, failure.getMessage());
      return;
    } else {
      LOGGER.warnf(
          "sessionId=%s epoch=%d append failed, leaving the session to the next lease: %s",
          sessionId, epoch, failure.getMessage());
      end(false, "append failed");
      return;
    }
    pump();
    step();
  }

  // --- ending ----------------------------------------------------------------------------------

  private void failed(Throwable failure) {
    onContext(
        () -> {
          if (failure instanceof NotFoundException) {
            end(false, "session not found");
            return;
          }
          LOGGER.warnf(
              "sessionId=%s epoch=%d harness stopped: %s", sessionId, epoch, failure.getMessage());
          end(false, "failure");
        });
  }

  private void end(boolean release, String why) {
    end(release, false, why);
  }

  /**
   * @param done the decision found nothing to do: no work is pending as of the last seq seen
   */
  private void end(boolean release, boolean done, String why) {
    if (ended) {
      return;
    }
    ended = true;
    LOGGER.debugf("sessionId=%s epoch=%d harness ends: %s", sessionId, epoch, why);
    toolsInFlight.values().forEach(Cancellable::cancel);
    if (model != null) {
      model.cancel();
    }
    if (tail != null) {
      tail.cancel();
    }
    long doneUpTo = done && state != null ? state.lastSeq() : -1;
    Uni<Void> released =
        release
            ? services.leases().release(sessionId, epoch, doneUpTo)
            : Uni.createFrom().voidItem();
    released.subscribe().with(ignored -> onEnd.accept(this), failure -> onEnd.accept(this));
  }

  // --- events ----------------------------------------------------------------------------------

  private List<NewEvent> withRunning(List<NewEvent> events) {
    if (state.status() == SessionStatus.SESSION_STATUS_RUNNING) {
      return events;
    }
    List<NewEvent> all = new ArrayList<>();
    all.add(running());
    all.addAll(events);
    return all;
  }

  private static List<NewEvent> results(
      List<ToolCallState> calls, java.util.function.Function<ToolCallState, String> message) {
    return calls.stream()
        .map(call -> EventsFactory.toolResult(call.eventId(), message.apply(call), true))
        .toList();
  }

  private static String unknownOutcome(ToolCallState call) {
    return "The outcome of this "
        + call.name()
        + " call is unknown: the harness restarted while it ran. Check the sandbox's state before"
        + " you run it again.";
  }

  private static String denial(ToolCallState call) {
    return call.denyMessage().isEmpty()
        ? "The user denied this " + call.name() + " call."
        : call.denyMessage();
  }

  private static NewEvent running() {
    return EventsFactory.running();
  }

  private static NewEvent status(dev.corral.proto.v1.StopReason reason) {
    return EventsFactory.idle(reason);
  }

  private static NewEvent spanEnd(String spanId, String error) {
    return EventsFactory.failedSpanEnd(spanId, error);
  }

  private void onContext(Runnable action) {
    if (io.vertx.core.Vertx.currentContext() == context) {
      action.run();
    } else {
      context.runOnContext(ignored -> action.run());
    }
  }
}
