-- Users, fields, device profiles and devices.
CREATE EXTENSION IF NOT EXISTS timescaledb;

CREATE TABLE users (
    name        text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9_.@-]{1,64}$'),
    role        text NOT NULL CHECK (role IN ('farmer', 'officer', 'developer', 'planner', 'admin')),
    regions     text[] NOT NULL DEFAULT '{}',
    token_hash  bytea NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    disabled_at timestamptz
);

CREATE TABLE fields (
    id              text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9_-]{1,64}$'),
    name            text NOT NULL,
    owner           text REFERENCES users (name),
    cultivar        text NOT NULL,
    transplanted_on date,
    municipality    text NOT NULL,
    geometry        jsonb NOT NULL,          -- GeoJSON Polygon, lon/lat (RFC 7946)
    area_m2         double precision,
    centroid_lon    double precision,
    centroid_lat    double precision,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX fields_owner ON fields (owner);
CREATE INDEX fields_municipality ON fields (municipality);

-- Mirror of the profiles defined in code (devices/profiles.py), kept in step
-- at every migration run so that SQL users can join on them.
CREATE TABLE device_profiles (
    name        text PRIMARY KEY,
    description text NOT NULL,
    metrics     jsonb NOT NULL
);

CREATE TABLE devices (
    id            text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9_-]{1,64}$'),
    profile       text NOT NULL REFERENCES device_profiles (name),
    field_id      text REFERENCES fields (id),
    owner         text REFERENCES users (name),
    dev_eui       text UNIQUE CHECK (dev_eui ~ '^[0-9a-f]{16}$'),
    password_hash text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz
);
CREATE INDEX devices_field ON devices (field_id);
