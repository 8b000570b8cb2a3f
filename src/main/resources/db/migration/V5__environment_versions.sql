-- Environments count their changes, so that an update can say which one it expects.
ALTER TABLE environments ADD COLUMN version integer NOT NULL DEFAULT 1;
