package dev.corral.tool;

import dev.corral.common.CorralException;
import dev.corral.common.FailedPreconditionException;
import dev.corral.common.InvalidArgumentException;
import dev.corral.proto.v1.ClonedRepository;
import dev.corral.proto.v1.Environment;
import dev.corral.proto.v1.Event;
import dev.corral.proto.v1.Sandbox;
import dev.corral.proto.v1.SandboxLost;
import dev.corral.proto.v1.SandboxProvisioned;
import dev.corral.proto.v1.SandboxResources;
import dev.corral.sandbox.SandboxReleasedException;
import dev.corral.sandbox.Sandboxes;
import dev.corral.sandbox.SessionSandboxExistsException;
import dev.corral.sandbox.driver.SandboxConfig;
import dev.corral.sandbox.driver.SandboxLostException;
import io.opentelemetry.api.trace.Tracer;
import io.smallrye.mutiny.Uni;
import jakarta.enterprise.context.ApplicationScoped;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * Runs the harness's built-in tool calls in the session's sandbox, provisioning it at the first
 * call that needs one ({@code corral.sandbox.provisioning=lazy}, the default) or when the harness
 * starts ({@code eager}). Calls of one session made at the same time share one provisioning. A
 * sandbox that died is recorded as lost; the next call gets a new one, and the model is told that
 * its workspace was reset.
 */
@ApplicationScoped
public class SessionTools implements ToolRouter {

  static final String RESET_NOTE =
      "[a new sandbox: the previous one was lost, so the workspace was reset and its files are gone]";

  private final Sandboxes sandboxes;
  private final BuiltInTools tools;
  private final SandboxConfig config;
  private final SessionLogReader sessionLog;
  private final McpTools mcp;
  private final Repositories repositories;
  private final Tracer tracer;
  private final ConcurrentHashMap<String, Uni<Acquired>> acquiring = new ConcurrentHashMap<>();

  SessionTools(
      Sandboxes sandboxes,
      BuiltInTools tools,
      SandboxConfig config,
      SessionLogReader sessionLog,
      McpTools mcp,
      Repositories repositories,
      Tracer tracer) {
    this.tracer = tracer;
    this.repositories = repositories;
    this.sandboxes = sandboxes;
    this.tools = tools;
    this.config = config;
    this.sessionLog = sessionLog;
    this.mcp = mcp;
  }

  @Override
  public Uni<OfferedTools> offered(dev.corral.proto.v1.Session session) {
    return mcp.offered(session);
  }

  @Override
  public Uni<ToolOutcome> execute(ToolCall call) {
    if (call.mcp() != null) {
      return mcp.call(call);
    }
    ToolInput input;
    try {
      input = ToolInput.parse("name", call.name(), "input", call.inputJson());
    } catch (InvalidArgumentException invalid) {
      return Uni.createFrom().item(ToolOutcome.error("Invalid input: " + invalid.getMessage()));
    }
    if (input instanceof ToolInput.SessionLog slice) {
      return sessionLog.read(call.sessionId(), slice);
    }
    return acquire(call.sessionId())
        .onFailure(CorralException.class)
        .transform(NotProvisioned::new)
        .call(acquired -> recordNotices(call, acquired))
        .flatMap(acquired -> run(acquired, input))
        .onFailure(NotProvisioned.class)
        .recoverWithItem(
            failure ->
                ToolOutcome.error(
                    "No sandbox could be provisioned: " + failure.getCause().getMessage()))
        // a call the sandbox refused (its queue full, say), or that could not be sent to it
        .onFailure(CorralException.class)
        .recoverWithItem(failure -> ToolOutcome.error("The call failed: " + failure.getMessage()));
  }

  /** A failure to get the session a sandbox, as told apart from a failure of the call in one. */
  private static final class NotProvisioned extends RuntimeException {
    NotProvisioned(Throwable cause) {
      super(cause.getMessage(), cause, false, false);
    }
  }

  @Override
  public Uni<List<Event>> prepare(String sessionId) {
    if (!"eager".equals(config.provisioning().toLowerCase(Locale.ROOT))) {
      return ToolRouter.super.prepare(sessionId);
    }
    // A failure here is not the model's business yet: the first tool call tries again.
    return acquire(sessionId)
        .map(Acquired::takeNotices)
        .onFailure(CorralException.class)
        .recoverWithItem(List.of());
  }

