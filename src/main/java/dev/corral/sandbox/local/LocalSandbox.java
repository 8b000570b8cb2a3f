package dev.corral.sandbox.local;

import dev.corral.common.FailedPreconditionException;
import dev.corral.sandbox.driver.CallLane;
import dev.corral.sandbox.driver.ExecResult;
import dev.corral.sandbox.driver.SandboxCommand;
import dev.corral.sandbox.driver.SandboxLostException;
import io.smallrye.mutiny.Uni;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Optional;
import java.util.OptionalLong;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.LockSupport;
import org.jboss.logging.Logger;

/**
 * One bubblewrap sandbox and its launcher (pid 1 inside it, see launcher.pl), which runs each call
 * as a bash process of its own and answers on a channel no process of the sandbox can reach: the
 * status comes from the kernel, the output is counted bytes, so no output can fake the end of a
 * call.
 *
 * <p>Calls run one after another ({@link CallLane}). A call that runs out of time, is interrupted
 * (its Uni cancelled) or restarts the shell is stopped from outside the sandbox: its cgroup is
 * frozen, every process that started since the call did is killed (builtins and all, since each
 * call is a process), and the cgroup thawed; without a cgroup the kill repeats until none is left.
 * Processes started by earlier calls keep running. Blocking work runs on the driver's I/O threads.
 */
final class LocalSandbox {

  private static final Logger LOGGER = Logger.getLogger(LocalSandbox.class);
  private static final int HEADER_LIMIT = 256;
  private static final int MESSAGE_LIMIT = 4096;
  private static final int WAITING_CALLS = 64;

  /** A stopped call whose answer takes longer than this means a broken sandbox. */
  private static final Duration STOP_GRACE = Duration.ofSeconds(3);

  /** What a call did not answer in, past its own time limit and the stop grace, is lost. */
  private static final Duration ANSWER_GRACE = Duration.ofSeconds(10);

  enum Stop {
    TIMED_OUT,
    INTERRUPTED,
    RELEASED
  }

  private final Process process;
  private final ProcessHandle launcher;
  private final InputStream answers;
  private final OutputStream requests;
  private final Optional<SandboxCgroup> cgroup;
  private final int uid;
  private final ExecutorService io;
  private final ScheduledExecutorService timer;
  private final CallLane lane = new CallLane(WAITING_CALLS);
  private final AtomicLong calls = new AtomicLong();
  private final AtomicBoolean dead = new AtomicBoolean();
  private volatile String id = "(warm)";
  private volatile Instant assignedAt;
  private volatile String endedBecause;

  private LocalSandbox(
      Process process,
      ProcessHandle launcher,
      Optional<SandboxCgroup> cgroup,
      int uid,
      ExecutorService io,
      ScheduledExecutorService timer,
      Instant startedAt) {
    this.process = process;
    this.launcher = launcher;
    this.answers = process.getInputStream();
    this.requests = process.getOutputStream();
    this.cgroup = cgroup;
    this.uid = uid;
    this.io = io;
    this.timer = timer;
    this.assignedAt = startedAt;
  }

  /**
   * Blocking: starts {@code argv} (bubblewrap and the launcher) and waits until the launcher says
   * it is ready.
   *
   * @throws FailedPreconditionException if the sandbox cannot start (with bubblewrap's reason)
   */
  static LocalSandbox start(
      List<String> argv,
      Optional<SandboxCgroup> cgroup,
      int uid,
      Duration timeout,
      ExecutorService io,
      ScheduledExecutorService timer,
      Instant now) {
    Process process;
    try {
      ProcessBuilder builder = new ProcessBuilder(argv).redirectErrorStream(true);
      builder.environment().clear();
      process = builder.start();
    } catch (IOException e) {
      throw new FailedPreconditionException("the sandbox could not start: " + e.getMessage());
    }
    ScheduledFuture<?> slow =
        timer.schedule(process::destroyForcibly, timeout.toMillis(), TimeUnit.MILLISECONDS);
    try {
      String hello = readLine(process.getInputStream());
      if (!"H 1".equals(hello)) {
        String rest = new String(readAtMost(process.getInputStream()), StandardCharsets.UTF_8);
        throw new IOException((hello == null ? "" : hello + "\n") + rest);
      }
      ProcessHandle launcher =
          process
              .toHandle()
              .children()
              .findFirst()
              .orElseThrow(() -> new IOException("its launcher is gone"));
      return new LocalSandbox(process, launcher, cgroup, uid, io, timer, now);
    } catch (IOException failure) {
      kill(process);
      throw new FailedPreconditionException(
          "the sandbox could not start: " + failure.getMessage().strip());
    } finally {
      slow.cancel(false);
    }
  }

  String id() {
    return id;
  }

  /** Gives a started sandbox the id of the sandbox it now is. */
  void assign(String sandboxId, Instant now) {
    this.id = sandboxId;
    this.assignedAt = now;
  }

