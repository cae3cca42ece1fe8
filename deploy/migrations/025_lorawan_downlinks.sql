-- Ingest sends commands to LoRaWAN devices as downlinks through their
-- bridge's network server (devices/downlinks.py), so it may publish on The
-- Things Stack's and ChirpStack's downlink topics (devices/topics.py
-- INGEST_PUBLISH_FILTERS). The rights a broker reading these views (EMQX)
-- gives follow.
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
             ('agri-ingest', 'publish', 'v3/+/devices/+/down/push'),
             ('agri-ingest', 'publish', 'application/+/device/+/command/down'),
             ('agri-simulator', 'publish', 'agri/v1/#'),
             ('agri-simulator', 'publish', 'v3/#'),
             ('agri-simulator', 'publish', 'application/#'),
             ('agri-simulator', 'subscribe', '$SYS/#')) AS r (account, action, topic)
    ON r.account = s.name
WHERE s.disabled_at IS NULL;
