/**
 * The local driver: sandboxes as bubblewrap processes on this host, with their limits. Code the
 * model writes runs only inside them, and nothing here hands a sandbox a secret. No SQL and no
 * Kubernetes.
 */
package dev.corral.sandbox.local;
