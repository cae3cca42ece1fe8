-- The database roles of the platform's services. They cannot log in: each
-- process logs in with a role that is a member of one of them (the embedded
-- stack creates those; in production the operator does, see deploy/db_roles.py).
-- Their rights are in grants.sql, applied at the end of every migration run.
-- Roles belong to the cluster, not the database: another database of the same
-- cluster (a restored copy) finds them already there.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'agri_ingest') THEN
        CREATE ROLE agri_ingest NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'agri_api') THEN
        CREATE ROLE agri_api NOLOGIN;
    END IF;
END
$$;

-- Retention needs the hypertable's owner (drop_chunks). Ingest gets this one
-- function instead of ownership: it runs with the rights of the migration
-- owner, on a fixed search path, and drops only chunks of raw readings older
-- than a day or more (rollups are kept). EXECUTE is granted in grants.sql.
CREATE FUNCTION drop_old_readings(older_than interval) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    dropped integer;
BEGIN
    IF older_than IS NULL OR older_than < interval '1 day' THEN
        RAISE EXCEPTION 'retention keeps at least one day of raw readings (asked: %)', older_than;
    END IF;
    SELECT count(*) INTO dropped FROM public.drop_chunks('public.readings', older_than => older_than);
    RETURN dropped;
END
$$;
REVOKE ALL ON FUNCTION drop_old_readings(interval) FROM PUBLIC;
