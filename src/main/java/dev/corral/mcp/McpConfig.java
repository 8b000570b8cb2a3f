package dev.corral.mcp;

import io.smallrye.config.ConfigMapping;
import io.smallrye.config.WithDefault;
import java.time.Duration;

/** Calls to MCP servers ({@code corral.mcp.*}). */
@ConfigMapping(prefix = "corral.mcp")
public interface McpConfig {

  /** How long one tool call may take, from the request to its answer. */
  @WithDefault("60s")
  Duration callTimeout();

  /** How long connecting, initializing and listing a server's tools may take. */
  @WithDefault("15s")
  Duration listTimeout();

  /** How long opening a connection to a server may take. */
  @WithDefault("5s")
  Duration connectTimeout();

  /** How long a session keeps a server's tool list before it asks again. */
  @WithDefault("5m")
  Duration toolsTtl();

  /** Clients (one per tenant, server and credential) kept open at most; the idlest go first. */
  @WithDefault("256")
  int maxClients();

  /** Characters of a tool's answer kept; the rest is cut, with a note. */
  @WithDefault("100000")
  int maxResultChars();
}
