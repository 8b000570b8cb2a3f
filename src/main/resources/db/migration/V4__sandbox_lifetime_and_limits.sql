-- A sandbox's lifetime ends at expires_at: from then on it reads released, whoever looks.
-- Rows from before this migration have none (their lifetime is read from resources).
ALTER TABLE sandboxes ADD COLUMN expires_at timestamptz;
-- Why a released sandbox was released (lost_reason stays the reason of a lost one).
ALTER TABLE sandboxes ADD COLUMN release_reason text;
-- How its limits are enforced: corral.v1.Sandbox with only limits_enforced set, protobuf binary.
ALTER TABLE sandboxes ADD COLUMN limits_enforced bytea;

CREATE INDEX sandboxes_expiry_idx ON sandboxes (expires_at) WHERE state IN ('provisioning', 'ready');
