package dev.corral.session;

/**
 * Asks an append of user work to also take the session's harness lease for {@code holder}, if no
 * live lease exists: the harness can then start without a second commit.
 */
public record LeaseClaim(String holder, long ttlMillis) {}
