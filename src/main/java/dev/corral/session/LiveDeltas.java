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
 * the StreamEvents subscribers on this replica. Never stored, best effort: a subscriber that falls
 * behind loses deltas, never events.
 */
@ApplicationScoped
public class LiveDeltas {

  private static final int BUFFER = 256;

  private final Map<String, Set<MultiEmitter<? super EventDelta>>> subscribers =
      new ConcurrentHashMap<>();

  public void publish(String sessionId, EventDelta delta) {
    Set<MultiEmitter<? super EventDelta>> emitters = subscribers.get(sessionId);
    if (emitters != null) {
      emitters.forEach(emitter -> emitter.emit(delta));
    }
  }

  /** Deltas of {@code sessionId} from now on, until {@link Handle#complete()}. */
  Handle follow(String sessionId) {
    Handle handle = new Handle();
    handle.deltas =
        Multi.createFrom()
            .<EventDelta>emitter(
                emitter -> {
                  handle.emitter = emitter;
                  subscribers
                      .computeIfAbsent(sessionId, id -> ConcurrentHashMap.newKeySet())
                      .add(emitter);
                  emitter.onTermination(() -> remove(sessionId, emitter));
                  if (handle.completed) {
                    emitter.complete();
                  }
                })
            .onOverflow()
            .buffer(BUFFER)
            .onOverflow()
            .drop();
    return handle;
  }

  private void remove(String sessionId, MultiEmitter<? super EventDelta> emitter) {
    subscribers.computeIfPresent(
        sessionId,
        (id, emitters) -> {
          emitters.remove(emitter);
          return emitters.isEmpty() ? null : emitters;
        });
  }

  /** One subscriber's deltas, ended by its owner when the event stream ends. */
  static final class Handle {
    private Multi<EventDelta> deltas;
    private volatile MultiEmitter<? super EventDelta> emitter;
    private volatile boolean completed;

    Multi<EventDelta> deltas() {
      return deltas;
    }

    void complete() {
      completed = true;
      if (emitter != null) {
        emitter.complete();
      }
    }
  }
}
