-- Community edition: continuous aggregates, compression and policies.
-- Days are Asia/Tokyo calendar days.
CREATE MATERIALIZED VIEW readings_hourly WITH (timescaledb.continuous) AS
SELECT device_id, metric, time_bucket(interval '1 hour', time) AS bucket,
       min(value) AS min, max(value) AS max, sum(value) AS sum, count(*) AS count
FROM readings GROUP BY device_id, metric, bucket WITH NO DATA;
SELECT add_continuous_aggregate_policy('readings_hourly', start_offset => interval '40 days',
       end_offset => interval '1 hour', schedule_interval => interval '5 minutes');
ALTER MATERIALIZED VIEW readings_hourly SET (timescaledb.materialized_only = false);

CREATE MATERIALIZED VIEW readings_daily_cagg WITH (timescaledb.continuous) AS
SELECT device_id, metric, time_bucket(interval '1 day', bucket, 'Asia/Tokyo') AS bucket,
       min(min) AS min, max(max) AS max, sum(sum) AS sum, sum(count) AS count
FROM readings_hourly GROUP BY device_id, metric, 3 WITH NO DATA;
SELECT add_continuous_aggregate_policy('readings_daily_cagg', start_offset => interval '40 days',
       end_offset => interval '1 day', schedule_interval => interval '1 hour');
CREATE VIEW readings_daily AS
SELECT device_id, metric, (bucket AT TIME ZONE 'Asia/Tokyo')::date AS day, min, max, sum, count
FROM readings_daily_cagg;

ALTER TABLE readings SET (timescaledb.compress, timescaledb.compress_segmentby = 'device_id, metric',
                          timescaledb.compress_orderby = 'time');
SELECT add_compression_policy('readings', interval '40 days');
CREATE TABLE platform_features (name text PRIMARY KEY, enabled boolean NOT NULL);
INSERT INTO platform_features VALUES ('maintained_rollups', false);
