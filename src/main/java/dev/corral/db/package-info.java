/**
 * The database outside the domains: the embedded PostgreSQL that starts when no external one is
 * configured, the readiness check for the schema, and the per-tenant caps every domain's inserts go
 * through (their lock, their queue, and the counts they check). No other domain SQL lives here.
 */
package dev.corral.db;
