/**
 * Tools behind one call, {@code execute(name, input) -> result}: the built-in toolset's definitions
 * (names, input schemas, which are read-only), the scripts that run them in a sandbox, the wording
 * of their results, and the routers that send a call there (the harness's, per session, and the
 * API's). The harness never runs a tool itself; no driver code lives here.
 */
package dev.corral.tool;
