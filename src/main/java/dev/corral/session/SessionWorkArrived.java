package dev.corral.session;

/**
 * A CDI event fired after a user event that needs a harness (a message, a custom tool result, a
 * tool confirmation, an interrupt) committed on this replica: the dispatcher can start at once
 * instead of at its next scan.
 */
public record SessionWorkArrived(String sessionId) {}
