-- The harness's scan takes pending sessions in turns across tenants: each tenant's oldest few,
-- read from this index, whatever the size of another tenant's backlog.
CREATE INDEX sessions_pending_tenant_idx ON sessions (tenant_id, updated_at) WHERE work_pending;
