/**
 * The gRPC edge: thin adapters from corral.v1 requests to domain calls, the one exception mapper,
 * request-decoding checks and flow-controlled server streams. No SQL and no domain rules here.
 */
package dev.corral.api;
