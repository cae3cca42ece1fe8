-- Profile versions and the units readings are stored in.
--
-- A device records the version of its profile's definition it was
-- registered with (devices/profiles/*.toml, ``version``); devices registered
-- before profiles had versions were registered with version 1.
ALTER TABLE devices ADD COLUMN profile_version integer NOT NULL DEFAULT 1
    CHECK (profile_version > 0);

-- Readings are stored in their metric's canonical unit, so that unit must
-- never change: the first unit the device_profiles mirror gives a metric is
-- kept here, and a later profile that gives it another is refused (the
-- migration run that copies the profiles fails, naming the metric).
CREATE TABLE metric_units (
    metric text PRIMARY KEY,
    unit   text NOT NULL
);
INSERT INTO metric_units (metric, unit)
SELECT DISTINCT ON (m.key) m.key, m.value ->> 'unit'
FROM device_profiles p, jsonb_each(p.metrics) AS m
WHERE m.value ->> 'unit' IS NOT NULL
ORDER BY m.key, p.name;

CREATE FUNCTION keep_metric_units() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    m record;
    stored text;
BEGIN
    FOR m IN SELECT key, value ->> 'unit' AS unit FROM jsonb_each(NEW.metrics) LOOP
        CONTINUE WHEN m.unit IS NULL;
        SELECT unit INTO stored FROM metric_units WHERE metric = m.key;
        IF stored IS NULL THEN
            INSERT INTO metric_units (metric, unit) VALUES (m.key, m.unit);
        ELSIF stored <> m.unit THEN
            RAISE EXCEPTION 'profile %: metric % is stored in %, the profile files now say %',
                NEW.name, m.key, stored, m.unit
                USING HINT = 'readings already stored would be read in the wrong unit: keep '
                    || stored || ' as its unit (list ' || m.unit || ' under accept with its '
                    || 'factor), or give the new quantity a new metric name';
        END IF;
    END LOOP;
    RETURN NEW;
END $$;

CREATE TRIGGER device_profiles_keep_units BEFORE INSERT OR UPDATE OF metrics
    ON device_profiles FOR EACH ROW EXECUTE FUNCTION keep_metric_units();
