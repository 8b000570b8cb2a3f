-- Agents: one row per agent, one immutable row per version.
CREATE TABLE agents (
    id             text        PRIMARY KEY,
    latest_version integer     NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    archived_at    timestamptz
);

CREATE TABLE agent_versions (
    agent_id   text        NOT NULL REFERENCES agents (id),
    version    integer     NOT NULL,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- corral.v1.Agent (definition fields only), protobuf binary
    spec       bytea       NOT NULL,
    PRIMARY KEY (agent_id, version)
);

-- Sessions: the head of each log. status, stop_reason and usage change in the same statement
-- as the event that changes them.
CREATE TABLE sessions (
    id                          text        PRIMARY KEY,
    agent_id                    text        NOT NULL REFERENCES agents (id),
    agent_version               integer     NOT NULL,
    status                      text        NOT NULL DEFAULT 'idle'
        CHECK (status IN ('idle', 'running', 'rescheduling', 'terminated')),
    last_seq                    bigint      NOT NULL DEFAULT 0,
    -- true while a user event waits for a harness (set by user events, cleared by an idle)
    work_pending                boolean     NOT NULL DEFAULT false,
    -- the harness lease: every take-over increments the epoch (a fencing token)
    lease_holder                text,
    lease_epoch                 bigint      NOT NULL DEFAULT 0,
    lease_expires_at            timestamptz,
    input_tokens                bigint      NOT NULL DEFAULT 0,
    output_tokens               bigint      NOT NULL DEFAULT 0,
    cache_creation_input_tokens bigint      NOT NULL DEFAULT 0,
    cache_read_input_tokens     bigint      NOT NULL DEFAULT 0,
    created_at                  timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at                  timestamptz NOT NULL DEFAULT clock_timestamp(),
    archived_at                 timestamptz,
    title                       text        NOT NULL DEFAULT '',
    metadata                    jsonb       NOT NULL DEFAULT '{}',
    -- corral.v1.StopReason of the last session.status_idle while idle, protobuf binary
    stop_reason                 bytea,
    -- corral.v1.Agent as it was when the session was created, protobuf binary
    agent_snapshot              bytea       NOT NULL
);

CREATE INDEX sessions_agent_idx ON sessions (agent_id, id);
CREATE INDEX sessions_pending_idx ON sessions (lease_expires_at NULLS FIRST) WHERE work_pending;

-- Events: the append-only log. seq is dense per session from 1, assigned in the append statement.
CREATE TABLE events (
    session_id      text        NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    seq             bigint      NOT NULL,
    id              text        NOT NULL,
    type            text        NOT NULL,
    -- lease epoch of the harness that wrote the event; null for client events
    epoch           bigint,
    idempotency_key text,
    processed_at    timestamptz NOT NULL,
    -- corral.v1.Event with only the payload set, protobuf binary
    body            bytea       NOT NULL,
    PRIMARY KEY (session_id, seq)
);

CREATE UNIQUE INDEX events_id_idx ON events (id);
CREATE UNIQUE INDEX events_idempotency_idx ON events (session_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
