/**
 * The kubernetes driver: one hardened pod per sandbox, derived by a pure function, warm pools, and
 * {@link dev.corral.sandbox.kubernetes.KubernetesGateway}, the one class that calls the Kubernetes
 * API. No SQL here.
 */
package dev.corral.sandbox.kubernetes;
