package dev.corral.egress;

import io.vertx.core.net.NetSocket;
import java.util.ArrayList;
import java.util.List;

/**
 * What a sandbox's proxied connection runs when it closes: its place in the sandbox's count given
 * back, and what a request under way on it registered (a git request's connection to its host,
 * which must not outlive the sandbox's). A connection has one close handler; this is it.
 */
final class Closing {

  private final List<Runnable> actions = new ArrayList<>(2);
  private boolean closed;

  private Closing() {}

  /** Runs {@code first}, then whatever is added, when {@code connection} closes. */
  static Closing of(NetSocket connection, Runnable first) {
    Closing closing = new Closing();
    closing.add(first);
    connection.closeHandler(ignored -> closing.run());
    return closing;
  }

  /** Runs {@code action} when the connection closes, or now if it has. */
  void add(Runnable action) {
    synchronized (this) {
      if (!closed) {
        actions.add(action);
        return;
      }
    }
    action.run();
  }

  /** Whether the connection has closed. */
  synchronized boolean closed() {
    return closed;
  }

  private void run() {
    List<Runnable> due;
    synchronized (this) {
      closed = true;
      due = List.copyOf(actions);
      actions.clear();
    }
    due.forEach(Runnable::run);
  }
}
