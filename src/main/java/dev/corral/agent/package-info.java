/**
 * Agents: versioned, immutable configurations (model, system prompt, tools) that sessions pin and
 * snapshot. No session or sandbox logic here.
 */
package dev.corral.agent;
