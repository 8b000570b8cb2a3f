package dev.corral.common;

/**
 * What a credential is sent to. An MCP server takes any kind bound to its URL; a git repository
 * only a basic credential bound to its host (a static header or an OAuth token is an MCP server's,
 * and the git gateway passes whatever the repository's server answers back to the sandbox).
 */
public enum CredentialUse {
  MCP_SERVER,
  GIT_REPOSITORY
}
