package dev.corral.sandbox.local;

import dev.corral.common.CallLane;
import dev.corral.common.LogFields;
import dev.corral.sandbox.driver.ExecResult;
import dev.corral.sandbox.driver.SandboxCommand;
import io.smallrye.mutiny.Uni;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.jboss.logging.Logger;

/**
 * One call in a local sandbox, from its request to the launcher's answer, and how it is stopped.
 *
 * <p>Before the call is sent, corral lists the sandbox's processes; the launcher then names the
 * bash that runs it. A call that runs out of time or is interrupted is stopped by the {@link
 * Stopper}: what is in that bash's session, or was not there before and descends from nothing that
 * was. Its answer comes once the stop is over, or the sandbox is lost.
 */
final class LauncherCall implements CallLane.Call<ExecResult> {

  private static final Logger LOGGER = Logger.getLogger(LauncherCall.class);
  private static final int MESSAGE_LIMIT = 4096;

  /** A stopped call whose answer takes longer than this means a broken sandbox. */
  private static final Duration STOP_GRACE = Duration.ofSeconds(3);

  /** What a call did not answer in, past its own time limit and the stop grace, is lost. */
  private static final Duration ANSWER_GRACE = Duration.ofSeconds(10);

  enum Stop {
    TIMED_OUT,
    INTERRUPTED
  }

  private final LocalSandbox sandbox;
  private final SandboxCommand command;
  private final String callId;
  private final Runnable before;
  private long root = -1;
  private Stopper.Before earlier;
  private CompletableFuture<Void> stopping;
  private boolean started;
  private boolean answered;
  private Stop stop;

  /**
   * @param before runs (blocking) just before the call is sent
   */
  LauncherCall(LocalSandbox sandbox, SandboxCommand command, String callId, Runnable before) {
    this.sandbox = sandbox;
    this.command = command;
    this.callId = callId;
    this.before = before;
  }

  @Override
  public Uni<ExecResult> start() {
    return Uni.createFrom().item(this::execute).runSubscriptionOn(sandbox.io());
  }

  @Override
  public void interrupt() {
    sandbox.io().execute(() -> stop(Stop.INTERRUPTED));
  }

  /** Blocking: sends the call, waits for its answer. */
  ExecResult execute() {
    before.run();
    MemoryCount memoryBefore = MemoryCount.atStart(sandbox);
    // What runs now is not the call's: listed before the launcher may start it.
    Stopper.Before listed = processesBefore();
    synchronized (this) {
      if (stop != null) {
        return new ExecResult(137, new byte[0], 0, false, ExecResult.OutOfMemory.NO, false);
      }
      sandbox.requireAlive();
      earlier = listed;
      send();
    }
    ScheduledFuture<?> deadline =
        sandbox
            .timer()
            .schedule(
                () -> sandbox.io().execute(() -> stop(Stop.TIMED_OUT)),
                command.timeout().toMillis(),
                TimeUnit.MILLISECONDS);
    ScheduledFuture<?> silent =
        sandbox
            .timer()
            .schedule(
                () -> sandbox.lose("it did not answer a call within its time limit"),
                command.timeout().plus(STOP_GRACE).plus(ANSWER_GRACE).toMillis(),
                TimeUnit.MILLISECONDS);
    try {
      Answer answer = read();
      Stop stopped = awaitStop();
      return answer.result(stopped == Stop.TIMED_OUT, memoryBefore.since(sandbox));
    } catch (IOException broken) {
      throw sandbox.lost(
          switch (memoryBefore.since(sandbox)) {
            case SANDBOX_LIMIT ->
                "it ran out of memory and the kernel stopped its launcher (files in /workspace,"
                    + " /tmp and /dev/shm count against its memory too, even empty ones)";
            case SHARED ->
                "the memory it shares with the host's other sandboxes ran out, below its own"
                    + " limit, and the kernel stopped its launcher";
            case NO -> "its launcher stopped answering";
          });
    } finally {
      deadline.cancel(false);
      silent.cancel(false);
    }
  }

  /** Stops the call: every process it started is killed. Its answer then comes at once. */
  void stop(Stop reason) {
    synchronized (this) {
      if (stop != null || answered) {
        return;
      }
      stop = reason;
      if (!started) {
        return; // applied once the launcher names the call's bash
      }
      stopping = new CompletableFuture<>();
    }
    stopNow();
  }

  /**
   * The launcher names the call's bash ({@code nsPid} in the sandbox); a stop asked for meanwhile
   * runs now.
   */
  private void started(long nsPid) {
    long host = sandbox.stopper().hostPidOf(nsPid);
    boolean pending;
    synchronized (this) {
      root = host;
      earlier = earlier.without(host);
      started = true;
      pending = stop != null;
      if (pending) {
        stopping = new CompletableFuture<>();
      }
    }
    if (pending) {
      stopNow();
    }
  }

  private Stopper.Before processesBefore() {
    try {
      return sandbox.stopper().before();
    } catch (IOException | RuntimeException failure) {
      throw sandbox.lost("its processes could not be listed (" + failure.getMessage() + ")");
    }
  }

