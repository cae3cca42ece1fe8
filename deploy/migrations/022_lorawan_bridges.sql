-- LoRaWAN network servers (The Things Stack, ChirpStack) that bridge one
-- application's uplinks into the broker (devices/bridges.py). Each has a
-- broker account of its own, agri-bridge-NAME, that may publish only that
-- application's uplinks and subscribe only to its downlinks; the password is
-- kept hashed as for devices ($7$, devices/credentials.py).
--   application  The Things Stack: its application id; ChirpStack: the
--                application's UUID (lower case)
--   tenant       The Things Stack only: the tenant in the topic (app@tenant),
--                none for a topic without one
-- One active bridge per application. A name is never given twice.
CREATE TABLE lorawan_bridges (
    name          text PRIMARY KEY CHECK (name ~ '^[a-z0-9][a-z0-9-]{0,39}$'),
    kind          text NOT NULL CHECK (kind IN ('tts', 'chirpstack')),
    application   text NOT NULL,
    tenant        text,
    password_hash text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz,
    CONSTRAINT lorawan_bridges_application CHECK (
        (kind = 'tts' AND application ~ '^[a-z0-9](?:[-]?[a-z0-9]){2,35}$'
         AND (tenant IS NULL OR tenant ~ '^[a-z0-9](?:[-]?[a-z0-9]){2,35}$'))
        OR (kind = 'chirpstack' AND tenant IS NULL
            AND application ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'))
);
CREATE UNIQUE INDEX lorawan_bridges_one_per_application
    ON lorawan_bridges (kind, application, coalesce(tenant, '')) WHERE revoked_at IS NULL;

-- The bridge whose application a LoRaWAN device's uplinks come through; none
-- for a device that talks MQTT itself. Such a device has no broker account.
ALTER TABLE devices ADD COLUMN bridge text REFERENCES lorawan_bridges (name);
CREATE INDEX devices_bridge ON devices (bridge) WHERE bridge IS NOT NULL;
