-- Hourly and daily rollups maintained by the platform, on every edition of
-- TimescaleDB (the Apache build has no continuous aggregates; one path for
-- both keeps it the tested one). Ingest adds exactly the rows it inserted, in
-- the same transaction, so the rollups stay exact under redelivery. Days are
-- Asia/Tokyo calendar days.
CREATE TABLE readings_hourly (
    device_id text COLLATE "C" NOT NULL,
    metric    text COLLATE "C" NOT NULL,
    bucket    timestamptz NOT NULL,
    min       double precision NOT NULL,
    max       double precision NOT NULL,
    sum       double precision NOT NULL,
    count     bigint NOT NULL,
    PRIMARY KEY (device_id, metric, bucket)
);
CREATE TABLE readings_daily (
    device_id text COLLATE "C" NOT NULL,
    metric    text COLLATE "C" NOT NULL,
    day       date NOT NULL,                   -- Asia/Tokyo
    min       double precision NOT NULL,
    max       double precision NOT NULL,
    sum       double precision NOT NULL,
    count     bigint NOT NULL,
    PRIMARY KEY (device_id, metric, day)
);
CREATE TABLE platform_features (name text PRIMARY KEY, enabled boolean NOT NULL);
INSERT INTO platform_features VALUES ('maintained_rollups', true);
