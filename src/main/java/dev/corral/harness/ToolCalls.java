package dev.corral.harness;

import dev.corral.common.LogFields;
import dev.corral.proto.v1.Event;
import dev.corral.session.NewEvent;
import dev.corral.tool.ToolOutcome;
import dev.corral.tool.ToolRouter;
import io.opentelemetry.api.trace.Span;
import io.opentelemetry.api.trace.SpanKind;
import io.opentelemetry.api.trace.StatusCode;
import io.opentelemetry.context.Context;
import io.smallrye.mutiny.Uni;
import io.smallrye.mutiny.subscription.Cancellable;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.Executor;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * The built-in tool calls a harness run has going. Each runs through the {@link ToolRouter}; the
 * events it brings about are appended as they happen (sandbox.provisioned before the call runs in
 * it), and its outcome (with a sandbox.lost it ran into) as the call's result. Cancelling a call
 * stops it where it runs.
 */
final class ToolCalls {

  private static final org.jboss.logging.Logger LOGGER =
      org.jboss.logging.Logger.getLogger(ToolCalls.class);

  private final String sessionId;
  private final ToolRouter router;
  private final Executor context;
  private final AppendQueue appends;
  private final io.micrometer.core.instrument.MeterRegistry metrics;
  private final java.util.function.Supplier<dev.corral.proto.v1.Session> session;
  private final TurnTrace trace;
  private final Map<String, Cancellable> inFlight = new HashMap<>();
  private boolean stopped;

  ToolCalls(
      String sessionId,
      ToolRouter router,
      Executor context,
      AppendQueue appends,
      io.micrometer.core.instrument.MeterRegistry metrics,
      java.util.function.Supplier<dev.corral.proto.v1.Session> session,
      TurnTrace trace) {
    this.trace = trace;
    this.metrics = metrics;
    this.session = session;
    this.sessionId = sessionId;
    this.router = router;
    this.context = context;
    this.appends = appends;
  }

  /** The agent.tool_use event ids of the calls under way. */
  Set<String> inFlight() {
    return inFlight.keySet();
  }

  /** Forgets calls whose result is in the log. */
  void answered(SessionState state) {
    inFlight
        .keySet()
        .removeIf(
            id -> state.unansweredCalls().stream().noneMatch(call -> call.eventId().equals(id)));
  }

  /** Counts {@code calls} as under way at once, and runs them once {@code started} runs. */
  void reserve(List<ToolCallState> calls) {
    calls.forEach(call -> inFlight.put(call.eventId(), () -> {}));
  }

  /** Forgets calls reserved for a start that did not happen (its status_running was refused). */
  void unreserve(List<ToolCallState> calls) {
    calls.forEach(call -> inFlight.remove(call.eventId()));
  }

  void run(ToolCallState call) {
    if (stopped) {
      return;
    }
    long started = System.nanoTime();
    if (call.kind() == ToolCallState.Kind.MCP && mcpTarget(call) == null) {
      done(call, ToolOutcome.error("The agent has no MCP server named " + call.mcpServer() + "."));
      return;
    }
    Span span = trace.child("execute_tool " + call.name(), SpanKind.INTERNAL);
    span.setAttribute(GenAi.OPERATION, "execute_tool");
    span.setAttribute(GenAi.TOOL_NAME, call.name());
    span.setAttribute(GenAi.TOOL_CALL_ID, call.eventId());
    AtomicBoolean traced = new AtomicBoolean();
    Cancellable running =
        router
            .execute(
                new ToolRouter.ToolCall(
                    sessionId,
                    call.eventId(),
                    call.name(),
                    call.inputJson(),
                    mcpTarget(call),
                    this::record,
                    Context.root().with(span)))
            .onFailure()
            .recoverWithItem(
                failure -> {
                  // The failure's message may quote the call's input: only its kind is logged.
                  LogFields.session(sessionId)
                      .tool(call.name())
                      .log(
                          () ->
                              LOGGER.warnf(
                                  "sessionId=%s a %s call failed unexpectedly (%s)",
                                  sessionId, call.name(), failure.getClass().getSimpleName()));
                  return ToolOutcome.error("The tool failed: " + failure.getMessage());
                })
            .subscribe()
            .with(
                outcome -> {
                  measured(metricName(call), outcome, started);
                  if (traced.compareAndSet(false, true)) {
                    if (outcome.isError()) {
                      span.setStatus(StatusCode.ERROR, "the tool answered an error");
                    }
                    span.end();
                  }
                  context.execute(() -> done(call, outcome));
                });
    inFlight.put(
        call.eventId(),
        () -> {
          running.cancel();
          if (traced.compareAndSet(false, true)) {
            span.setStatus(StatusCode.ERROR, "cancelled");
            span.end();
          }
        });
  }

