/**
 * The hands' records and lifecycle: provisioning a sandbox through its driver, using it, releasing
 * it, and the reconciler that converges what runs with what the records say. A sandbox runs
 * commands; this package knows no tool, and calls no process or Kubernetes API itself (the driver
 * packages do).
 */
package dev.corral.sandbox;
