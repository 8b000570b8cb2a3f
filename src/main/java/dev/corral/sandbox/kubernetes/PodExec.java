package dev.corral.sandbox.kubernetes;

import dev.corral.common.CallLane;
import dev.corral.common.UnavailableException;
import dev.corral.sandbox.driver.ExecResult;
import dev.corral.sandbox.driver.OutputBuffer;
import dev.corral.sandbox.driver.SandboxCommand;
import dev.corral.sandbox.driver.SandboxConfig;
import dev.corral.sandbox.driver.SandboxLostException;
import dev.corral.sandbox.driver.ShellNotResetException;
import io.smallrye.mutiny.Multi;
import io.smallrye.mutiny.Uni;
import jakarta.enterprise.context.ApplicationScoped;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ThreadLocalRandom;
import org.jboss.logging.Logger;

/**
 * Runs a {@link SandboxCommand} in a sandbox pod through the exec API (see {@link
 * KubernetesScripts}). The sandbox is lost if its pod is gone or no longer runs: checked when the
 * exec fails, ends without an exit status, or ends by a signal (the kubelet kills a deleted pod's
 * processes).
 */
@ApplicationScoped
class PodExec {

  private static final Duration UPLOAD_TIMEOUT = Duration.ofSeconds(30);
  private static final Duration KILL_TIMEOUT = Duration.ofSeconds(10);
  private static final int WAITING_CALLS = 64;
  private static final Logger LOGGER = Logger.getLogger(PodExec.class);

  /** How often, and how many times at most, an interrupted call is stopped until it has ended. */
  private static final Duration INTERRUPT_STOP_INTERVAL = Duration.ofMillis(500);

  private static final int INTERRUPT_STOPS = 60;

  private final KubernetesGateway gateway;
  private final SandboxConfig config;
  private final Map<String, CallLane> lanes = new ConcurrentHashMap<>();

  /**
   * The last stop asked of each pod, while it runs: a stop waits for the one before it. Two stop
   * scripts at once in one pod would each find the other started in its window and kill it, and a
   * killed stop gives the sandbox up (an interrupt's stops and a call's own stop at its time limit,
   * or after its exec broke, can come together).
   */
  private final Map<String, CompletableFuture<Void>> stops = new ConcurrentHashMap<>();

  PodExec(KubernetesGateway gateway, SandboxConfig config) {
    this.gateway = gateway;
    this.config = config;
  }

  /**
   * Runs {@code command} in the pod once the calls before it have ended. Running out of time, or
   * cancelling the Uni, kills every process the call started in the pod (not just the exec stream).
   */
  Uni<ExecResult> run(String sandboxId, String pod, SandboxCommand command) {
    return lane(pod).submit(new PodCall(sandboxId, pod, command), command.bytes());
  }

  /**
   * One call of a pod. Its stop window opens when it starts, not when it was queued: processes an
   * earlier call left running while this one waited are not its own. An interrupt stops what the
   * call started so far and goes on stopping until the call has ended, because the call's process
   * may not exist yet (its arguments still uploading, its exec still opening) and would then start
   * after the first stop and run to its time limit.
   */
  private final class PodCall implements CallLane.Call<ExecResult> {
    private final String sandboxId;
    private final String pod;
    private final SandboxCommand command;
    private volatile Started started;
    private volatile boolean interrupted;
    private boolean ended;
    private CompletableFuture<Void> stopping = CompletableFuture.completedFuture(null);

    PodCall(String sandboxId, String pod, SandboxCommand command) {
      this.sandboxId = sandboxId;
      this.pod = pod;
      this.command = command;
    }

    /**
     * The call's exec, then the wait for a stop still under way: the lane starts the next call when
     * this ends, and a stop of this call that ran on would kill the next call's processes too.
     */
    @Override
    public Uni<ExecResult> start() {
      started = Started.now();
      return execute(sandboxId, pod, command, started, () -> interrupted)
          .onItemOrFailure()
          .call((item, failure) -> Uni.createFrom().completionStage(end()))
          .call(result -> interrupted && !result.timedOut() ? stoppedAfterInterrupt() : none());
    }

    /**
     * What an interrupted call started is gone once it has ended, or the sandbox is given up: its
     * stops run as the sandbox's own user, so its code can kill each of them (and then the call's
     * shell), and a call that ends that way left its processes running. Nobody may be waiting for
     * the call's answer (its caller cancelled), so the pod is deleted here, as the local driver
     * ends a sandbox it gives up.
     */
    private Uni<Void> stoppedAfterInterrupt() {
      return saysStopped(pod, started)
          .flatMap(
              stopped ->
                  stopped
                      ? none()
                      : giveUp(
                          sandboxId, pod, "what an interrupted call started could not be stopped"));
    }

    @Override
    public void interrupt() {
      interrupted = true;
      stopUntilEnded(INTERRUPT_STOPS);
    }

    private synchronized CompletableFuture<Void> end() {
      ended = true;
      return stopping;
    }

    /** A new stop, or null once the call has ended. */
    private synchronized CompletableFuture<Void> beginStop() {
      if (ended) {
        return null;
      }
      stopping = new CompletableFuture<>();
      return stopping;
    }

