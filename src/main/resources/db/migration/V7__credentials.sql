-- The vault: credentials sealed with envelope encryption. secret is AES-256-GCM under a data key of
-- the credential's own; wrapped_key is that data key under the key-encryption key key_id, which
-- never enters the database. Both are a 12-byte nonce followed by the ciphertext and its tag.
CREATE TABLE credentials (
    id             text        PRIMARY KEY,
    tenant_id      text        NOT NULL REFERENCES tenants (id),
    kind           text        NOT NULL CHECK (kind IN ('static_header', 'oauth2', 'basic')),
    created_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    rotated_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    last_used_at   timestamptz,
    key_id         text        NOT NULL,
    wrapped_key    bytea       NOT NULL,
    secret         bytea       NOT NULL,
    -- corral.v1.Credential with its name, metadata and kind info (never a secret), protobuf binary
    info           bytea       NOT NULL
);

CREATE INDEX credentials_tenant_idx ON credentials (tenant_id, id);
CREATE INDEX credentials_key_idx ON credentials (key_id);