  /**
   * The log hears of a new sandbox (and of the one it replaces) before the call uses it; the first
   * call to use a new sandbox also carries its provisioning in its trace.
   */
  private Uni<Void> recordNotices(ToolCall call, Acquired acquired) {
    List<Event> notices = acquired.takeNotices();
    if (notices.isEmpty()) {
      return Uni.createFrom().voidItem();
    }
    traced(call, acquired);
    return call.record().apply(notices);
  }

  /** A span {@code corral.sandbox.provision} under the tool call's, for the time it took. */
  private void traced(ToolCall call, Acquired acquired) {
    if (call.trace() == null || acquired.provisionedFrom() == null) {
      return;
    }
    tracer
        .spanBuilder("corral.sandbox.provision")
        .setParent(call.trace())
        .setStartTimestamp(acquired.provisionedFrom())
        .setAttribute("corral.sandbox.id", acquired.sandbox().getId())
        .setAttribute("corral.sandbox.driver", Sandboxes.driverName(acquired.sandbox().getDriver()))
        .startSpan()
        .end(acquired.provisionedTo());
  }

  private Uni<ToolOutcome> run(Acquired acquired, ToolInput input) {
    return tools
        .run(acquired.sandbox(), input)
        .map(outcome -> acquired.announce(outcome))
        .onFailure(SandboxLostException.class)
        .recoverWithItem(
            lost ->
                acquired
                    .announce(
                        ToolOutcome.error(
                            "The sandbox was lost during this call ("
                                + lost.getMessage()
                                + "). The next call gets a new sandbox with an empty workspace."))
                    .withNoticesAfter(
                        List.of(lostEvent(acquired.sandbox().getId(), lost.getMessage()))))
        .onFailure(SandboxReleasedException.class)
        .recoverWithItem(
            released ->
                acquired.announce(
                    ToolOutcome.error(
                        "The "
                            + released.getMessage()
                            + ". The next call gets a new sandbox with an empty workspace.")));
  }

  /** The session's sandbox: its current one if usable here, otherwise a new one. */
  private Uni<Acquired> acquire(String sessionId) {
    return acquiring.computeIfAbsent(
        sessionId,
        id ->
            acquireNow(id)
                .onTermination()
                .invoke(() -> acquiring.remove(id))
                .memoize()
                .indefinitely());
  }

  private Uni<Acquired> acquireNow(String sessionId) {
    return acquireNow(sessionId, List.of(), true);
  }

  /**
   * {@code forgotten}: sandbox.lost notices of an earlier look. A provisioning that finds the
   * session's sandbox taken meanwhile (by a client's {@code Provision}, or by a run that lost its
   * lease and still finished one) looks once {@code again}: it takes that sandbox if it is ready
   * here, and supersedes one still being provisioned (a client's, or one of a replica that died
   * before it finished). One that is ready on another replica is not forgotten on that second look:
   * it was made a moment ago, maybe by the run that holds the session now.
   */
  private Uni<Acquired> acquireNow(String sessionId, List<Event> forgotten, boolean again) {
    return sandboxes
        .currentOf(sessionId)
        .flatMap(
            current -> {
              if (current.isPresent() && sandboxes.reachable(current.get())) {
                return Uni.createFrom().item(Acquired.reused(current.get(), forgotten));
              }
              if (current.isPresent() && !again) {
                throw new FailedPreconditionException(
                    "the session's sandbox "
                        + current.get().getId()
                        + " was made a moment ago on "
                        + current.get().getHost()
                        + ", which this replica cannot reach; the next call tries again");
              }
              return forget(current, sessionId)
                  .flatMap(
                      lost -> {
                        List<Event> notices = new ArrayList<>(forgotten);
                        notices.addAll(lost);
                        List<Event> held = List.copyOf(notices);
                        Uni<Acquired> fresh = provision(sessionId, held);
                        return again
                            ? fresh
                                .onFailure(SessionSandboxExistsException.class)
                                .recoverWithUni(
                                    taken ->
                                        lookAgain(
                                            sessionId, held, (SessionSandboxExistsException) taken))
                            : fresh;
                      });
            });
  }

  private Uni<Acquired> lookAgain(
      String sessionId, List<Event> forgotten, SessionSandboxExistsException taken) {
    Uni<Void> cleared =
        taken.provisioning() ? sandboxes.supersede(taken.sandboxId()) : Uni.createFrom().voidItem();
    return cleared.flatMap(done -> acquireNow(sessionId, forgotten, false));
  }

  /** Records a current sandbox this replica cannot use (a local one of another run) as lost. */
  private Uni<List<Event>> forget(Optional<Sandbox> current, String sessionId) {
    if (current.isEmpty()) {
      return Uni.createFrom().item(List.of());
    }
    Sandbox sandbox = current.get();
    String reason = "its host " + sandbox.getHost() + " no longer runs it for this session";
    return sandboxes
        .markLost(sandbox, reason)
        .replaceWith(List.of(lostEvent(sandbox.getId(), reason)));
  }

