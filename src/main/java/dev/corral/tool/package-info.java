/**
 * Tools behind one call, {@code execute(name, input) -> output}: the built-in toolset's definitions
 * (names, input schemas, which are read-only) and the router that sends a call to where it runs.
 * The harness never runs a tool itself.
 */
package dev.corral.tool;
