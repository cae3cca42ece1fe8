-- Alerts (alerts/): conditions the rules found for a field or a device, the
-- messages sent about them, and each user's choices.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'agri_alerts') THEN
        CREATE ROLE agri_alerts NOLOGIN;
    END IF;
END
$$;

-- One row per condition while it lasts: a rule opens it (opened_at) and the
-- same rule clears it (cleared_at) when the condition is gone. `key` names the
-- condition (rule, field or device, and what the rule adds, e.g. a day), so
-- that a condition still true is never opened twice: at most one open row
-- per key.
--   severity  info      worth knowing (the harvest window opens)
--             warning   act today (water out of band for hours, battery low)
--             urgent    act now; delivered even in quiet hours (water gone,
--                       gate not answering, cold ahead in the sensitive period)
CREATE TABLE alerts (
    id          bigserial PRIMARY KEY,
    key         text NOT NULL CHECK (length(key) BETWEEN 1 AND 200),
    rule        text NOT NULL CHECK (rule ~ '^[a-z][a-z0-9-]{0,39}$'),
    severity    text NOT NULL CHECK (severity IN ('info', 'warning', 'urgent')),
    field_id    text REFERENCES fields (id),
    device_id   text REFERENCES devices (id),
    evidence    jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(evidence) = 'object'
                                                   AND length(evidence::text) <= 4000),
    opened_at   timestamptz NOT NULL DEFAULT now(),
    -- when the evidence that opened it was measured (the delay is counted from it)
    observed_at timestamptz NOT NULL,
    cleared_at  timestamptz,
    CHECK (field_id IS NOT NULL OR device_id IS NOT NULL),
    CHECK (cleared_at IS NULL OR cleared_at >= opened_at)
);
CREATE UNIQUE INDEX alerts_open_key ON alerts (key) WHERE cleared_at IS NULL;
CREATE INDEX alerts_field ON alerts (field_id, opened_at DESC);
CREATE INDEX alerts_device ON alerts (device_id, opened_at DESC);
CREATE INDEX alerts_opened ON alerts (opened_at DESC);

-- Each message about an alert to one user on one channel: one when it
-- opens (event 'opened') and a follow-up when it clears ('cleared').
--   status  queued     waiting for its channel
--           held       in the user's quiet hours; sent at not_before
--           sent       accepted by the SMTP server or the Messaging API
--           failed     the channel refused it for good (error says why)
--           skipped    nothing to send to (no address, channel not set up)
CREATE TABLE alert_deliveries (
    id          bigserial PRIMARY KEY,
    alert_id    bigint NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    user_name   text NOT NULL REFERENCES users (name),
    channel     text NOT NULL CHECK (channel IN ('email', 'line')),
    event       text NOT NULL CHECK (event IN ('opened', 'cleared')),
    status      text NOT NULL DEFAULT 'queued'
                CHECK (status IN ('queued', 'held', 'sent', 'failed', 'skipped')),
    not_before  timestamptz NOT NULL DEFAULT now(),
    attempts    integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    error       text CHECK (length(error) <= 500),
    created_at  timestamptz NOT NULL DEFAULT now(),
    sent_at     timestamptz,
    UNIQUE (alert_id, user_name, channel, event)
);
CREATE INDEX alert_deliveries_due ON alert_deliveries (not_before)
    WHERE status IN ('queued', 'held');
CREATE INDEX alert_deliveries_user ON alert_deliveries (user_name, id DESC);

-- A user's choices. No row: email and LINE off, every kind, no quiet hours.
-- Quiet hours are local (Asia/Tokyo) times; start > end spans midnight.
CREATE TABLE alert_preferences (
    user_name    text PRIMARY KEY REFERENCES users (name),
    email        text CHECK (email ~ '^[^@\s]{1,64}@[^@\s]{1,255}$'),
    email_on     boolean NOT NULL DEFAULT false,
    line_user_id text CHECK (line_user_id ~ '^U[0-9a-f]{32}$'),
    line_on      boolean NOT NULL DEFAULT false,
    rules        text[],  -- NULL: every rule
    quiet_start  time,
    quiet_end    time,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CHECK ((quiet_start IS NULL) = (quiet_end IS NULL))
);

-- Linking a LINE account: the user's page shows a one-time code; the user
-- sends it to the platform's LINE official account, whose webhook finds the
-- code (stored hashed) and keeps the sender's user id.
CREATE TABLE line_link_codes (
    code_hash   text PRIMARY KEY,
    user_name   text NOT NULL REFERENCES users (name),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz
);

-- Where the evaluator left off (readings by arrival time).
CREATE TABLE alert_cursors (
    name        text PRIMARY KEY,
    position    timestamptz NOT NULL
);
