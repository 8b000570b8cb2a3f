package dev.corral.harness;

import dev.corral.common.LogFields;
import dev.corral.common.NotFoundException;
import dev.corral.common.VertxContexts;
import dev.corral.proto.v1.Event;
import dev.corral.proto.v1.Session;
import dev.corral.proto.v1.SessionStatus;
import dev.corral.proto.v1.StopReasonType;
import dev.corral.session.AlreadyAnsweredException;
import dev.corral.session.Appended;
import dev.corral.session.EventPage;
import dev.corral.session.EventSlice;
import dev.corral.session.EventType;
import dev.corral.session.LeaseLostException;
import dev.corral.session.NewEvent;
import dev.corral.session.SequenceConflictException;
import dev.corral.session.SessionClosedException;
import io.smallrye.mutiny.Uni;
import io.smallrye.mutiny.subscription.Cancellable;
import io.vertx.core.Context;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.Executor;
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

  private final TurnTrace trace;
  private final AppendQueue appends;
  private final ModelCalls model;
  private final ToolCalls tools;
  private SessionState state;
  private Set<String> inherited = Set.of();
  private long waitForSeq;
  private Cancellable tail;
  private boolean ended;
  private boolean leaseGivenBack;
  private boolean leaseLostWhileAppending;
  private boolean ownError;
  private boolean restart;
  private List<Event> prepared = List.of();

  /** Runs of this session before this one that ended in a row on an error of their own. */
  private int failuresBefore;

  /** This run gave the turn up, or found nothing to give up (see {@link #giveUp}). */
  private boolean gaveUp;

  /**
   * This run's lease was taken over from a holder that stopped renewing it (it died): a model call
   * it left open failed with it, and counts as one (see {@link EventsFactory#orphanClosed}). A
   * lease given back (a replica shutting down) leaves its call to be made again, uncounted.
   */
  private final boolean tookOver;

  /** This run closed a model call that the run before it left open, and has not called since. */
  private boolean orphanClosed;

  /** From this many {@link #failuresBefore}, the run gives the turn up (see {@link #giveUp}). */
  private final int maxRunErrors;

  HarnessRun(
      String sessionId,
      long epoch,
      Context context,
      HarnessServices services,
      int maxRunErrors,
      boolean tookOver,
      Consumer<HarnessRun> onEnd) {
    this.sessionId = sessionId;
    this.tookOver = tookOver;
    this.maxRunErrors = maxRunErrors;
    this.epoch = epoch;
    this.context = context;
    this.services = services;
    this.onEnd = onEnd;
    Executor onContext = this::onContext;
    this.trace = new TurnTrace(services.tracer(), sessionId, epoch);
    this.appends =
        new AppendQueue(
            sessionId,
            epoch,
            services.emitter(),
            services.log(),
            trace,
            onContext,
            new AppendQueue.Outcome() {
              @Override
              public void appended(AppendQueue.Batch batch, Appended appended) {
                HarnessRun.this.appended(batch, appended);
              }

              @Override
              public void refused(AppendQueue.Batch batch, Throwable failure) {
                HarnessRun.this.refused(batch, failure);
              }
            });
    this.model =
        new ModelCalls(
            sessionId,
            services.model(),
            services.deltas(),
            onContext,
            appends,
            () -> state,
            services.metrics(),
            services.tools(),
            trace,
            services.modelLabels());
    this.tools =
        new ToolCalls(
            sessionId,
            services.tools(),
            onContext,
            appends,
            services.metrics(),
            () -> state.session(),
            trace);
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

  /** This run ended with work left for a run of a new lease (see {@link #step}). */
  boolean wantsRestart() {
    return restart;
  }

  /**
   * The lease was lost (renewal failed): stop at once, append nothing more. With an append under
   * way, once its outcome is in: the run's own idle ends its lease too, and the renewal that finds
   * it ended may come first; that idle may leave work for a run of a new lease (see {@link #step}),
   * which must not be forgotten.
   */
  void leaseLost() {
    onContext(
        () -> {
          if (appends.busy()) {
            leaseLostWhileAppending = true;
          } else {
            end(false, "lease lost");
          }
        });
  }

  /** The replica shuts down: stop and give the lease back so another replica takes over now. */
  void shutdown() {
    onContext(() -> end(true, "replica shutting down"));
  }

  // --- loading and following the log --------------------------------------------------------

  /**
   * Reads the session, the first page of its log and its count of failed runs at once (no wait),
   * and prepares its tools: the page after the state an earlier run on this replica left, if it
   * left one, so that a long session is not read whole at every turn.
   */
  private void load() {
    SessionState kept = services.states().take(sessionId);
    Uni.combine()
        .all()
        .unis(
            services.sessions().find(sessionId),
            firstPage(kept == null ? 0 : kept.lastSeq()),
            services.tools().prepare(sessionId),
            services.leases().failures(sessionId))
        .asTuple()
        .subscribe()
        .with(
            loaded ->
                onContext(
                    () -> {
                      state =
                          kept == null
                              ? new SessionState(loaded.getItem1())
                              : kept.refreshed(loaded.getItem1());
                      prepared = loaded.getItem3();
                      failuresBefore = loaded.getItem4();
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
      appends.add(prepared.stream().map(NewEvent::of).toList(), null);
      prepared = List.of();
    }
    step();
  }

  /**
   * The runs before this one ended on errors of their own, {@link #maxRunErrors} times in a row: a
   * bug that would stop every run the same way, each trying again at its lease's expiry (and maybe
   * calling the model again each time). Unless there is nothing left to do, the turn is given up,
   * as when a model call's retries run out: its open calls are answered with errors, its open span
   * ended, and a session.error ({@code unknown_error}, {@code exhausted}) and an idle ({@code
   * retries_exhausted}) tell the client. The idle's append sets the count back to 0, so that the
   * next message gets every try.
   */
  private void giveUp() {
    Step next =
        Decision.next(state, inherited, Set.of(), false, services.model().config().maxRetries());
    if (next instanceof Step.Done) {
      gaveUp = true;
      step();
      return;
    }
    if (next instanceof Step.Interrupt interrupt) {
      gaveUp = true; // the user stopped the turn: it ends as interrupted, not given up
      interrupt(interrupt);
      return;
    }
    String why =
        "corral's harness stopped on an error of its own "
            + failuresBefore
            + " times in a row while working this session";
    List<NewEvent> events = new ArrayList<>();
    for (ToolCallState call : state.unansweredCalls()) {
      NewEvent result =
          EventsFactory.resultOf(
              call,
              "This "
                  + call.name()
                  + " call was given up: "
                  + why
                  + ". If it ran, its outcome is unknown.",
              true);
      events.add(call.waitingForConfirmation() ? result.closingConfirmation() : result);
    }
    if (state.openSpanId() != null) {
      events.add(spanEnd(state.openSpanId(), why));
    }
    events.add(
        EventsFactory.harnessGaveUp(
            why + ", so this turn is given up. The replica's log has the error."));
    events.add(status(Decision.stopReason(StopReasonType.STOP_REASON_TYPE_RETRIES_EXHAUSTED)));
    LogFields.session(sessionId)
        .epoch(epoch)
        .log(
            () ->
                LOGGER.warnf(
                    "sessionId=%s epoch=%d %d runs in a row stopped on their own error: the turn"
                        + " is given up",
                    sessionId, epoch, failuresBefore));
    appends.add(withRunning(events), state.lastSeq(), appended -> gaveUp = true);
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
    if (ended || appends.busy() || state == null || state.lastSeq() < waitForSeq) {
      return;
    }
    if (failuresBefore >= maxRunErrors && !gaveUp) {
      giveUp(); // before anything else, and again after a conflict (an event came meanwhile)
      return;
    }
    tools.answered(state);
    Step next =
        Decision.next(
            state,
            inherited,
            tools.inFlight(),
            model.active(),
            services.model().config().maxRetries());
    if (leaseGivenBack && !(next instanceof Step.Done)) {
      // This run's idle gave its lease back, yet work is left (a message sent after an
      // interrupt, or during a call that failed for good): a run of a new lease does it.
      restart = true;
      end(false, "work left after this run's idle");
      return;
    }
    if (next instanceof Step.Interrupt interrupt) {
      interrupt(interrupt);
    } else if (next instanceof Step.CloseOrphanSpan orphan) {
      orphanClosed = true;
      appends.add(
          EventsFactory.orphanClosed(
              orphan.spanId(),
              tookOver,
              state.failuresSinceInput() + 1,
              services.model().config().maxRetries()),
          null);
    } else if (next instanceof Step.ResolveUnknown unknown) {
      appends.add(
          withRunning(results(unknown.calls(), HarnessRun::unknownOutcome)), state.lastSeq());
    } else if (next instanceof Step.ApplyDenials denials) {
      appends.add(withRunning(results(denials.calls(), HarnessRun::denial)), state.lastSeq());
    } else if (next instanceof Step.RunTools run) {
      runTools(run.calls());
    } else if (next instanceof Step.CallModel call) {
      // the call cut by the replica that died is made again at once: its end was no answer of
      // the API's, which a backoff would spare (a take-over already waited out a lease)
      model.call(call.attempt(), orphanClosed);
      orphanClosed = false;
    } else if (next instanceof Step.Idle idle) {
      appends.add(List.of(status(idle.reason())), state.lastSeq());
    } else if (next instanceof Step.Done) {
      end(true, true, "nothing to do");
    }
  }

  private void interrupt(Step.Interrupt interrupt) {
    tools.cancelAll();
    model.cancel();
    List<NewEvent> events = new ArrayList<>();
    for (ToolCallState call : interrupt.unanswered()) {
      if (call.denied()) {
        // denied (by the user, with their reason, or the agent's toolset) in the same fold as
        // the interrupt: it never ran, and the model hears why, as it would have without it
        events.add(EventsFactory.resultOf(call, denial(call), true));
        continue;
      }
      // a call that had started may have done its work before the interrupt stopped it
      NewEvent result =
          EventsFactory.resultOf(
              call,
              call.waitingForConfirmation()
                  ? "The user interrupted the session while this "
                      + call.name()
                      + " call waited for confirmation, so it did not run."
                  : "The user interrupted the session before this "
                      + call.name()
                      + " call's result was recorded. It may have run, in part or in full:"
                      + " check its effects before you run it again.",
              true);
      // a call still waiting for its confirmation: a confirmation sent now comes too late
      events.add(call.waitingForConfirmation() ? result.closingConfirmation() : result);
    }
    if (interrupt.openSpanId() != null) {
      events.add(spanEnd(interrupt.openSpanId(), "interrupted by the user"));
    }
    events.add(status(Decision.stopReason(StopReasonType.STOP_REASON_TYPE_INTERRUPTED)));
    appends.add(events, state.lastSeq());
  }

  // --- tools ---------------------------------------------------------------------------------

  private void runTools(List<ToolCallState> calls) {
    tools.reserve(calls);
    if (state.status() == SessionStatus.SESSION_STATUS_RUNNING) {
      calls.forEach(tools::run);
    } else {
      // after the last event seen: an interrupt that came since is folded before any call starts
      appends.add(
          List.of(running()),
          state.lastSeq(),
          appended -> calls.forEach(tools::run),
          () -> tools.unreserve(calls));
    }
  }

  // --- appending -------------------------------------------------------------------------------

  private void appended(AppendQueue.Batch batch, Appended appended) {
    if (ended) {
      return; // the state went to the next run; it reads these events from the log
    }
    for (Event event : appended.events()) {
      if (event.getSeq() == state.lastSeq() + 1) {
        state.apply(event);
      }
      if (event.hasSessionStatusIdle() || event.hasSessionStatusTerminated()) {
        leaseGivenBack = true; // the statement that appended it ended the lease
      }
      if (event.hasSessionStatusIdle()) {
        trace.turnEnded(
            EventType.stopReasonName(event.getSessionStatusIdle().getStopReason().getType()));
      } else if (event.hasSessionStatusTerminated()) {
        trace.turnEnded("terminated");
      }
    }
    batch.then().accept(appended);
    if (leaseLostWhileAppending) {
      appends.stop();
      if (leaseGivenBack) {
        step(); // ends the run, asking for a restart if work is left
      }
      end(false, "lease lost");
      return;
    }
    appends.next();
    step();
  }

  private void refused(AppendQueue.Batch batch, Throwable failure) {
    batch.refused().run();
    if (leaseLostWhileAppending || failure instanceof LeaseLostException) {
      if (leaseGivenBack) {
        // this run gave the lease back itself (an idle it appended), and a batch queued behind
        // that idle (a sandbox's notice, say) was refused for it: a message that came meanwhile
        // still asks for the restart appended() would have asked for
        step();
      }
      end(false, "lease lost");
      return;
    }
    if (failure instanceof SequenceConflictException conflict) {
      waitForSeq = conflict.lastSeq();
    } else if (failure instanceof AlreadyAnsweredException) {
      // Another answer to one of these calls is committed (an interrupt's, say): wait for it to
      // be folded in, unless it already is; then decide again. Waiting for a seq the log may
      // never reach would hold the lease until the next client event.
      waitForSeq = answeredInState(batch) ? 0 : state.lastSeq() + 1;
    } else if (failure instanceof SessionClosedException || failure instanceof NotFoundException) {
      end(false, failure.getMessage());
      return;
    } else {
      LogFields.session(sessionId)
          .epoch(epoch)
          .log(
              () ->
                  LOGGER.warnf(
                      "sessionId=%s epoch=%d append failed, leaving the session to the next"
                          + " lease: %s",
                      sessionId, epoch, failure.getMessage()));
      end(false, "append failed");
      return;
    }
    appends.next();
    step();
  }

  /** Every call a result of {@code batch} answers is answered in the folded state already. */
  private boolean answeredInState(AppendQueue.Batch batch) {
    java.util.Set<String> unanswered = new java.util.HashSet<>();
    state.unansweredCalls().forEach(call -> unanswered.add(call.eventId()));
    return batch.events().stream()
        .map(NewEvent::payload)
        .map(
            event ->
                event.hasAgentToolResult()
                    ? event.getAgentToolResult().getToolUseId()
                    : event.hasAgentMcpToolResult()
                        ? event.getAgentMcpToolResult().getMcpToolUseId()
                        : null)
        .filter(java.util.Objects::nonNull)
        .noneMatch(unanswered::contains);
  }

  // --- ending ----------------------------------------------------------------------------------

  private void failed(Throwable failure) {
    onContext(
        () -> {
          if (failure instanceof NotFoundException) {
            end(false, "session not found");
            return;
          }
          LogFields.session(sessionId)
              .epoch(epoch)
              .log(
                  () ->
                      LOGGER.warnf(
                          "sessionId=%s epoch=%d harness stopped: %s",
                          sessionId, epoch, failure.getMessage()));
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
    trace.runEnded(why);
    LogFields.session(sessionId)
        .epoch(epoch)
        .log(() -> LOGGER.debugf("sessionId=%s epoch=%d harness ends: %s", sessionId, epoch, why));
    if (state != null && !ownError) {
      // no event is folded into it here any more (after an error of its own it may be half of
      // one: the next run folds from the log)
      services.states().keep(state);
    }
    appends.stop();
    tools.stop();
    model.stop();
    if (tail != null) {
      tail.cancel();
    }
    long doneUpTo = done && state != null ? state.lastSeq() : -1;
    Uni<Void> released =
        ownError && !leaseGivenBack
            // the lease runs out and another run tries (after its idle, the run's turn was over
            // and the count back at 0, set by the idle's append)
            ? services.leases().failed(sessionId, epoch, maxRunErrors)
            : release
                ? services.leases().release(sessionId, epoch, doneUpTo)
                : restart
                    // the idle said no work was pending: a scan finds the session should the
                    // restart not happen here (the replica full, say)
                    ? services.leases().pend(sessionId)
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
        .map(call -> EventsFactory.resultOf(call, message.apply(call), true))
        .toList();
  }

  private static String unknownOutcome(ToolCallState call) {
    return "The outcome of this "
        + call.name()
        + " call is unknown: the harness restarted while it ran. Check the sandbox's state before"
        + " you run it again.";
  }

  private static String denial(ToolCallState call) {
    if (call.cutOff()) {
      return "The input of this "
          + call.name()
          + " call was cut off at your output limit (max_tokens), so it was not sent to the"
          + " client and did not run. Make the call smaller.";
    }
    if (call.refused()) {
      return "The tool "
          + call.name()
          + " is not enabled for this agent, so this call did not run. Use only the tools you"
          + " were given.";
    }
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

  /**
   * Runs {@code action} on the run's context. An exception of the harness's own (a fold that meets
   * a log it cannot read, say) ends the run: its lease is renewed no more, so that it expires and
   * another run tries, rather than the session showing a live harness that does nothing.
   */
  private void onContext(Runnable action) {
    VertxContexts.runOn(
        context,
        () -> {
          try {
            action.run();
          } catch (RuntimeException bug) {
            LOGGER.errorf(
                bug, "sessionId=%s epoch=%d harness stopped by its own error", sessionId, epoch);
            ownError = true;
            end(false, "error");
          }
        });
  }
}