  /** Where an MCP call goes: the agent's server of that name, for the session's tenant. */
  private ToolRouter.McpTarget mcpTarget(ToolCallState call) {
    if (call.kind() != ToolCallState.Kind.MCP) {
      return null;
    }
    var now = session.get();
    return now.getAgent().getMcpServersList().stream()
        .filter(server -> server.getName().equals(call.mcpServer()))
        .findFirst()
        .map(server -> new ToolRouter.McpTarget(now.getTenantId(), server, now.getVaultIdsList()))
        .orElse(null);
  }

  /** The tool label of a call's metrics: a built-in tool's name, "mcp", or "unknown". */
  private static String metricName(ToolCallState call) {
    if (call.kind() == ToolCallState.Kind.MCP) {
      return "mcp";
    }
    return dev.corral.tool.BuiltInTool.named(call.name())
        .map(dev.corral.tool.BuiltInTool::toolName)
        .orElse("unknown");
  }

  /** Stops every call under way; their results are the caller's to record. */
  void cancelAll() {
    // Their results are the canceller's to write (an interrupt answers them): one that finished
    // meanwhile, its outcome already on its way here, records nothing.
    List<Cancellable> running = new ArrayList<>(inFlight.values());
    inFlight.clear();
    running.forEach(Cancellable::cancel);
  }

  /** Stops every call and records nothing more. */
  void stop() {
    stopped = true;
    cancelAll();
  }

  /** Appends what a call brings about before its result; completes once it is in the log. */
  private Uni<Void> record(List<Event> notices) {
    return Uni.createFrom()
        .emitter(
            emitter ->
                context.execute(
                    () -> {
                      if (stopped) {
                        emitter.fail(new IllegalStateException("the harness run has stopped"));
                        return;
                      }
                      appends.add(
                          asNew(notices),
                          null,
                          appended -> emitter.complete(null),
                          () ->
                              emitter.fail(
                                  new IllegalStateException(
                                      "the log refused the sandbox's events")));
                    }));
  }

  private void measured(String tool, ToolOutcome outcome, long started) {
    metrics
        .counter("corral.tool.calls", "tool", tool, "outcome", outcome.isError() ? "error" : "ok")
        .increment();
    io.micrometer.core.instrument.Timer.builder("corral.tool.call")
        .description("Built-in tool calls, from the harness's request to the outcome")
        .tag("tool", tool)
        .publishPercentileHistogram()
        .register(metrics)
        .record(System.nanoTime() - started, java.util.concurrent.TimeUnit.NANOSECONDS);
  }

  private void done(ToolCallState call, ToolOutcome outcome) {
    if (stopped || !inFlight.containsKey(call.eventId())) {
      return;
    }
    List<NewEvent> events = asNew(outcome.notices());
    events.add(EventsFactory.resultOf(call, outcome.output(), outcome.isError()));
    appends.add(events, null);
  }

  private static List<NewEvent> asNew(List<Event> notices) {
    List<NewEvent> events = new ArrayList<>();
    notices.forEach(notice -> events.add(NewEvent.of(notice)));
    return events;
  }
}