  private Uni<Acquired> provision(String sessionId, List<Event> lost) {
    return Uni.createFrom().deferred(() -> provision(sessionId, lost, Instant.now()));
  }

  private Uni<Acquired> provision(String sessionId, List<Event> lost, Instant from) {
    return sandboxes
        .environmentOfSession(sessionId)
        .flatMap(
            origin ->
                sandboxes
                    .hadOne(sessionId)
                    .flatMap(
                        hadOne ->
                            sandboxes
                                .provision(
                                    origin.tenant(),
                                    origin.environment().getId(),
                                    SandboxResources.getDefaultInstance(),
                                    sessionId)
                                .flatMap(
                                    sandbox ->
                                        repositories
                                            .cloneAll(
                                                sandbox,
                                                origin.resources(),
                                                Duration.ofMillis(
                                                    sandbox.getResources().getCallTimeoutMs()))
                                            .map(
                                                cloned ->
                                                    Acquired.fresh(
                                                        sandbox,
                                                        origin.environment(),
                                                        cloned,
                                                        hadOne,
                                                        lost,
                                                        from,
                                                        Instant.now())))));
  }

  static Event lostEvent(String sandboxId, String reason) {
    return Event.newBuilder()
        .setSandboxLost(SandboxLost.newBuilder().setSandboxId(sandboxId).setReason(reason))
        .build();
  }

  /**
   * A sandbox for a call, with what the log is told before the first call uses it (sandbox.lost,
   * sandbox.provisioned) and what the model is told with the first result (its workspace was
   * reset). Calls sharing a provisioning share one Acquired: the notices are recorded once, and
   * only the first call to finish carries the note.
   */
  private record Acquired(
      Sandbox sandbox,
      List<Event> notices,
      String note,
      AtomicBoolean noticed,
      AtomicBoolean announced,
      Instant provisionedFrom,
      Instant provisionedTo) {

    /**
     * The session's sandbox as it is; after {@code lost} (sandboxes this look forgot), whose
     * notices go to the log and whose reset to the model.
     */
    static Acquired reused(Sandbox sandbox, List<Event> lost) {
      return new Acquired(
          sandbox,
          lost,
          lost.isEmpty() ? "" : RESET_NOTE,
          new AtomicBoolean(lost.isEmpty()),
          new AtomicBoolean(lost.isEmpty()),
          null,
          null);
    }

    static Acquired fresh(
        Sandbox sandbox,
        Environment environment,
        List<ClonedRepository> cloned,
        boolean hadOne,
        List<Event> lost,
        Instant provisionedFrom,
        Instant provisionedTo) {
      List<Event> notices = new ArrayList<>(lost);
      notices.add(
          Event.newBuilder()
              .setSandboxProvisioned(
                  SandboxProvisioned.newBuilder()
                      .setSandboxId(sandbox.getId())
                      .setEnvironmentId(environment.getId())
                      .setDriver(Sandboxes.driverName(sandbox.getDriver()))
                      .addAllRepositories(cloned))
              .build());
      return new Acquired(
          sandbox,
          List.copyOf(notices),
          note(hadOne || !lost.isEmpty(), cloned),
          new AtomicBoolean(false),
          new AtomicBoolean(false),
          provisionedFrom,
          provisionedTo);
    }

    /** What the model is told with the first result: a reset workspace, clones that failed. */
    private static String note(boolean reset, List<ClonedRepository> cloned) {
      StringBuilder note = new StringBuilder(reset ? RESET_NOTE : "");
      if (reset && !cloned.isEmpty()) {
        note.append(" [the session's repositories were cloned again]");
      }
      for (ClonedRepository repository : cloned) {
        if (!repository.getError().isEmpty()) {
          note.append(note.length() == 0 ? "" : " ")
              .append("[the repository ")
              .append(repository.getUrl())
              .append(" could not be cloned into /workspace/")
              .append(repository.getMountPath())
              .append(": ")
              .append(repository.getError())
              .append(']');
        }
      }
      return note.toString();
    }

    List<Event> takeNotices() {
      return noticed.compareAndSet(false, true) ? notices : List.of();
    }

    ToolOutcome announce(ToolOutcome outcome) {
      if (!announced.compareAndSet(false, true)) {
        return outcome;
      }
      return note.isEmpty() ? outcome : outcome.prefixed(note);
    }
  }
}
