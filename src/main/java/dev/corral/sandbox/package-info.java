/**
 * The hands: disposable sandboxes behind one driver interface (bubblewrap on this host, pods on
 * Kubernetes), the built-in tools as scripts that run inside them, warm pools and the reconciler.
 * Code the model writes runs only in here, and nothing here hands a sandbox a secret.
 */
package dev.corral.sandbox;
