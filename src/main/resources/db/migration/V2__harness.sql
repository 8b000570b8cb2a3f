-- Budgets the harness enforces (null: no limit).
ALTER TABLE sessions
    ADD COLUMN budget_max_tokens        bigint,
    ADD COLUMN budget_max_model_requests integer;

-- What an event answers, so that the database itself guarantees one result per tool call and
-- one confirmation per tool call that asks for it.
ALTER TABLE events
    ADD COLUMN result_for       text,
    ADD COLUMN confirmation_for text;

CREATE UNIQUE INDEX events_result_for_idx ON events (session_id, result_for)
    WHERE result_for IS NOT NULL;
CREATE UNIQUE INDEX events_confirmation_for_idx ON events (session_id, confirmation_for)
    WHERE confirmation_for IS NOT NULL;
