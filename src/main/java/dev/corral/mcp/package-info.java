/**
 * The MCP client: lists the tools of an agent's MCP servers and calls them from corral's server
 * (never from a sandbox), over Streamable HTTP with the MCP Java SDK, injecting the server's vault
 * credential into each request and removing its secrets from whatever comes back. Knows nothing of
 * sessions' logs, the model, or sandboxes.
 */
package dev.corral.mcp;
