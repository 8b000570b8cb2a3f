package dev.corral.egress;

import dev.corral.common.LogFields;
import dev.corral.common.Tenant;
import dev.corral.proto.v1.Networking;

/**
 * What one sandbox may reach: its environment's networking, and (through the git gateway) the
 * repositories of its session, if it serves one.
 *
 * @param sessionId the session it serves, or empty
 */
public record EgressGrant(
    String sandboxId, String sessionId, Tenant tenant, Networking networking) {

  /** The fixed log keys of a line about this sandbox's egress. */
  LogFields logFields() {
    return LogFields.sandbox(sandboxId).withSession(sessionId).withTenant(tenant.id());
  }
}
