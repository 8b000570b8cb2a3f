-- The harness's scan takes pending sessions in turns across tenants: each tenant's oldest few,
-- read from this index, whatever the size of another tenant's backlog. Its columns never change
-- on an append (updated_at does), so the session row's update on every append stays HOT.
CREATE INDEX sessions_pending_tenant_idx ON sessions (tenant_id, id) WHERE work_pending;