  /** When it became the sandbox it is. */
  Instant assignedAt() {
    return assignedAt;
  }

  int uid() {
    return uid;
  }

  Optional<SandboxCgroup> cgroup() {
    return cgroup;
  }

  boolean alive() {
    return !dead.get() && process.isAlive();
  }

  /**
   * Runs {@code command} once the calls before it have ended. Cancelling the Uni stops the call:
   * every process it started is killed.
   *
   * @throws SandboxLostException (in the Uni) if the sandbox ends or breaks during the call
   */
  Uni<ExecResult> run(SandboxCommand command) {
    return lane.submit(new Exec(command));
  }

  /**
   * Stops every process of the sandbox but its launcher, then runs {@code reset} (which forgets the
   * persistent shell), in the lane like any call.
   */
  Uni<ExecResult> restart(SandboxCommand reset) {
    return lane.submit(
        new CallLane.Call<>() {
          private final Exec exec = new Exec(reset);

          @Override
          public Uni<ExecResult> start() {
            return Uni.createFrom()
                .item(
                    () -> {
                      stopSince(0);
                      return exec.execute();
                    })
                .runSubscriptionOn(io);
          }

          @Override
          public void interrupt() {
            exec.interrupt();
          }
        });
  }

  /** Ends the sandbox: its launcher and with it every process inside. */
  void kill(String because) {
    if (dead.compareAndSet(false, true)) {
      endedBecause = because;
    }
    kill(process);
  }

  private static void kill(Process process) {
    process.toHandle().descendants().forEach(ProcessHandle::destroyForcibly);
    process.destroyForcibly();
  }

  /** A call: its request, its answer, and how it is stopped. */
  private final class Exec implements CallLane.Call<ExecResult> {
    private final SandboxCommand command;
    private final String callId = Long.toString(calls.incrementAndGet());
    private long since;
    private boolean started;
    private boolean answered;
    private Stop stop;

    Exec(SandboxCommand command) {
      this.command = command;
    }

    @Override
    public Uni<ExecResult> start() {
      return Uni.createFrom().item(this::execute).runSubscriptionOn(io);
    }

    @Override
    public void interrupt() {
      io.execute(() -> stop(Stop.INTERRUPTED));
    }

    /** Blocking: sends the call, waits for its answer. */
    ExecResult execute() {
      long oomKillsBefore = cgroup.map(SandboxCgroup::oomKills).orElse(0L);
      synchronized (this) {
        if (stop != null) {
          return new ExecResult(137, new byte[0], 0, false, false);
        }
        requireAlive();
        // Everything the call starts begins after this tick (or after its bash, if earlier).
        since = ProcStat.nowTicks() - 1;
        send();
      }
      ScheduledFuture<?> deadline =
          timer.schedule(
              () -> io.execute(() -> stop(Stop.TIMED_OUT)),
              command.timeout().toMillis(),
              TimeUnit.MILLISECONDS);
      ScheduledFuture<?> silent =
          timer.schedule(
              () -> lose("it did not answer a call within its time limit"),
              command.timeout().plus(STOP_GRACE).plus(ANSWER_GRACE).toMillis(),
              TimeUnit.MILLISECONDS);
      try {
        Answer answer = read();
        boolean outOfMemory = cgroup.map(SandboxCgroup::oomKills).orElse(0L) > oomKillsBefore;
        synchronized (this) {
          answered = true;
          return answer.result(stop == Stop.TIMED_OUT, outOfMemory);
        }
      } catch (IOException broken) {
        String reason = endedBecause != null ? endedBecause : "its launcher stopped answering";
        kill(reason);
        throw new SandboxLostException(id, reason);
      } finally {
        deadline.cancel(false);
        silent.cancel(false);
      }
    }

    /**
     * The call started: its bash started at {@code startTicks}; a stop asked for meanwhile runs.
     */
    private void started(long startTicks) {
      Stop pending;
      synchronized (this) {
        since = Math.min(since, startTicks);
        started = true;
        pending = stop;
      }
      if (pending != null) {
        stopSince(since);
        expectAnswerSoon();
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
          return; // applied once the launcher says the call started
        }
      }
      stopSince(since);
      expectAnswerSoon();
    }

    private void expectAnswerSoon() {
      timer.schedule(
          () -> {
            synchronized (this) {
              if (answered) {
                return;
              }
            }
            lose("a call it was told to stop did not end");
          },
          STOP_GRACE.toMillis(),
          TimeUnit.MILLISECONDS);
    }

