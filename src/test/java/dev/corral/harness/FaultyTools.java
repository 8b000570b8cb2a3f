package dev.corral.harness;

import dev.corral.proto.v1.Event;
import dev.corral.proto.v1.Session;
import dev.corral.tool.OfferedTools;
import dev.corral.tool.SessionTools;
import dev.corral.tool.ToolOutcome;
import dev.corral.tool.ToolRouter;
import io.smallrye.mutiny.Uni;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.inject.Alternative;
import jakarta.inject.Inject;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * The real tools, with a bug put in where a test asks for one: a harness that meets it stops on an
 * error of its own, as it would on a bug of corral's. Only in the profile that enables it.
 */
@Alternative
@ApplicationScoped
public class FaultyTools implements ToolRouter {

  /** A tool call whose input holds this throws when it is sent. */
  static final String FAULT = "corral-test-fault";

  /** Sessions whose runs throw as they prepare their tools (when a harness loads them). */
  static final Set<String> FAULTY_PREPARE = ConcurrentHashMap.newKeySet();

  /** How many times each session met the bug. */
  static final Map<String, AtomicInteger> FAULTS = new ConcurrentHashMap<>();

  @Inject SessionTools real;

  static int faults(String sessionId) {
    AtomicInteger count = FAULTS.get(sessionId);
    return count == null ? 0 : count.get();
  }

  @Override
  public Uni<ToolOutcome> execute(ToolCall call) {
    if (call.inputJson().contains(FAULT)) {
      throw fault(call.sessionId());
    }
    return real.execute(call);
  }

  @Override
  public Uni<List<Event>> prepare(String sessionId) {
    if (FAULTY_PREPARE.contains(sessionId)) {
      throw fault(sessionId);
    }
    return real.prepare(sessionId);
  }

  @Override
  public Uni<OfferedTools> offered(Session session) {
    return real.offered(session);
  }

  private static IllegalStateException fault(String sessionId) {
    FAULTS.computeIfAbsent(sessionId, id -> new AtomicInteger()).incrementAndGet();
    return new IllegalStateException("a bug the test put in the tools");
  }
}
