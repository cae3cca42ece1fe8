-- The narrow readings hypertable. Its only index is the unique key: every
-- index costs ingest, and the key serves "latest per metric" and series reads.
CREATE TABLE readings (
    device_id   text COLLATE "C" NOT NULL,    -- byte order: cheaper key comparisons
    metric      text COLLATE "C" NOT NULL,
    time        timestamptz NOT NULL,          -- measurement time (device clock)
    value       double precision NOT NULL,     -- in the metric's canonical unit
    received_at timestamptz NOT NULL           -- arrival at ingest
);
SELECT create_hypertable('readings', 'time', chunk_time_interval => interval '7 days',
                         create_default_indexes => false);
CREATE UNIQUE INDEX readings_key ON readings (device_id, metric, time);

-- What could not be stored, as received, with the reason.
CREATE TABLE rejects (
    id           bigserial PRIMARY KEY,
    received_at  timestamptz NOT NULL,
    topic        text NOT NULL,
    device_id    text,
    reason       text NOT NULL,
    record_index integer,                      -- position in the pack, for a bad record
    payload      bytea NOT NULL
);
CREATE INDEX rejects_device ON rejects (device_id, received_at DESC);
CREATE INDEX rejects_time ON rejects (received_at DESC);

CREATE TABLE device_events (
    device_id   text NOT NULL,
    time        timestamptz NOT NULL,
    kind        text NOT NULL,
    body        jsonb NOT NULL,
    received_at timestamptz NOT NULL,
    PRIMARY KEY (device_id, time, kind)
);

CREATE TABLE drone_records (
    drone_id    text NOT NULL,
    time        timestamptz NOT NULL,
    kind        text NOT NULL,                 -- survey | spray
    field_id    text,
    body        jsonb NOT NULL,
    received_at timestamptz NOT NULL,
    PRIMARY KEY (drone_id, time, kind)
);

-- Counters of each ingest worker, for /metrics of any API process.
CREATE TABLE ingest_stats (
    worker     text PRIMARY KEY,
    updated_at timestamptz NOT NULL,
    counters   jsonb NOT NULL
);
