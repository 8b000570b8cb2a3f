-- The model's id of the tool call an agent.tool_use, agent.custom_tool_use or agent.mcp_tool_use
-- event makes (toolu_…). Every request the harness builds sends each call back under this id, and
-- the model's API refuses a request in which two tool_use blocks share one, so a second call with
-- the id of an earlier one would make every later request of the session fail. The index refuses
-- it at the append. Events stored before this migration have none.
ALTER TABLE events ADD COLUMN call_id text;

CREATE UNIQUE INDEX events_call_id_idx ON events (session_id, call_id)
    WHERE call_id IS NOT NULL;
