package dev.corral.session;

import dev.corral.proto.v1.EventDelta;
import io.smallrye.mutiny.Multi;
import io.smallrye.mutiny.subscription.MultiEmitter;
import jakarta.enterprise.context.ApplicationScoped;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Token-by-token previews of blocks the model is still writing, from the harness on this replica to
 * the StreamEvents subscribers on this replica. Never stored, best effort: each subscriber keeps up
 * to {@link #BUFFER} deltas it has not taken yet, and loses those that come past that, never
 * events.
 */
@ApplicationScoped
public class LiveDeltas {

  private static final int BUFFER = 256;

  private final Map<String, Set<Handle>> subscribers = new ConcurrentHashMap<>();

  public void publish(String sessionId, EventDelta delta) {
    Set<Handle> handles = subscribers.get(sessionId);
    if (handles != null) {
      handles.forEach(handle -> handle.offer(delta));
    }
  }

  /**
   * Deltas of {@code sessionId} from now on (from this call, not from the subscription to {@link
   * Handle#deltas()}: what comes in between is kept, up to the buffer), until {@link
   * Handle#complete()}.
   */
  Handle follow(String sessionId) {
    Handle handle = new Handle(this, sessionId);
    subscribers.computeIfAbsent(sessionId, id -> ConcurrentHashMap.newKeySet()).add(handle);
    handle.deltas =
        Multi.createFrom()
            .<EventDelta>emitter(
                emitter -> {
                  emitter.onTermination(handle::complete);
                  emitter.onRequest(ignored -> handle.drain());
                  handle.attach(emitter);
                });
    return handle;
  }

  private void remove(Handle handle) {
    subscribers.computeIfPresent(
        handle.sessionId,
        (id, handles) -> {
          handles.remove(handle);
          return handles.isEmpty() ? null : handles;
        });
  }

  /** One subscriber's deltas, ended by its owner when the event stream ends. */
  static final class Handle {
    private final LiveDeltas owner;
    private final String sessionId;
    private final java.util.ArrayDeque<EventDelta> waiting = new java.util.ArrayDeque<>();
    private final java.util.concurrent.atomic.AtomicInteger draining =
        new java.util.concurrent.atomic.AtomicInteger();
    private Multi<EventDelta> deltas;
    private MultiEmitter<? super EventDelta> emitter; // guarded by this
    private boolean completed; // guarded by this

    private Handle(LiveDeltas owner, String sessionId) {
      this.owner = owner;
      this.sessionId = sessionId;
    }

    Multi<EventDelta> deltas() {
      return deltas;
    }

    private void offer(EventDelta delta) {
      synchronized (this) {
        if (completed || waiting.size() >= BUFFER) {
          return; // the subscriber is that far behind: it loses this delta
        }
        waiting.add(delta);
      }
      drain();
    }

    private void attach(MultiEmitter<? super EventDelta> attached) {
      boolean open;
      synchronized (this) {
        open = !completed;
        if (open) {
          emitter = attached;
        }
      }
      if (open) {
        drain();
      } else {
        attached.complete();
      }
    }

    /** Emits waiting deltas while the subscriber asks for them; one thread at a time. */
    private void drain() {
      if (draining.getAndIncrement() != 0) {
        return;
      }
      int missed = 1;
      do {
        while (true) {
          EventDelta next;
          MultiEmitter<? super EventDelta> target;
          synchronized (this) {
            target = emitter;
            if (completed || target == null || target.requested() <= 0 || waiting.isEmpty()) {
              break;
            }
            next = waiting.poll();
          }
          target.emit(next);
        }
        missed = draining.addAndGet(-missed);
      } while (missed != 0);
    }

    /** Ends the deltas and forgets the subscriber, whether or not it ever subscribed. */
    void complete() {
      MultiEmitter<? super EventDelta> target;
      synchronized (this) {
        if (completed) {
          return;
        }
        completed = true;
        waiting.clear();
        target = emitter;
      }
      owner.remove(this);
      if (target != null) {
        target.complete();
      }
    }
  }
}
