package dev.corral.api;

import io.grpc.ServerCall;
import java.util.ArrayDeque;
import java.util.function.Consumer;

/**
 * Holds a call's events until the listener that handles them exists (the call waits for an
 * asynchronous check), then replays them in order. Events and {@link #setDelegate} all run on the
 * call's Vert.x context. Few events can wait: requests flow only once the real handler asks.
 */
final class DelayedListener<Q> extends ServerCall.Listener<Q> {

  private static final int MAX_WAITING = 64;

  private final ArrayDeque<Consumer<ServerCall.Listener<Q>>> waiting = new ArrayDeque<>();
  private ServerCall.Listener<Q> delegate;
  private boolean cancelled;

  void setDelegate(ServerCall.Listener<Q> listener) {
    for (Consumer<ServerCall.Listener<Q>> event; (event = waiting.poll()) != null; ) {
      event.accept(listener);
    }
    delegate = listener;
  }

  boolean cancelled() {
    return cancelled;
  }

  @Override
  public void onMessage(Q message) {
    on(listener -> listener.onMessage(message));
  }

  @Override
  public void onHalfClose() {
    on(ServerCall.Listener::onHalfClose);
  }

  @Override
  public void onCancel() {
    cancelled = true;
    on(ServerCall.Listener::onCancel);
  }

  @Override
  public void onComplete() {
    on(ServerCall.Listener::onComplete);
  }

  @Override
  public void onReady() {
    on(ServerCall.Listener::onReady);
  }

  private void on(Consumer<ServerCall.Listener<Q>> event) {
    if (delegate != null) {
      event.accept(delegate);
    } else if (waiting.size() < MAX_WAITING) {
      waiting.add(event);
    }
  }
}
