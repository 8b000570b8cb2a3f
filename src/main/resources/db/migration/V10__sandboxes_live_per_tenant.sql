-- A tenant's live sandboxes are counted at every provision (corral.sandbox.max-live-per-tenant):
-- this index keeps the count to the live ones, however many a tenant ran before.
CREATE INDEX sandboxes_tenant_live_idx ON sandboxes (tenant_id)
    WHERE state IN ('provisioning', 'ready');
