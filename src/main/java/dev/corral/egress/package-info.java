/**
 * Egress: the only way out of a sandbox. A per-sandbox proxy (HTTP CONNECT and plain HTTP) that
 * admits the hosts and ports the environment allows and never a loopback, link-local, private or
 * otherwise non-public address; and the git gateway, through which a sandbox reaches its session's
 * repositories while corral adds their credential on the way out. Knows no tool and no driver's
 * internals: drivers hand it a socket to serve.
 */
package dev.corral.egress;
