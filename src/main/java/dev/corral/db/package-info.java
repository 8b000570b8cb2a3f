/**
 * The database outside the domains: the embedded PostgreSQL that starts when no external one is
 * configured, and the readiness check for the schema. No domain SQL lives here.
 */
package dev.corral.db;