    private void stopUntilEnded(int stopsLeft) {
      if (started == null) {
        return; // interrupted before it started: it never will (see execute), and a stop since 0
        // would be a stop of everything in the pod
      }
      CompletableFuture<Void> stop = stopsLeft == 0 ? null : beginStop();
      if (stop == null) {
        return;
      }
      stopSince(pod, started)
          .onTermination()
          .invoke(() -> stop.complete(null))
          .onItem()
          .delayIt()
          .by(INTERRUPT_STOP_INTERVAL)
          .subscribe()
          .with(
              ignored -> stopUntilEnded(stopsLeft - 1),
              failure ->
                  LOGGER.warnf(
                      "pod %s: an interrupted call could not be stopped: %s",
                      pod, failure.getMessage()));
    }
  }

  /** Stops every process of the pod and forgets its persistent shell, after the calls before. */
  Uni<Void> resetShell(String sandboxId, String pod) {
    return lane(pod)
        .submit(
            new CallLane.Call<ExecResult>() {
              @Override
              public Uni<ExecResult> start() {
                return gateway
                    .exec(
                        pod,
                        KubernetesScripts.stopAll(),
                        KILL_TIMEOUT,
                        new OutputBuffer(1024, false))
                    // its exit is not checked: the pod's first process starts its sleep
                    // again as soon as it is killed, so a stop of everything rarely finds nothing
                    .flatMap(
                        stopped ->
                            execute(
                                    sandboxId,
                                    pod,
                                    SandboxCommand.resetShell(),
                                    Started.now(),
                                    () -> false)
                                .invoke(reset -> ShellNotResetException.check(sandboxId, reset)));
              }

              @Override
              public void interrupt() {}
            })
        .replaceWithVoid();
  }

  /**
   * Gives the sandbox up: deletes its pod (the processes of its calls end with it) and fails with
   * why; a pod the API could not delete now is the reconciler's, as a record with no pod is.
   */
  private Uni<Void> giveUp(String sandboxId, String pod, String why) {
    LOGGER.warnf("pod %s: giving its sandbox up: %s", pod, why);
    return gateway
        .delete(pod)
        .onFailure()
        .invoke(
            failure ->
                LOGGER.warnf("pod %s: could not be deleted now: %s", pod, failure.getMessage()))
        .onItemOrFailure()
        .transformToUni(
            (ignored, failure) ->
                Uni.createFrom().<Void>failure(new SandboxLostException(sandboxId, why)));
  }

  private static Uni<Void> none() {
    return Uni.createFrom().voidItem();
  }

  /** Forgets the calls of a pod that is gone. */
  void forget(String pod) {
    lanes.remove(pod);
  }

  private CallLane lane(String pod) {
    return lanes.computeIfAbsent(
        pod, name -> CallLane.ofSandbox(WAITING_CALLS, SandboxCommand.MAX_WAITING_BYTES));
  }

  /** When a call started, on corral's clock and as elapsed time. */
  record Started(long epochMillis, long nanos) {
    static Started now() {
      return new Started(System.currentTimeMillis(), System.nanoTime());
    }
  }

  /**
   * Kills what the pod started since {@code started}, once the pod's stop before it has ended; true
   * if it says none is left running.
   */
  private Uni<Boolean> stopSince(String pod, Started started) {
    return Uni.createFrom()
        .deferred(
            () -> {
              CompletableFuture<Void> mine = new CompletableFuture<>();
              CompletableFuture<Void> before = stops.put(pod, mine);
              Uni<Void> turn =
                  before == null
                      ? Uni.createFrom().voidItem()
                      : Uni.createFrom().completionStage(before);
              return turn.chain(
                      () ->
                          gateway.exec(
                              pod,
                              KubernetesScripts.stopSince(
                                  java.time.Instant.ofEpochMilli(started.epochMillis()),
                                  Duration.ofNanos(System.nanoTime() - started.nanos())),
                              KILL_TIMEOUT,
                              new OutputBuffer(1024, false)))
                  // only the script's own word that it found nothing left: a script that was
                  // itself stopped (kill -STOP from the sandbox's code) or killed, or an exec that
                  // never ended, stopped nothing anyone knows of
                  .map(exit -> exit.code() != null && exit.code() == 0)
                  .onTermination()
                  .invoke(
                      () -> {
                        stops.remove(pod, mine);
                        mine.complete(null);
                      });
            });
  }

  /** As {@link #stopSince}, a stop that failed saying nothing either. */
  private Uni<Boolean> saysStopped(String pod, Started started) {
    return stopSince(pod, started).onFailure().recoverWithItem(false);
  }

