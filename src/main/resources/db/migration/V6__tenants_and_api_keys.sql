-- Tenants: every resource belongs to exactly one. 'default' holds everything made before tenants
-- existed, and the first admin API key.
CREATE TABLE tenants (
    id          text        PRIMARY KEY,
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- a disabled tenant's credentials are refused (every replica within its re-check interval)
    disabled_at timestamptz
);

INSERT INTO tenants (id) VALUES ('default');

-- corral API keys (crl_…): only the SHA-256 of the key is stored; the key is shown once.
CREATE TABLE api_keys (
    id           text        PRIMARY KEY,
    tenant_id    text        NOT NULL REFERENCES tenants (id),
    secret_hash  bytea       NOT NULL,
    name         text        NOT NULL,
    role         text        NOT NULL CHECK (role IN ('admin', 'member', 'viewer')),
    -- the first characters of the key, to recognise it in lists
    prefix       text        NOT NULL,
    created_by   text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    last_used_at timestamptz,
    revoked_at   timestamptz,
    -- true for the admin key the server made on its first start
    bootstrap    boolean     NOT NULL DEFAULT false
);

CREATE UNIQUE INDEX api_keys_secret_idx ON api_keys (secret_hash);
CREATE INDEX api_keys_tenant_idx ON api_keys (tenant_id, id);

-- Every resource gets its tenant; existing rows move to 'default'. The default is dropped again so
-- that no insert can forget the tenant.
ALTER TABLE agents ADD COLUMN tenant_id text NOT NULL DEFAULT 'default' REFERENCES tenants (id);
ALTER TABLE agents ALTER COLUMN tenant_id DROP DEFAULT;
ALTER TABLE environments ADD COLUMN tenant_id text NOT NULL DEFAULT 'default' REFERENCES tenants (id);
ALTER TABLE environments ALTER COLUMN tenant_id DROP DEFAULT;
ALTER TABLE sessions ADD COLUMN tenant_id text NOT NULL DEFAULT 'default' REFERENCES tenants (id);
ALTER TABLE sessions ALTER COLUMN tenant_id DROP DEFAULT;
ALTER TABLE sandboxes ADD COLUMN tenant_id text NOT NULL DEFAULT 'default' REFERENCES tenants (id);
ALTER TABLE sandboxes ALTER COLUMN tenant_id DROP DEFAULT;

-- The indexes that serve tenant-scoped lists (newest first by id).
CREATE INDEX agents_tenant_idx ON agents (tenant_id, id);
CREATE INDEX environments_tenant_idx ON environments (tenant_id, id);
DROP INDEX sessions_agent_idx;
CREATE INDEX sessions_tenant_idx ON sessions (tenant_id, id);
CREATE INDEX sessions_tenant_agent_idx ON sessions (tenant_id, agent_id, id);
CREATE INDEX sandboxes_tenant_idx ON sandboxes (tenant_id, id);
