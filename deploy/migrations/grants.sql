-- Rights of the service roles, the one place that lists them. Applied at the
-- end of every migration run (idempotent), after the numbered migrations, so
-- a migration that adds a table adds its grants here. Nothing here gives
-- ownership, CREATE on a schema or superuser rights: only the migration owner
-- changes the schema.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO agri_ingest, agri_api;

-- Ingest (ingest/writer.py, stats.py, directory.py, maintenance.py): looks
-- up devices (never their password hashes), writes readings, rollups,
-- rejects, device events, drone records and its counters. RETURNING and the
-- rollups' ON CONFLICT DO UPDATE read what they write.
GRANT SELECT (id, profile, field_id, owner, dev_eui, created_at, revoked_at) ON devices
    TO agri_ingest;
GRANT SELECT ON fields, device_profiles, platform_features TO agri_ingest;
-- Which fields a drone may serve: its owner's regions (no tokens, no secrets).
GRANT SELECT (name, regions) ON users TO agri_ingest;
GRANT SELECT, INSERT ON readings TO agri_ingest;
GRANT SELECT, INSERT, UPDATE ON readings_hourly, readings_daily TO agri_ingest;
GRANT INSERT ON rejects, device_events, drone_records TO agri_ingest;
GRANT USAGE ON SEQUENCE rejects_id_seq TO agri_ingest;
GRANT SELECT, INSERT, UPDATE ON ingest_stats TO agri_ingest;
GRANT EXECUTE ON FUNCTION drop_old_readings(interval) TO agri_ingest;

-- API (api/): reads what it serves; looks users up by token hash.
GRANT SELECT (name, role, regions, created_at, disabled_at) ON users TO agri_api;
GRANT SELECT (id, profile, field_id, owner, dev_eui, created_at, revoked_at) ON devices
    TO agri_api;
GRANT SELECT ON fields, field_seasons, device_profiles, platform_features, readings,
    readings_hourly, readings_daily, rejects, device_events, drone_records, ingest_stats
    TO agri_api;

-- Analytics (analytics/): reads readings, fields and devices; writes the
-- results, the officers' records it imports, images' processing state and
-- the advisory drafts; takes scheduled runs.
GRANT USAGE ON SCHEMA public TO agri_analytics;
GRANT SELECT (id, profile, field_id, owner, dev_eui, created_at, revoked_at) ON devices
    TO agri_analytics;
GRANT SELECT ON fields, field_seasons, device_profiles, readings, readings_hourly,
    readings_daily TO agri_analytics;
GRANT SELECT, INSERT, UPDATE, DELETE ON observations, cultivar_calibrations, field_stages,
    field_harvest_windows, field_risks, station_blast, field_water_bands, field_water_status,
    field_index_stats, protein_models, field_protein, field_maturity, nitrogen_advice,
    analytics_runs TO agri_analytics;
GRANT SELECT, INSERT, UPDATE ON images, advisories TO agri_analytics;
GRANT USAGE ON SEQUENCE observations_id_seq, images_id_seq, advisories_id_seq
    TO agri_analytics;
-- The API serves the results and the records; it does not write them.
GRANT SELECT ON observations, cultivar_calibrations, field_stages, field_harvest_windows,
    field_risks, station_blast, field_water_bands, field_water_status, images,
    field_index_stats, protein_models, field_protein, field_maturity, nitrogen_advice,
    advisories, analytics_runs TO agri_api;

