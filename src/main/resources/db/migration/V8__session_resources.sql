-- What a session's sandboxes get (git repositories): corral.v1.ListSessionResourcesResponse,
-- protobuf binary.
ALTER TABLE sessions ADD COLUMN resources bytea;
