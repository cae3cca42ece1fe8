-- Ingest subscribes to each native format's topic instead of
-- agri/v1/devices/+/+, which also matched the command topics: every command
-- ingest published came back to it as a reject (devices/topics.py
-- INGEST_FILTERS). The rights a broker reading these views (EMQX) gives follow.
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
JOIN (VALUES ('agri-ingest', 'subscribe', 'agri/v1/devices/+/senml'),
             ('agri-ingest', 'subscribe', 'agri/v1/devices/+/senml-cbor'),
             ('agri-ingest', 'subscribe', 'agri/v1/devices/+/events'),
             ('agri-ingest', 'subscribe', 'agri/v1/devices/+/acks'),
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
