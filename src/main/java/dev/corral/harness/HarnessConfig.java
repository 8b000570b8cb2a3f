package dev.corral.harness;

import io.smallrye.config.ConfigMapping;
import io.smallrye.config.WithDefault;
import java.time.Duration;

/** The harness on this replica ({@code corral.harness.*}). */
@ConfigMapping(prefix = "corral.harness")
public interface HarnessConfig {

  /** Run harnesses on this replica (the dispatcher and Wake). */
  @WithDefault("true")
  boolean enabled();

  /**
   * How long a lease lasts without renewal. A replica that dies is replaced after at most this plus
   * one scan interval.
   */
  @WithDefault("3s")
  Duration leaseTtl();

  /** How often a replica renews the leases of the sessions it works. */
  @WithDefault("1s")
  Duration renewInterval();

  /** How often the dispatcher looks for sessions with pending work and no live lease. */
  @WithDefault("500ms")
  Duration scanInterval();

  /**
   * Runs of one session that may end in a row on an error of the harness's own (a bug) before the
   * next run gives the turn up: it answers the turn's open calls with errors and appends a
   * session.error ({@code unknown_error}, {@code exhausted}) and an idle ({@code
   * retries_exhausted}), rather than trying again at every lease expiry.
   */
  @WithDefault("3")
  int maxRunErrors();

  /** Sessions this replica works at once; beyond that it takes no new lease. */
  @WithDefault("200")
  int maxConcurrentSessions();

  /**
   * Sessions of one tenant this replica works at once, so that one tenant cannot take every slot:
   * its other sessions wait, their work pending, while other tenants' sessions start. Unset: all of
   * {@link #maxConcurrentSessions()} while the deployment has one tenant, half of them (at least 1)
   * once it has more.
   */
  java.util.Optional<Integer> maxConcurrentSessionsPerTenant();

  /** {@link #maxConcurrentSessionsPerTenant()}, or its default for {@code tenants} tenants. */
  default int perTenantSlots(int tenants) {
    return maxConcurrentSessionsPerTenant()
        .orElse(tenants <= 1 ? maxConcurrentSessions() : Math.max(1, maxConcurrentSessions() / 2));
  }
}
