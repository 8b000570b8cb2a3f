package dev.corral.session;

import dev.corral.proto.v1.Lease;

/**
 * A CDI event fired after user work (a message, a custom tool result, a tool confirmation)
 * committed on this replica. {@code claimed} is the lease the append took for this replica, if it
 * did: the dispatcher can start the harness at once, without a commit of its own. {@code tenantId}
 * is the session's tenant.
 */
public record SessionWorkArrived(String sessionId, String tenantId, Lease claimed) {}
