-- Sensor quality (analytics/quality.py, quality_store.py). Readings are
-- flagged, never deleted: a flag covers one device's readings of one metric
-- from from_time to to_time (both included), or the device as a whole
-- (metric '*': a silence, which covers no reading). A quality run replaces
-- the flags starting in its window, so the key makes re-running idempotent.
CREATE TABLE reading_flags (
    device_id   text COLLATE "C" NOT NULL,
    metric      text COLLATE "C" NOT NULL,      -- '*': the whole device
    kind        text NOT NULL CHECK (kind IN ('range', 'clock', 'spike', 'stuck', 'drift',
                                              'silent')),
    from_time   timestamptz NOT NULL,
    to_time     timestamptz NOT NULL CHECK (to_time >= from_time),
    readings    integer NOT NULL CHECK (readings >= 0),  -- flagged readings in the range
    excludes    boolean NOT NULL,               -- its readings are left out of readings_usable
    detail      jsonb NOT NULL DEFAULT '{}',    -- the check's numbers (value, limits, hours)
    computed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (device_id, metric, kind, from_time)
);
-- The lookup of readings_usable: a reading's excluding flags.
CREATE INDEX reading_flags_excluding ON reading_flags (device_id, metric, from_time)
    INCLUDE (to_time) WHERE excludes;

-- Each device's quality of each local (Asia/Tokyo) day: score 0..1 (analytics
-- ignore a device below analytics/quality.py USABLE_SCORE), the anomaly score
-- among the devices of its profile (NULL when too few to compare), and the
-- reasons a person reads ("water_level stuck at 0.052 m since ...").
CREATE TABLE device_quality (
    device_id     text COLLATE "C" NOT NULL,
    computed_for  date NOT NULL,
    score         double precision NOT NULL CHECK (score >= 0 AND score <= 1),
    anomaly_score double precision CHECK (anomaly_score >= 0 AND anomaly_score <= 1),
    reasons       jsonb NOT NULL DEFAULT '[]',
    computed_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (device_id, computed_for)
);
CREATE INDEX device_quality_day ON device_quality (computed_for, score);

-- The one place analytics read clean data from: readings without the ones an
-- excluding flag covers.
CREATE VIEW readings_usable AS
SELECT r.device_id, r.metric, r.time, r.value, r.received_at
FROM readings r
WHERE NOT EXISTS (
    SELECT FROM reading_flags f
    WHERE f.excludes AND f.device_id = r.device_id AND f.metric = r.metric
      AND f.from_time <= r.time AND f.to_time >= r.time);
