package dev.corral.db;

import io.smallrye.config.ConfigMapping;
import io.smallrye.config.WithDefault;

/**
 * How many stored things one tenant may hold ({@code corral.tenant.*}), so that one tenant cannot
 * fill the database every tenant shares. Archived agents and environments count: they cannot be
 * deleted, and their rows stay. One more is refused with RESOURCE_EXHAUSTED.
 */
@ConfigMapping(prefix = "corral.tenant")
public interface TenantCaps {

  /** Agents of one tenant, archived or not. */
  @WithDefault("10000")
  int maxAgents();

  /** Versions of one agent; an update that would make one more is refused. */
  @WithDefault("1000")
  int maxAgentVersions();

  /** Environments of one tenant, archived or not. */
  @WithDefault("1000")
  int maxEnvironments();

  /** API keys of one tenant that are not revoked; revoking one makes room. */
  @WithDefault("1000")
  int maxApiKeys();

  /** Sessions of one tenant, archived or not; deleting one makes room. */
  @WithDefault("100000")
  int maxSessions();
}
