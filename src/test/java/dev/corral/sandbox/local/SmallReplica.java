package dev.corral.sandbox.local;

import io.quarkus.test.junit.QuarkusTestProfile;
import java.util.Map;

/**
 * A replica of 12 local sandboxes, warm pools of two, at most 3 live sandboxes per tenant, and 256
 * MiB of memory all its sandboxes share.
 */
public class SmallReplica implements QuarkusTestProfile {

  static final int MAX_LIVE_PER_TENANT = 3;
  static final long MEMORY_BUDGET = 256L << 20;

  @Override
  public Map<String, String> getConfigOverrides() {
    return Map.of(
        "corral.sandbox.local.max-sandboxes",
        "12",
        "corral.sandbox.local.warm-pool-size",
        "2",
        "corral.sandbox.local.memory-budget",
        Long.toString(MEMORY_BUDGET),
        "corral.sandbox.max-live-per-tenant",
        Integer.toString(MAX_LIVE_PER_TENANT));
  }
}
