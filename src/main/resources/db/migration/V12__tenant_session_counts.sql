-- How many sessions each tenant holds, kept with every creation and deletion: the cap on a tenant's
-- sessions (corral.tenant.max-sessions) reads this row instead of counting the tenant's sessions,
-- whose rows change on every append (an index-only count of a large tenant would visit them all).
CREATE TABLE tenant_sessions (
    tenant_id text   PRIMARY KEY REFERENCES tenants (id),
    held      bigint NOT NULL CHECK (held >= 0)
);

INSERT INTO tenant_sessions (tenant_id, held)
SELECT tenant_id, count(*) FROM sessions GROUP BY tenant_id;
