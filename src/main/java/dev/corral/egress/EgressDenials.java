package dev.corral.egress;

import dev.corral.common.LogBudget;
import dev.corral.common.Replica;
import dev.corral.proto.v1.EmitterKind;
import dev.corral.proto.v1.Event;
import dev.corral.proto.v1.EventEmitter;
import dev.corral.proto.v1.SandboxEgressDenied;
import dev.corral.session.AppendRequest;
import dev.corral.session.EventLog;
import dev.corral.session.NewEvent;
import jakarta.enterprise.context.ApplicationScoped;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import org.jboss.logging.Logger;

/**
 * Records refused egress in the session's log as sandbox.egress_denied, at most once a minute per
 * destination and {@link #PER_MINUTE} times a minute per session, so that a sandbox hammering a
 * closed host cannot flood its log. (Every refusal is still counted and logged.)
 */
@ApplicationScoped
class EgressDenials {

  private static final Logger LOGGER = Logger.getLogger(EgressDenials.class);
  static final int PER_MINUTE = 10;
  private static final long MINUTE = 60_000_000_000L;

  private final EventLog log;
  private final EventEmitter emitter;
  private final Map<String, Long> lastByDestination = new ConcurrentHashMap<>();
  private final LogBudget bySession = new LogBudget(PER_MINUTE);

  EgressDenials(EventLog log, Replica replica) {
    this.log = log;
    this.emitter =
        EventEmitter.newBuilder()
            .setKind(EmitterKind.EMITTER_KIND_HARNESS)
            .setReplica(replica.id())
            .build();
  }

  /** Characters of a refusal's reason kept in the event. */
  static final int MAX_REASON = 512;

  void record(EgressGrant grant, String host, int port, String reason) {
    if (grant.sessionId().isEmpty() || !admitted(grant.sessionId(), host + ":" + port)) {
      return;
    }
    Event denied =
        Event.newBuilder()
            .setSandboxEgressDenied(
                SandboxEgressDenied.newBuilder()
                    .setSandboxId(grant.sandboxId())
                    .setHost(host.length() > 253 ? host.substring(0, 253) : host)
                    .setPort(port)
                    // (a reason quotes the host: cut as the host is)
                    .setReason(
                        reason.length() > MAX_REASON ? reason.substring(0, MAX_REASON) : reason))
            .build();
    log.append(AppendRequest.of(grant.sessionId(), NewEvent.of(denied).emittedBy(emitter)))
        .subscribe()
        .with(
            ignored -> {},
            failure ->
                LOGGER.debugf(
                    "sessionId=%s sandbox.egress_denied not recorded: %s",
                    grant.sessionId(), failure.getMessage()));
  }

  private boolean admitted(String sessionId, String destination) {
    long now = System.nanoTime();
    if (lastByDestination.size() > 10_000) {
      lastByDestination.clear();
    }
    Long last = lastByDestination.get(sessionId + " " + destination);
    if (last != null && now - last < MINUTE) {
      return false;
    }
    if (bySession.admit(sessionId) != LogBudget.Admission.LOG) {
      return false;
    }
    lastByDestination.put(sessionId + " " + destination, now);
    return true;
  }
}