-- Sensor quality (analytics/quality_store.py): the analytics write the flags
-- and scores (a run replaces its window's flags) and read clean readings; the
-- API reads all three.
GRANT SELECT, INSERT, UPDATE, DELETE ON reading_flags, device_quality TO agri_analytics;
GRANT SELECT ON reading_flags, device_quality, readings_usable TO agri_analytics, agri_api;

-- Accounts (api/accounts.py, sessions.py, sign_in.py): the API keeps the
-- pages' passwords, tokens, sessions, sign-in links, login attempts, the
-- access log and shares; it never creates users or changes roles or regions
-- (only `agri users` does, as the migration owner).
GRANT SELECT (name, role, regions, created_at, disabled_at, password_hash,
              must_change_password, display_name, language) ON users TO agri_api;
GRANT UPDATE (password_hash, must_change_password, display_name, language) ON users TO agri_api;
GRANT SELECT, INSERT, UPDATE ON api_tokens, page_sessions, sign_in_links, field_shares
    TO agri_api;
GRANT SELECT, INSERT, DELETE ON login_attempts, access_log TO agri_api;
GRANT USAGE ON SEQUENCE api_tokens_id_seq, login_attempts_id_seq, access_log_id_seq TO agri_api;
GRANT SELECT ON field_shares TO agri_analytics;

-- Advisory publishing and officers' records (api/queries/advisories.py,
-- groups.py, observations.py): the API drafts advisories by hand, edits their
-- text and validity, publishes and withdraws them (never their rule's key,
-- kind, fields or evidence), keeps field groups, publication targets and the
-- edit history, and records, corrects and removes observations (a removed one
-- is kept in observation_removals). The analytics keep their own rights.
GRANT INSERT ON advisories TO agri_api;
GRANT UPDATE (severity, status, valid_from, valid_until, title_ja, body_ja, title_en, body_en,
              updated_at, published_at, edited_by, edited_at, withdrawn_by, withdrawn_at)
    ON advisories TO agri_api;
GRANT SELECT, INSERT, UPDATE ON field_groups, advisory_publications TO agri_api;
GRANT SELECT, INSERT, DELETE ON field_group_members TO agri_api;
GRANT SELECT, INSERT ON advisory_history, observation_removals TO agri_api;
GRANT INSERT, UPDATE, DELETE ON observations TO agri_api;
GRANT USAGE ON SEQUENCE advisories_id_seq, field_groups_id_seq, advisory_publications_id_seq,
    advisory_history_id_seq, observations_id_seq TO agri_api;
GRANT SELECT ON field_groups, field_group_members, advisory_publications TO agri_analytics;

-- Imagery uploads (api/routes/imagery.py): the API registers an uploaded
-- image as pending (the analytics process it); it never changes its status.
-- Ingest numbers the drone records it writes.
GRANT INSERT (source, path, sha256, acquired_at, added_by, drone_id, flight, field_ids)
    ON images TO agri_api;
GRANT USAGE ON SEQUENCE images_id_seq TO agri_api;
GRANT USAGE ON SEQUENCE drone_records_id_seq TO agri_ingest;

-- The plan office (api/queries/kpis.py, open_data.py): the API keeps the
-- initiatives register, which open datasets are published and the showcase;
-- it reads them for the indicators and the catalogue.
GRANT SELECT, INSERT, UPDATE ON initiatives, open_datasets TO agri_api;
GRANT SELECT, INSERT ON showcase_apps TO agri_api;
GRANT USAGE ON SEQUENCE initiatives_id_seq, showcase_apps_id_seq TO agri_api;

-- Field import (api/routes/field_import.py): admins and officers import
-- fields (the platform's GeoJSON or the Ministry's field polygons) and their
-- seasons through the API; it creates no users.
GRANT INSERT, UPDATE ON fields, field_seasons TO agri_api;

-- Field diary (api/web/diary_store.py): the pages add entries and read them.
GRANT SELECT, INSERT ON field_diary TO agri_api;
GRANT USAGE ON SEQUENCE field_diary_id_seq TO agri_api;

-- Device commands (api/routes/device_commands.py, devices/commands.py): the
-- API queues commands and reads their log; ingest sends them, expires them
-- and records the devices' answers (never what was asked or by whom), and
-- reads the latest stored reading to tell a device what is committed.
GRANT SELECT ON device_commands TO agri_api;
GRANT INSERT (device_id, name, args, requested_by, expires_at) ON device_commands TO agri_api;
GRANT USAGE ON SEQUENCE device_commands_id_seq TO agri_api;
GRANT SELECT ON device_commands TO agri_ingest;
GRANT UPDATE (status, reason, sent_at, attempts, acknowledged_at, done_at) ON device_commands
    TO agri_ingest;