  /** Runs {@code command} unless {@code interrupted} says, once its arguments are in, not to. */
  private Uni<ExecResult> execute(
      String sandboxId,
      String pod,
      SandboxCommand command,
      Started started,
      java.util.function.BooleanSupplier interrupted) {
    OutputBuffer output = new OutputBuffer(command.outputCap(), command.keepTail());
    return argv(pod, command)
        .flatMap(
            argv ->
                interrupted.getAsBoolean()
                    ? Uni.createFrom()
                        .failure(new UnavailableException("the call was interrupted", null))
                    : gateway.exec(pod, argv, command.timeout(), output))
        .onFailure(failure -> !(failure instanceof SandboxLostException))
        .recoverWithUni(
            failure ->
                // an exec that broke may have left its process running: it is stopped, or the
                // sandbox given up, whatever the API can say of the pod. One that never opened (or
                // whose arguments did not upload) started nothing: an API that cannot say whether
                // the pod runs fails the call, and the sandbox stays
                (failure instanceof KubernetesGateway.ExecBroke
                        ? stopAbandoned(sandboxId, pod, started)
                        : requireRunning(sandboxId, pod)
                            .chain(() -> stopAbandoned(sandboxId, pod, started)))
                    .chain(() -> Uni.createFrom().<KubernetesGateway.Exit>failure(failure)))
        .flatMap(exit -> result(sandboxId, pod, exit, output, started));
  }

  /**
   * Stops what a call whose exec failed or broke without a status started: the kubelet leaves an
   * exec's process running when its stream goes, and it would run on past the call's time limit,
   * beside the next calls. The stop comes first: an API server that cannot say whether the pod runs
   * (it restarts, which is also what breaks an exec stream) must not hold it up. A stop that does
   * not say it is done gives the sandbox up, for the pod's end if that is what the API says.
   */
  private Uni<Void> stopAbandoned(String sandboxId, String pod, Started started) {
    return saysStopped(pod, started)
        .flatMap(
            stopped ->
                stopped
                    ? none()
                    : requireRunning(sandboxId, pod)
                        .onFailure(unknown -> !(unknown instanceof SandboxLostException))
                        .recoverWithItem(() -> null)
                        .map(
                            running -> {
                              throw new SandboxLostException(
                                  sandboxId,
                                  "the exec of a call broke, and what the call started could not"
                                      + " be stopped");
                            }));
  }

  private Uni<ExecResult> result(
      String sandboxId,
      String pod,
      KubernetesGateway.Exit exit,
      OutputBuffer output,
      Started started) {
    if (exit.timedOut()) {
      return stopSince(pod, started)
          .map(
              stopped -> {
                if (!stopped) {
                  // "stopped" must mean stopped: the sandbox is given up rather than said so
                  throw new SandboxLostException(
                      sandboxId,
                      "processes of a call that ran out of time were still running 2 s after"
                          + " they were first killed");
                }
                return new ExecResult(137, output.bytes(), output.total(), true, false);
              });
    }
    Uni<Void> checked =
        exit.code() == null
            ? stopAbandoned(sandboxId, pod, started)
            : exit.code() >= 128 ? requireRunning(sandboxId, pod) : none();
    return checked.map(
        ignored -> {
          if (exit.code() == null) {
            throw new UnavailableException(
                "the exec in pod " + pod + " ended without a status", null);
          }
          return new ExecResult(exit.code(), output.bytes(), output.total(), false, false);
        });
  }

  /** The exec of {@code command}; large arguments are uploaded into the pod first. */
  private Uni<List<String>> argv(String pod, SandboxCommand command) {
    int limit = config.kubernetes().execArgumentBytes();
    if (!KubernetesScripts.uploads(command, limit)) {
      return Uni.createFrom().item(KubernetesScripts.exec(command));
    }
    String prefix = Long.toHexString(ThreadLocalRandom.current().nextLong());
    List<String> files = new ArrayList<>();
    List<List<String>> chunks = new ArrayList<>();
    for (int i = 0; i < command.args().size(); i++) {
      String name = prefix + "-" + i;
      chunks.addAll(KubernetesScripts.upload(name, command.args().get(i), limit));
      files.add(name);
    }
    return Multi.createFrom()
        .iterable(chunks)
        .onItem()
        .transformToUniAndConcatenate(chunk -> upload(pod, chunk))
        .collect()
        .last()
        .replaceWith(() -> KubernetesScripts.exec(command, files));
  }

  private Uni<Void> upload(String pod, List<String> chunk) {
    OutputBuffer errors = new OutputBuffer(4096, false);
    return gateway
        .exec(pod, chunk, UPLOAD_TIMEOUT, errors)
        .invoke(
            exit -> {
              if (exit.timedOut() || exit.code() == null || exit.code() != 0) {
                throw new UnavailableException(
                    "uploading a tool input failed: "
                        + new String(errors.bytes(), StandardCharsets.UTF_8).strip(),
                    null);
              }
            })
        .replaceWithVoid();
  }

  /** Fails with {@link SandboxLostException} if the pod is gone, deleted or no longer running. */
  Uni<Void> requireRunning(String sandboxId, String pod) {
    return gateway
        .get(pod)
        .invoke(
            current -> {
              boolean deleted =
                  current.isEmpty() || current.get().getMetadata().getDeletionTimestamp() != null;
              if (deleted || !KubernetesGateway.running(current.get())) {
                throw new SandboxLostException(
                    sandboxId, deleted ? "its pod was deleted" : "its pod stopped running");
              }
            })
        .replaceWithVoid();
  }
}
