/**
 * corral: a self-hosted control plane for long-running AI agents. Packages are split by domain
 * (session, agent, harness, sandbox, tool) with the gRPC edge in {@code api}.
 */
package dev.corral;
