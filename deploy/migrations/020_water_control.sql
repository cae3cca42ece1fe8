-- Water control (water/): how the platform drives each field's water gates.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'agri_water') THEN
        CREATE ROLE agri_water NOLOGIN;
    END IF;
END
$$;

-- What a water gate does on its field: the supply inlet (the default) or
-- the drain.
ALTER TABLE devices ADD COLUMN gate_role text
    CHECK (gate_role IN ('supply', 'drain'));

-- A field's control mode. No row: manual.
--   manual    gates move only when a person commands them
--   schedule  the supply gate opens and closes at the times of `schedule`
--             (local Asia/Tokyo times: [{"open": "05:00", "close": "07:00"}])
--   hold      the platform keeps the level of the field's paddy sensor in
--             the day's target band (field_water_bands)
-- override_at: a person commanded a gate while the mode was automatic; the
-- automatic mode waits until the farmer gives control back (sets a mode).
CREATE TABLE water_control (
    field_id      text PRIMARY KEY REFERENCES fields (id),
    mode          text NOT NULL DEFAULT 'manual' CHECK (mode IN ('manual', 'schedule', 'hold')),
    schedule      jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(schedule) = 'array'
                                                     AND length(schedule::text) <= 2000),
    max_open_h    double precision NOT NULL DEFAULT 8 CHECK (max_open_h > 0 AND max_open_h <= 48),
    override_at   timestamptz,
    override_by   text REFERENCES users (name),
    updated_by    text NOT NULL REFERENCES users (name),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- Every decision about a field's gates, with its reason: a command sent
-- (command_id), or one held back (no command; the reason says why).
--   actor   a user name, or 'agri-water' for the automatic modes
CREATE TABLE water_control_log (
    id          bigserial PRIMARY KEY,
    field_id    text NOT NULL REFERENCES fields (id),
    device_id   text REFERENCES devices (id),
    command_id  bigint REFERENCES device_commands (id),
    action      text NOT NULL CHECK (action IN ('open', 'close', 'set', 'hold-back', 'mode')),
    position    double precision CHECK (position BETWEEN 0 AND 100),
    reason      text NOT NULL CHECK (length(reason) BETWEEN 1 AND 500),
    actor       text NOT NULL,
    decided_at  timestamptz NOT NULL DEFAULT now(),
    -- the time the decision was made for (the level reading it judged)
    judged_at   timestamptz
);
CREATE INDEX water_control_log_field ON water_control_log (field_id, id DESC);
