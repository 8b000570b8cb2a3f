/**
 * The model edge: a non-blocking client for the Anthropic Messages API (streaming, server-sent
 * events) on the Vert.x HTTP client, and the assembly of a streamed response into complete blocks.
 * It knows nothing about sessions or events.
 */
package dev.corral.model;
