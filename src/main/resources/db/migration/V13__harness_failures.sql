-- How many harness runs in a row ended on an error of the harness's own (a bug, not a lost lease or
-- an unreachable database) while working the session. Past corral.harness.max-run-errors the next
-- run gives the turn up with a session.error instead of trying it again at every lease expiry; a
-- run that reaches an idle sets it back to 0. Written only when a run fails or recovers, never by
-- an append.
ALTER TABLE sessions ADD COLUMN harness_failures integer NOT NULL DEFAULT 0;
