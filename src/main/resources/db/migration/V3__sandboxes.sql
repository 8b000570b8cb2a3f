-- Environments: sandbox templates.
CREATE TABLE environments (
    id          text        PRIMARY KEY,
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    archived_at timestamptz,
    -- corral.v1.Environment (definition fields only), protobuf binary
    spec        bytea       NOT NULL
);

ALTER TABLE sessions ADD COLUMN environment_id text REFERENCES environments (id);

-- Sandboxes: one row per sandbox, whatever its driver.
CREATE TABLE sandboxes (
    id             text        PRIMARY KEY,
    environment_id text        REFERENCES environments (id),
    session_id     text,
    driver         text        NOT NULL CHECK (driver IN ('local', 'kubernetes')),
    state          text        NOT NULL CHECK (state IN ('provisioning', 'ready', 'lost', 'released')),
    -- the replica (local) or pod (kubernetes) that holds it
    host           text        NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    last_used_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    released_at    timestamptz,
    lost_reason    text,
    -- corral.v1.SandboxResources it was made with, protobuf binary
    resources      bytea       NOT NULL
);

CREATE INDEX sandboxes_session_idx ON sandboxes (session_id, created_at) WHERE session_id IS NOT NULL;
CREATE INDEX sandboxes_live_idx ON sandboxes (state) WHERE state IN ('provisioning', 'ready');
