package dev.corral.identity;

import dev.corral.common.Tenant;

/**
 * A CDI event: an operator disabled {@code tenant} on this replica. What the tenant still runs here
 * (sandboxes) may end at once rather than at its next periodic check.
 */
public record TenantDisabled(Tenant tenant) {}
