package dev.corral.sandbox.local;

import dev.corral.common.DaemonThreads;
import java.io.IOException;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

/**
 * Starts the processes that must live as long as corral does, from one thread that never ends.
 * Bubblewrap runs with {@code --die-with-parent}, whose signal ({@code PR_SET_PDEATHSIG}) the
 * kernel sends when the <em>thread</em> that started the process ends, not the process: a sandbox
 * started from a pooled thread was killed when that thread sat idle past its keep-alive. This
 * thread is the one parent of every sandbox; it only starts processes (a task's failure reaches its
 * caller, so the thread itself never dies), and waits for nothing else.
 */
final class Spawner {

  private static final ExecutorService THREAD =
      Executors.newSingleThreadExecutor(DaemonThreads.named("corral-sandbox-spawn"));

  private Spawner() {}

  /**
   * Blocking: {@code builder}'s process, started from the spawning thread. An interrupt waits for
   * the start (a few milliseconds) and is kept for the caller, so that no process is left behind
   * unknown.
   */
  static Process start(ProcessBuilder builder) throws IOException {
    Future<Process> started = THREAD.submit(builder::start);
    boolean interrupted = false;
    try {
      while (true) {
        try {
          return started.get();
        } catch (InterruptedException again) {
          interrupted = true;
        } catch (ExecutionException failed) {
          if (failed.getCause() instanceof IOException io) {
            throw io;
          }
          throw new IOException(String.valueOf(failed.getCause().getMessage()), failed.getCause());
        }
      }
    } finally {
      if (interrupted) {
        Thread.currentThread().interrupt();
      }
    }
  }
}
