/**
 * The vault: tenants' credentials, sealed with envelope encryption (AES-256-GCM data keys wrapped
 * by key-encryption keys from the environment), handed only to the server-side code that calls an
 * external service for a tool. Nothing here returns, logs or stores a secret in the clear, and
 * nothing here knows about MCP, git or sandboxes.
 */
package dev.corral.vault;