    private void send() {
      StringBuilder header = new StringBuilder();
      header
          .append("C ")
          .append(callId)
          .append(' ')
          .append(command.outputCap())
          .append(' ')
          .append(command.keepTail() ? '1' : '0')
          .append(' ')
          .append(1 + command.args().size())
          .append('\n');
      try {
        ByteArrayOutputStream request = new ByteArrayOutputStream();
        request.write(header.toString().getBytes(StandardCharsets.US_ASCII));
        part(request, command.script().getBytes(StandardCharsets.UTF_8));
        for (byte[] arg : command.args()) {
          part(request, arg);
        }
        requests.write(request.toByteArray());
        requests.flush();
      } catch (IOException broken) {
        String reason = endedBecause != null ? endedBecause : "its launcher is gone";
        kill(reason);
        throw new SandboxLostException(id, reason);
      }
    }

    private Answer read() throws IOException {
      String[] fields = header();
      try {
        if (fields[0].equals("S") && fields.length == 3 && fields[1].equals(callId)) {
          started(Long.parseLong(fields[2]));
          fields = header();
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
              answers.readNBytes(length),
              null);
        }
        if (fields[0].equals("E") && fields.length == 3 && fields[1].equals(callId)) {
          int length = Integer.parseInt(fields[2]);
          if (length < 0 || length > MESSAGE_LIMIT) {
            throw new IOException("an over-long refusal");
          }
          return new Answer(
              126,
              0,
              0,
              new byte[0],
              new String(answers.readNBytes(length), StandardCharsets.UTF_8));
        }
      } catch (NumberFormatException bad) {
        throw new IOException("a malformed answer");
      }
      throw new IOException("an unexpected answer: " + String.join(" ", fields));
    }
  }

  private String[] header() throws IOException {
    String header = readLine(answers);
    if (header == null) {
      throw new IOException("end of the launcher's output");
    }
    return header.split(" ");
  }

  /** What the launcher answered. */
  private record Answer(int code, int signal, long total, byte[] output, String refusal) {

    ExecResult result(boolean timedOut, boolean outOfMemory) {
      if (refusal != null) {
        byte[] text = ("corral: " + refusal).getBytes(StandardCharsets.UTF_8);
        return new ExecResult(126, text, text.length, false, outOfMemory);
      }
      int exitCode = code >= 0 ? code : 128 + signal;
      return new ExecResult(exitCode, output, total, timedOut, outOfMemory);
    }
  }

  /**
   * Kills every process of the sandbox that started at or after {@code since} (clock ticks since
   * boot), the launcher aside: with a cgroup, frozen first so that none can start another; without,
   * again and again until none is left.
   */
  void stopSince(long since) {
    try {
      if (cgroup.isPresent()) {
        SandboxCgroup frozen = cgroup.get();
        frozen.freeze();
        try {
          for (long pid : frozen.processes()) {
            killIfStartedSince(pid, since);
          }
        } finally {
          frozen.thaw();
        }
        return;
      }
      long deadline = System.nanoTime() + 1_000_000_000L;
      while (launcher.descendants().anyMatch(handle -> killIfStartedSince(handle.pid(), since))
          && System.nanoTime() < deadline) {
        LockSupport.parkNanos(2_000_000);
      }
    } catch (IOException | RuntimeException failure) {
      LOGGER.warnf("sandbox=%s its calls could not be stopped: %s", id, failure.getMessage());
      lose("its processes could not be stopped (" + failure.getMessage() + ")");
    }
  }

  /** Kills {@code pid} if it is a process of the sandbox that started since; true if it did. */
  private boolean killIfStartedSince(long pid, long since) {
    if (pid == launcher.pid() || pid == process.pid()) {
      return false;
    }
    OptionalLong started = ProcStat.startTicks(pid);
    if (started.isEmpty() || started.getAsLong() < since) {
      return false;
    }
    ProcessHandle.of(pid).ifPresent(ProcessHandle::destroyForcibly);
    return true;
  }

  private void lose(String reason) {
    if (!dead.get()) {
      LOGGER.warnf("sandbox=%s is lost: %s", id, reason);
      kill(reason);
    }
  }

  private void requireAlive() {
    if (!alive()) {
      throw new SandboxLostException(
          id, endedBecause != null ? endedBecause : "its processes have exited");
    }
  }

  private static void part(ByteArrayOutputStream request, byte[] bytes) throws IOException {
    request.write((bytes.length + "\n").getBytes(StandardCharsets.US_ASCII));
    request.write(bytes);
  }

  /** One line of at most {@link #HEADER_LIMIT} bytes, without its newline; null at the end. */
  private static String readLine(InputStream in) throws IOException {
    ByteArrayOutputStream line = new ByteArrayOutputStream();
    while (true) {
      int b = in.read();
      if (b < 0) {
        return line.size() == 0 ? null : line.toString(StandardCharsets.UTF_8);
      }
      if (b == '\n') {
        return line.toString(StandardCharsets.UTF_8);
      }
      if (line.size() >= HEADER_LIMIT) {
        throw new IOException("an over-long line: " + line.toString(StandardCharsets.UTF_8));
      }
      line.write(b);
    }
  }

  private static byte[] readAtMost(InputStream in) throws IOException {
    return in.readNBytes(MESSAGE_LIMIT);
  }
}
