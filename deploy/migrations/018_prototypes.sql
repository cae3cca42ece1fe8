-- The sandbox (devices/conformance.py, docs/sandbox.md): a device registered
-- as a prototype under test, the organisation that builds it (users carry
-- no organisation, so the device does), and the conformance reports of its
-- checks, kept with it.
ALTER TABLE devices
    ADD COLUMN prototype    boolean NOT NULL DEFAULT false,
    ADD COLUMN organisation text CHECK (char_length(organisation) BETWEEN 1 AND 200);

-- One row per check run: the window of messages it read, whether every
-- check passed, and each check's result (name, status, figures, what to
-- change). created_by is the user who asked through the API or the pages;
-- NULL for the operator's `agri devices check`.
CREATE TABLE conformance_reports (
    id          bigserial PRIMARY KEY,
    device_id   text NOT NULL REFERENCES devices (id),
    created_at  timestamptz NOT NULL DEFAULT now(),
    window_from timestamptz NOT NULL,
    window_to   timestamptz NOT NULL CHECK (window_to >= window_from),
    passed      boolean NOT NULL,
    checks      jsonb NOT NULL CHECK (jsonb_typeof(checks) = 'array'),
    created_by  text REFERENCES users (name)
);
-- A device's reports, newest first; and its first passing one (the KPIs).
CREATE INDEX conformance_reports_device ON conformance_reports (device_id, created_at DESC);
CREATE INDEX conformance_reports_passed ON conformance_reports (device_id, created_at)
    WHERE passed;
