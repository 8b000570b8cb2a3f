/**
 * The REST and SSE facade under {@code /v1} that speaks Claude Managed Agents' API, so that the
 * official Anthropic SDKs work against corral: thin adapters from HTTP and JSON to the same domain
 * services the gRPC adapters call, and back. No rule of the log, the harness or the tenants lives
 * here, only the mapping of shapes and names.
 */
package dev.corral.rest;
