package dev.corral.sandbox.local;

import dev.corral.common.CallLane;
import dev.corral.common.FailedPreconditionException;
import dev.corral.common.LogFields;
import dev.corral.sandbox.driver.ExecResult;
import dev.corral.sandbox.driver.SandboxCommand;
import dev.corral.sandbox.driver.SandboxLostException;
import io.smallrye.mutiny.Uni;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import org.jboss.logging.Logger;

/**
 * One bubblewrap sandbox and its launcher (pid 1 inside it, see launcher.pl), which runs each call
 * as a bash process of its own and answers on a channel no process of the sandbox can reach: the
 * status comes from the kernel, the output is counted bytes, so no output can fake the end of a
 * call. Calls run one after another ({@link CallLane}); each is a {@link LauncherCall}, stopped
 * from outside the sandbox by the {@link Stopper}. Blocking work runs on the driver's I/O threads.
 */
final class LocalSandbox {

  private static final Logger LOGGER = Logger.getLogger(LocalSandbox.class);
  private static final int HEADER_LIMIT = 256;
  private static final int MESSAGE_LIMIT = 4096;
  private static final int WAITING_CALLS = 64;

  private final Process process;
  private final InputStream answers;
  private final OutputStream requests;
  private final Optional<SandboxCgroup> cgroup;
  private final Optional<Path> egress;
  private final Stopper stopper;
  private final int uid;
  private final ExecutorService io;
  private final ScheduledExecutorService timer;
  private final CallLane lane = CallLane.ofSandbox(WAITING_CALLS, SandboxCommand.MAX_WAITING_BYTES);
  private final AtomicLong calls = new AtomicLong();
  private final AtomicBoolean dead = new AtomicBoolean();
  private volatile String id = "(warm)";
  private volatile Instant assignedAt;
  private volatile String endedBecause;

  private LocalSandbox(
      Process process,
      ProcessHandle launcher,
      Optional<SandboxCgroup> cgroup,
      Optional<Path> egress,
      int uid,
      ExecutorService io,
      ScheduledExecutorService timer,
      Instant startedAt) {
    this.process = process;
    this.answers = process.getInputStream();
    this.requests = process.getOutputStream();
    this.cgroup = cgroup;
    this.egress = egress;
    this.stopper = new Stopper(process.toHandle(), launcher, cgroup);
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
      Optional<Path> egress,
      int uid,
      Duration timeout,
      ExecutorService io,
      ScheduledExecutorService timer,
      Instant now) {
    Process process;
    try {
      ProcessBuilder builder = new ProcessBuilder(argv).redirectErrorStream(true);
      builder.environment().clear();
      process = Spawner.start(builder);
    } catch (IOException e) {
      throw new FailedPreconditionException("the sandbox could not start: " + e.getMessage());
    }
    ScheduledFuture<?> slow =
        timer.schedule(process::destroyForcibly, timeout.toMillis(), TimeUnit.MILLISECONDS);
    try {
      String hello = readLine(process.getInputStream());
      if (!"H 1".equals(hello)) {
        String rest =
            new String(process.getInputStream().readNBytes(MESSAGE_LIMIT), StandardCharsets.UTF_8);
        throw new IOException((hello == null ? "" : hello + "\n") + rest);
      }
      ProcessHandle launcher =
          process
              .toHandle()
              .children()
              .findFirst()
              .orElseThrow(() -> new IOException("its launcher is gone"));
      return new LocalSandbox(process, launcher, cgroup, egress, uid, io, timer, now);
    } catch (IOException failure) {
      destroy(process);
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

  /** The directory bound at /run/corral, where its egress proxy socket appears once served. */
  Optional<Path> egress() {
    return egress;
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
    return lane.submit(new LauncherCall(this, command, nextCallId(), () -> {}), command.bytes());
  }

  /**
   * Stops every process of the sandbox but its launcher, then runs {@code reset} (which forgets the
   * persistent shell), in the lane like any call.
   */
  Uni<ExecResult> restart(SandboxCommand reset) {
    return lane.submit(new LauncherCall(this, reset, nextCallId(), this::stopAll));
  }

  /** Ends the sandbox: its launcher and with it every process inside. */
  void kill(String because) {
    if (dead.compareAndSet(false, true)) {
      endedBecause = because;
    }
    destroy(process);
  }

  // --- for its calls ---------------------------------------------------------------------------

  ExecutorService io() {
    return io;
  }

  ScheduledExecutorService timer() {
    return timer;
  }

  Stopper stopper() {
    return stopper;
  }

  void requireAlive() {
    if (!alive()) {
      throw new SandboxLostException(
          id, endedBecause != null ? endedBecause : "its processes have exited");
    }
  }

  /** Writes to the launcher; a launcher that is gone makes the sandbox lost. */
  void send(byte[] bytes) {
    try {
      synchronized (requests) {
        requests.write(bytes);
        requests.flush();
      }
    } catch (IOException broken) {
      throw lost("its launcher is gone");
    }
  }

  /** The next answer's header line, split. */
  String[] header() throws IOException {
    String header = readLine(answers);
    if (header == null) {
      throw new IOException("end of the launcher's output");
    }
    return header.split(" ");
  }

  byte[] body(int length) throws IOException {
    return answers.readNBytes(length);
  }

  /** Ends the sandbox for {@code reason} (unless it ended already for another) and says why. */
  SandboxLostException lost(String reason) {
    String why = endedBecause != null ? endedBecause : reason;
    kill(why);
    return new SandboxLostException(id, why);
  }

  void lose(String reason) {
    if (!dead.get()) {
      LogFields.sandbox(id).log(() -> LOGGER.warnf("sandbox=%s is lost: %s", id, reason));
      kill(reason);
    }
  }

  private void stopAll() {
    try {
      stopper.all();
    } catch (IOException | RuntimeException failure) {
      lose("its processes could not be stopped (" + failure.getMessage() + ")");
    }
  }

  private String nextCallId() {
    return Long.toString(calls.incrementAndGet());
  }

  private static void destroy(Process process) {
    process.toHandle().descendants().forEach(ProcessHandle::destroyForcibly);
    process.destroyForcibly();
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
}