  /**
   * Kills the call's processes. The launcher is told first, so that it starts no standby bash that
   * the stop could take for one of the call's.
   */
  private void stopNow() {
    try {
      sandbox.send(("K " + callId + "\n").getBytes(StandardCharsets.US_ASCII));
      sandbox.stopper().call(root, earlier);
    } catch (IOException | RuntimeException failure) {
      LogFields.sandbox(sandbox.id())
          .log(
              () ->
                  LOGGER.warnf(
                      "sandbox=%s a call could not be stopped: %s",
                      sandbox.id(), failure.getMessage()));
      sandbox.lose("its processes could not be stopped (" + failure.getMessage() + ")");
      return;
    } finally {
      stopping.complete(null);
    }
    sandbox
        .timer()
        .schedule(
            () -> {
              synchronized (this) {
                if (answered) {
                  return;
                }
              }
              sandbox.lose("a call it was told to stop did not end");
            },
            STOP_GRACE.toMillis(),
            TimeUnit.MILLISECONDS);
  }

  /**
   * A call stopped answers once its stop is over: the next call must not meet what it kills. Says
   * why it was stopped, if it was.
   */
  private Stop awaitStop() {
    CompletableFuture<Void> stopped;
    Stop reason;
    synchronized (this) {
      answered = true; // from now on a stop asked for does nothing
      stopped = stopping;
      reason = stop;
    }
    if (stopped == null) {
      return reason;
    }
    try {
      stopped.get(STOP_GRACE.toMillis(), TimeUnit.MILLISECONDS);
      return reason;
    } catch (InterruptedException interrupted) {
      Thread.currentThread().interrupt();
      throw sandbox.lost("interrupted while its call was being stopped");
    } catch (ExecutionException | TimeoutException slow) {
      throw sandbox.lost("a call it was told to stop was not stopped in time");
    }
  }

  private void send() {
    String header =
        "C "
            + callId
            + ' '
            + command.outputCap()
            + ' '
            + (command.keepTail() ? '1' : '0')
            + ' '
            + (1 + command.args().size())
            + '\n';
    ByteArrayOutputStream request = new ByteArrayOutputStream();
    request.writeBytes(header.getBytes(StandardCharsets.US_ASCII));
    part(request, command.script().getBytes(StandardCharsets.UTF_8));
    command.args().forEach(arg -> part(request, arg));
    sandbox.send(request.toByteArray());
  }

  private static void part(ByteArrayOutputStream request, byte[] bytes) {
    request.writeBytes((bytes.length + "\n").getBytes(StandardCharsets.US_ASCII));
    request.writeBytes(bytes);
  }

  private Answer read() throws IOException {
    String[] fields = sandbox.header();
    try {
      if (fields[0].equals("S") && fields.length == 3 && fields[1].equals(callId)) {
        started(Long.parseLong(fields[2]));
        fields = sandbox.header();
      }
      if (fields[0].equals("D") && fields.length == 6 && fields[1].equals(callId)) {
        int length = Integer.parseInt(fields[5]);
        if (length < 0 || length > command.outputCap()) {
          throw new IOException("an answer longer than the call's output cap");
        }
        return new Answer(
            Integer.parseInt(fields[2]),
            Integer.parseInt(fields[3]),
            Long.parseLong(fields[4]),
            sandbox.body(length),
            null);
      }
      if (fields[0].equals("E") && fields.length == 3 && fields[1].equals(callId)) {
        int length = Integer.parseInt(fields[2]);
        if (length < 0 || length > MESSAGE_LIMIT) {
          throw new IOException("an over-long refusal");
        }
        return new Answer(
            126, 0, 0, new byte[0], new String(sandbox.body(length), StandardCharsets.UTF_8));
      }
    } catch (NumberFormatException bad) {
      throw new IOException("a malformed answer");
    }
    throw new IOException("an unexpected answer: " + String.join(" ", fields));
  }

  /** The sandbox's counts of OOM kills and of hits on its own memory limit, at one moment. */
  private record MemoryCount(long oomKills, long limitHits) {

    /** The counts as a call starts (the peak of usage restarted). */
    static MemoryCount atStart(LocalSandbox sandbox) {
      return sandbox
          .cgroup()
          .map(cgroup -> new MemoryCount(cgroup.oomKills(), cgroup.restartPeak()))
          .orElse(new MemoryCount(0, 0));
    }

    /**
     * Whether the kernel stopped a process of the sandbox since this count, and whose memory ran
     * out: the sandbox's own limit if it was reached meanwhile, else what it shares.
     */
    ExecResult.OutOfMemory since(LocalSandbox sandbox) {
      // the limit's files are read only when the kernel stopped something: most calls end
      // reading one file
      Optional<SandboxCgroup> cgroup = sandbox.cgroup();
      if (cgroup.isEmpty() || cgroup.get().oomKills() <= oomKills) {
        return ExecResult.OutOfMemory.NO;
      }
      return cgroup.get().limitHits() > limitHits
          ? ExecResult.OutOfMemory.SANDBOX_LIMIT
          : ExecResult.OutOfMemory.SHARED;
    }
  }

  /** What the launcher answered. */
  private record Answer(int code, int signal, long total, byte[] output, String refusal) {

    ExecResult result(boolean timedOut, ExecResult.OutOfMemory memory) {
      if (refusal != null) {
        byte[] text = ("corral: " + refusal).getBytes(StandardCharsets.UTF_8);
        return new ExecResult(126, text, text.length, false, memory, true);
      }
      int exitCode = code >= 0 ? code : 128 + signal;
      return new ExecResult(exitCode, output, total, timedOut, memory, false);
    }
  }
}
