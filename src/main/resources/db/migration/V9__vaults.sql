-- Vaults: named groups of a tenant's credentials, which sessions name (vault_ids) so that an
-- agent's MCP server without a credential of its own uses the one bound to its URL.
CREATE TABLE vaults (
    id           text        PRIMARY KEY,
    tenant_id    text        NOT NULL REFERENCES tenants (id),
    created_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    archived_at  timestamptz,
    -- corral.v1.Vault with its display name and metadata, protobuf binary
    info         bytea       NOT NULL
);

CREATE INDEX vaults_tenant_idx ON vaults (tenant_id, id);

ALTER TABLE credentials ADD COLUMN vault_id text REFERENCES vaults (id);
CREATE INDEX credentials_vault_idx ON credentials (tenant_id, vault_id, id);

ALTER TABLE sessions ADD COLUMN vault_ids text[] NOT NULL DEFAULT '{}';
