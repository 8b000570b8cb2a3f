/**
 * The session: an append-only, per-session event log in PostgreSQL with dense sequence numbers,
 * idempotent appends, optimistic and lease (fencing) checks, positional reads and live tails that
 * work across replicas. No gRPC types here; the edge adapts.
 */
package dev.corral.session;
