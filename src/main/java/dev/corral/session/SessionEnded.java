package dev.corral.session;

/**
 * A CDI event fired (asynchronously) after a session was archived or deleted on this replica: what
 * it held, such as its sandboxes, can go now. Observers must not rely on it alone (a replica may
 * die before firing it); the sandbox reconciler catches what it misses.
 */
public record SessionEnded(String sessionId) {}
