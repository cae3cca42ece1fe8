-- A queued command wakes ingest's sender at once (devices/commands.py): it
-- waits with LISTEN device_commands, polling only as a fallback.
CREATE OR REPLACE FUNCTION device_commands_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NOTIFY device_commands;
    RETURN NULL;
END
$$;

CREATE TRIGGER device_commands_queued
    AFTER INSERT ON device_commands
    FOR EACH STATEMENT EXECUTE FUNCTION device_commands_notify();

-- The water controller's commands are requested by its own user
-- (device_commands.requested_by references users): disabled, with no
-- password and no token, so nobody can sign in as it; a planner, the role
-- that sees no single field, should it ever be enabled by mistake.
INSERT INTO users (name, role, display_name, must_change_password, disabled_at)
VALUES ('agri-water', 'planner', '自動水管理 / automatic water control', false, now())
ON CONFLICT (name) DO NOTHING;
