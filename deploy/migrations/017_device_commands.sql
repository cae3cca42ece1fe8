-- Commands to devices (devices/commands.py): the log of every command the
-- platform was asked to send, one row per command, from queued to its end.
--   status  queued    asked for through the API, not yet published
--           sent      published to the device's command topic (resent while
--                     unanswered and not expired; attempts counts the times)
--           accepted  the device said it will carry it out
--           rejected  the device refused it (reason says why)
--           done      the device carried it out
--           expired   unanswered at expires_at; never sent again
-- A device answers only for its own commands: ingest updates a row only when
-- the answer came on the acks topic of the row's device.
CREATE TABLE device_commands (
    id              bigserial PRIMARY KEY,
    device_id       text NOT NULL REFERENCES devices (id),
    name            text NOT NULL CHECK (name ~ '^[a-z][a-z0-9_]{0,31}$'),
    args            jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(args) = 'object'),
    status          text NOT NULL DEFAULT 'queued'
                    CHECK (status IN ('queued', 'sent', 'accepted', 'rejected', 'done',
                                      'expired')),
    reason          text CHECK (length(reason) <= 500),
    requested_by    text NOT NULL REFERENCES users (name),
    requested_at    timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL CHECK (expires_at > requested_at),
    sent_at         timestamptz,
    attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    acknowledged_at timestamptz,
    done_at         timestamptz
);
-- A device's log, newest first (the API's pages).
CREATE INDEX device_commands_device ON device_commands (device_id, id DESC);
-- What the sender looks at: the unanswered commands.
CREATE INDEX device_commands_open ON device_commands (expires_at)
    WHERE status IN ('queued', 'sent');

-- A device also publishes its answers (agri/v1/devices/ID/acks), and ingest
-- publishes the commands, for a broker that reads these views (EMQX).
CREATE OR REPLACE VIEW mqtt_acl AS
SELECT d.id AS username, 'allow'::text AS permission, 'publish'::text AS action, t.topic
FROM devices d
CROSS JOIN LATERAL (VALUES ('agri/v1/devices/' || d.id || '/senml'),
                           ('agri/v1/devices/' || d.id || '/senml-cbor'),
                           ('agri/v1/devices/' || d.id || '/events'),
                           ('agri/v1/devices/' || d.id || '/acks')) AS t (topic)
WHERE d.revoked_at IS NULL AND d.id NOT LIKE 'agri-%'
UNION ALL
SELECT d.id, 'allow', 'publish', 'agri/v1/drones/' || d.id || '/flights'
FROM devices d
WHERE d.revoked_at IS NULL AND d.id NOT LIKE 'agri-%' AND d.profile = 'drone'
UNION ALL
SELECT d.id, 'allow', 'subscribe', 'agri/v1/devices/' || d.id || '/commands'
FROM devices d
WHERE d.revoked_at IS NULL AND d.id NOT LIKE 'agri-%'
UNION ALL
SELECT s.name, 'allow', r.action, r.topic
FROM mqtt_service_accounts s
JOIN (VALUES ('agri-ingest', 'subscribe', 'agri/v1/devices/+/+'),
             ('agri-ingest', 'subscribe', 'agri/v1/drones/+/flights'),
             ('agri-ingest', 'subscribe', 'v3/+/devices/+/up'),
             ('agri-ingest', 'subscribe', 'application/+/device/+/event/up'),
             ('agri-ingest', 'subscribe', '$SYS/#'),
             ('agri-ingest', 'publish', 'agri/v1/devices/+/commands'),
             ('agri-simulator', 'publish', 'agri/v1/#'),
             ('agri-simulator', 'publish', 'v3/#'),
             ('agri-simulator', 'publish', 'application/#'),
             ('agri-simulator', 'subscribe', '$SYS/#')) AS r (account, action, topic)
    ON r.account = s.name
WHERE s.disabled_at IS NULL;