-- The sandbox (devices/conformance.py, api/routes/conformance.py): the API
-- reads which devices are prototypes and of which organisation, reads the
-- reports and stores the ones a developer or an admin runs; it never changes
-- or removes a report. The CLI runs as the owner.
GRANT SELECT (prototype, organisation) ON devices TO agri_api;
GRANT SELECT, INSERT ON conformance_reports TO agri_api;
GRANT USAGE ON SEQUENCE conformance_reports_id_seq TO agri_api;

-- Alerts (alerts/): the alerts service reads what its rules judge (readings,
-- devices, fields and their results, advisories published, quality flags,
-- commands to gates, the users to tell and their choices), opens and clears
-- alerts, queues and delivers their messages and keeps its cursor. The API
-- shows alerts and deliveries, keeps each user's choices and links LINE
-- accounts; it never opens, clears or delivers an alert.
GRANT USAGE ON SCHEMA public TO agri_alerts;
GRANT SELECT (id, profile, field_id, owner, dev_eui, created_at, revoked_at, gate_role)
    ON devices TO agri_alerts;
GRANT SELECT (name, role, regions, disabled_at, display_name, language) ON users TO agri_alerts;
GRANT SELECT ON fields, field_seasons, field_shares, device_profiles, readings,
    readings_hourly, readings_daily, field_stages, field_harvest_windows, field_risks,
    station_blast, field_water_bands, field_water_status, advisories, advisory_publications,
    field_groups, field_group_members, reading_flags, device_quality, device_commands,
    water_control, water_control_log, alert_preferences TO agri_alerts;
GRANT SELECT, INSERT, UPDATE ON alerts, alert_deliveries, alert_cursors TO agri_alerts;
GRANT USAGE ON SEQUENCE alerts_id_seq, alert_deliveries_id_seq TO agri_alerts;
GRANT SELECT ON alerts, alert_deliveries TO agri_api;
GRANT SELECT, INSERT, UPDATE ON alert_preferences TO agri_api;
GRANT SELECT, INSERT, UPDATE, DELETE ON line_link_codes TO agri_api;

-- Water control (water/): the controller reads the fields' levels, bands,
-- quality flags, deep-water advisories, gates and modes, queues commands to
-- the gates and logs each decision. The API sets modes and schedules, queues
-- people's commands (devices' own grants above), records a manual override
-- and logs it, and reads the log.
GRANT USAGE ON SCHEMA public TO agri_water;
GRANT SELECT (id, profile, field_id, owner, dev_eui, created_at, revoked_at, gate_role)
    ON devices TO agri_water;
GRANT SELECT (gate_role) ON devices TO agri_api, agri_ingest, agri_analytics;
GRANT SELECT ON fields, field_seasons, device_profiles, readings, field_water_bands,
    field_water_status, field_stages, advisories, advisory_publications, field_groups,
    field_group_members, reading_flags, device_quality, water_control TO agri_water;
GRANT SELECT, INSERT (device_id, name, args, requested_by, expires_at) ON device_commands
    TO agri_water;
GRANT USAGE ON SEQUENCE device_commands_id_seq TO agri_water;
GRANT SELECT, INSERT ON water_control_log TO agri_water;
GRANT USAGE ON SEQUENCE water_control_log_id_seq TO agri_water;
GRANT SELECT, INSERT, UPDATE ON water_control TO agri_api;
GRANT SELECT, INSERT ON water_control_log TO agri_api;
GRANT USAGE ON SEQUENCE water_control_log_id_seq TO agri_api;

-- Broker sync run by ingest (given the broker's admin account) keeps the
-- accounts of rotated credentials (devices/rotation.py); never the hashes.
GRANT SELECT (mqtt_username, previous_username, previous_until) ON devices TO agri_ingest;

-- LoRaWAN bridges (devices/bridges.py, 022_lorawan_bridges.sql): whoever reads
-- devices may read which bridge a device is behind and the bridges' names,
-- kinds and applications (never their password hashes). Ingest checks an
-- uplink's application and its broker sync leaves bridged devices alone.
GRANT SELECT (bridge) ON devices TO agri_ingest, agri_api, agri_analytics, agri_alerts,
    agri_water;
GRANT SELECT (name, kind, application, tenant, created_at, revoked_at) ON lorawan_bridges
    TO agri_ingest, agri_api, agri_analytics, agri_alerts, agri_water;
