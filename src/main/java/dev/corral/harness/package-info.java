/**
 * The brain's loop: leases and the dispatcher that gives every session with pending work exactly
 * one harness, the fold of a session's events into state, the pure decision of what to do next, and
 * the run that does it (model calls, tool calls, appends). Nothing here survives a crash, and
 * nothing needs to: the log is the state.
 */
package dev.corral.harness;
