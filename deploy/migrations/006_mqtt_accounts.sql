-- MQTT accounts for a broker that authenticates and authorises straight from
-- this database (EMQX 5, deploy/emqx/emqx.conf): two views over the device
-- registry, which stays the one source of truth. Mosquitto does not read them
-- (the platform manages its dynamic security plugin instead).
--
-- mqtt_accounts: one row per account allowed to connect.
--   username          the MQTT username (a device's id, or a service account)
--   password_hash     PBKDF2-HMAC-SHA512 of the password, 64 bytes, lowercase
--                     hex: what EMQX's pbkdf2 algorithm compares against
--   salt              the salt as raw bytes (bytea; EMQX uses the column's
--                     bytes as the salt)
--   iterations        PBKDF2 iterations of this hash; EMQX's configuration
--                     names one count, so every account must have it
--   is_superuser      always false
--   client_id_pattern POSIX regular expression the MQTT client id must match:
--                     a device's own id, exactly; agri-ingest-WORKER for
--                     ingest; agri-simulator-... for the simulator
--   kind              'device' or 'service'
--   profile           the device's profile (NULL for service accounts)
-- The registry keeps each hash in Mosquitto's format,
-- $7$ITERATIONS$base64(salt)$base64(hash) (devices/credentials.py); the view
-- converts it. Revoked devices are absent.
--
-- mqtt_acl: what each account may do (username, permission, action, topic),
-- all 'allow'; anything else is denied (EMQX: authorization.no_match = deny).
-- A device publishes only its own topics (flight records only for drones)
-- and subscribes only to agri/v1/devices/ID/commands. EMQX checks a shared
-- subscription $share/GROUP/FILTER against FILTER, so the rows name the plain
-- filters.
--
-- Service accounts (ingest, simulator) have names that no device id can take
-- (the prefix agri-); their password hashes, in the same $7$ format, are
-- kept in mqtt_service_accounts. Only the role agri_broker, given to the
-- broker's database login, can read the views.

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'agri_broker') THEN
        CREATE ROLE agri_broker NOLOGIN;
    END IF;
END
$$;

CREATE TABLE mqtt_service_accounts (
    name          text PRIMARY KEY CHECK (name IN ('agri-ingest', 'agri-simulator')),
    password_hash text NOT NULL
                  CHECK (password_hash ~ '^\$7\$[0-9]{1,9}\$[A-Za-z0-9+/]+={0,2}\$[A-Za-z0-9+/]+={0,2}$'),
    created_at    timestamptz NOT NULL DEFAULT now(),
    disabled_at   timestamptz
);

CREATE VIEW mqtt_accounts AS
SELECT a.username,
       encode(decode(split_part(a.stored, '$', 5), 'base64'), 'hex') AS password_hash,
       decode(split_part(a.stored, '$', 4), 'base64') AS salt,
       split_part(a.stored, '$', 3)::integer AS iterations,
       false AS is_superuser,
       a.client_id_pattern,
       a.kind,
       a.profile
FROM (
    SELECT d.id AS username, d.password_hash AS stored, '^' || d.id || '$' AS client_id_pattern,
           'device' AS kind, d.profile
    FROM devices d
    WHERE d.revoked_at IS NULL AND d.id NOT LIKE 'agri-%'
    UNION ALL
    SELECT s.name, s.password_hash, '^' || s.name || '-[A-Za-z0-9_-]{1,64}$', 'service', NULL
    FROM mqtt_service_accounts s
    WHERE s.disabled_at IS NULL
) a
WHERE a.stored ~ '^\$7\$[0-9]{1,9}\$[A-Za-z0-9+/]+={0,2}\$[A-Za-z0-9+/]+={0,2}$';

CREATE VIEW mqtt_acl AS
SELECT d.id AS username, 'allow'::text AS permission, 'publish'::text AS action, t.topic
FROM devices d
CROSS JOIN LATERAL (VALUES ('agri/v1/devices/' || d.id || '/senml'),
                           ('agri/v1/devices/' || d.id || '/senml-cbor'),
                           ('agri/v1/devices/' || d.id || '/events')) AS t (topic)
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
             ('agri-simulator', 'publish', 'agri/v1/#'),
             ('agri-simulator', 'publish', 'v3/#'),
             ('agri-simulator', 'publish', 'application/#'),
             ('agri-simulator', 'subscribe', '$SYS/#')) AS r (account, action, topic)
    ON r.account = s.name
WHERE s.disabled_at IS NULL;

REVOKE ALL ON mqtt_service_accounts, mqtt_accounts, mqtt_acl FROM PUBLIC;
GRANT SELECT ON mqtt_accounts, mqtt_acl TO agri_broker;
