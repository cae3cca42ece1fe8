-- Analytics: what officers record, and what the analytics compute from the
-- readings, the images and those records. One table per kind of result, each
-- row with the date it was computed for (a season replayed "as of" a past day
-- keeps its own rows). The API only reads these tables.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'agri_analytics') THEN
        CREATE ROLE agri_analytics NOLOGIN;
    END IF;
END
$$;

-- Officers' records (imported from their spreadsheets): heading and
-- maturity dates, lab protein, notes. One record per field, kind and date.
CREATE TABLE observations (
    id          bigserial PRIMARY KEY,
    field_id    text NOT NULL REFERENCES fields (id),
    year        integer NOT NULL CHECK (year BETWEEN 1900 AND 2200),
    kind        text NOT NULL CHECK (kind IN ('heading', 'maturity', 'transplanting',
                                                'lab_protein', 'yield', 'note')),
    observed_on date NOT NULL CHECK (extract(year FROM observed_on) = year),
    value       double precision,
    note        text CHECK (length(note) <= 2000),
    recorded_by text,
    source      text NOT NULL DEFAULT 'import',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (field_id, kind, observed_on)
);
CREATE INDEX observations_season ON observations (year, kind);

-- A cultivar's development parameters (G and Th of the DVR model) refitted on
-- heading dates recorded in the seasons before ``for_year``.
CREATE TABLE cultivar_calibrations (
    cultivar      text NOT NULL,
    for_year      integer NOT NULL,
    g             double precision NOT NULL,
    th            double precision NOT NULL,
    observations  integer NOT NULL,           -- records used (weather complete)
    records       integer NOT NULL,           -- records there were
    rmse_days     double precision NOT NULL,
    seasons       integer[] NOT NULL,
    computed_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (cultivar, for_year)
);

-- Growth stage of a field's season as of a day.
CREATE TABLE field_stages (
    field_id          text NOT NULL REFERENCES fields (id),
    computed_for      date NOT NULL,
    year              integer NOT NULL,
    cultivar          text NOT NULL,
    dvi               double precision NOT NULL,
    stage             text NOT NULL,
    heading           date,
    heading_observed  boolean NOT NULL DEFAULT false,
    maturity          date,
    maturity_observed boolean NOT NULL DEFAULT false,
    station_id        text,
    water_sensor_id   text,
    calibrated        boolean NOT NULL DEFAULT false,
    computed_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (field_id, computed_for)
);

CREATE TABLE field_harvest_windows (
    field_id      text NOT NULL REFERENCES fields (id),
    computed_for  date NOT NULL,
    opens         date,
    closes        date,
    opens_cday    double precision NOT NULL,
    closes_cday   double precision NOT NULL,
    cday_to_date  double precision,
    heat_adjusted boolean NOT NULL DEFAULT false,
    rule          text NOT NULL,
    region_order  integer,                    -- harvest order among the municipality's fields
    order_basis   text,
    computed_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (field_id, computed_for)
);

-- Cold, heat and blast risk of a field as of a day; ``details`` holds the
-- evidence (numbers and dates) the level was decided from.
CREATE TABLE field_risks (
    field_id     text NOT NULL REFERENCES fields (id),
    computed_for date NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('cold', 'heat', 'blast')),
    level        text NOT NULL CHECK (level IN ('none', 'low', 'moderate', 'high')),
    value        double precision,
    details      jsonb NOT NULL DEFAULT '{}',
    computed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (field_id, computed_for, kind)
);

-- BLASTAM's class of each night at a weather station.
CREATE TABLE station_blast (
    station_id      text NOT NULL,
    day             date NOT NULL,
    risk            text,
    wet_hours       integer NOT NULL,
    wet_mean_c      double precision,
    five_day_mean_c double precision,
    source          text NOT NULL,
    scout_from      date,
    computed_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (station_id, day)
);

-- Target water depth band of each day of a field's season, as estimated on
-- ``computed_for`` (the band follows the estimated heading date).
CREATE TABLE field_water_bands (
    field_id     text NOT NULL REFERENCES fields (id),
    day          date NOT NULL,
    low_m        double precision NOT NULL,
    high_m       double precision NOT NULL,
    phase        text NOT NULL,
    computed_for date NOT NULL,
    PRIMARY KEY (field_id, day)
);

CREATE TABLE field_water_status (
    field_id       text NOT NULL REFERENCES fields (id),
    computed_for   date NOT NULL,
    state          text NOT NULL CHECK (state IN ('inside', 'below', 'above', 'no data')),
    off_since      timestamptz,
    off_hours      double precision,
    share_inside   double precision,
    latest_level_m double precision,
    latest_at      timestamptz,
    device_id      text,
    computed_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (field_id, computed_for)
);

-- Drone surveys and satellite scenes, and their processing.
CREATE TABLE images (
    id           bigserial PRIMARY KEY,
    source       text NOT NULL,
    path         text NOT NULL,
    sha256       text NOT NULL UNIQUE,
    acquired_at  timestamptz,
    status       text NOT NULL DEFAULT 'pending'
                 CHECK (status IN ('pending', 'processing', 'done', 'failed')),
    error        text CHECK (length(error) <= 2000),
    added_by     text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    processed_at timestamptz
);

-- Per-field index statistics of one image (``stats``: {quantity}_{stat}).
CREATE TABLE field_index_stats (
    image_id       bigint NOT NULL REFERENCES images (id),
    field_id       text NOT NULL REFERENCES fields (id),
    acquired_on    date,
    ndvi_mean      double precision,
    gndvi_mean     double precision,
    ndre_mean      double precision,
    valid_fraction double precision NOT NULL,
    stats          jsonb NOT NULL,
    PRIMARY KEY (image_id, field_id)
);

CREATE TABLE protein_models (
    year       integer NOT NULL,
    image_id   bigint NOT NULL REFERENCES images (id),
    samples    integer NOT NULL,
    cv_r2      double precision NOT NULL,
    cv_rmse    double precision NOT NULL,
    model      jsonb NOT NULL,
    computed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (year, image_id)
);

CREATE TABLE field_protein (
    field_id    text NOT NULL REFERENCES fields (id),
    image_id    bigint NOT NULL REFERENCES images (id),
    year        integer NOT NULL,
    protein_pct double precision,
    class       text,
    computed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (field_id, image_id)
);

CREATE TABLE field_maturity (
    field_id    text NOT NULL REFERENCES fields (id),
    image_id    bigint NOT NULL REFERENCES images (id),
    red_mean    double precision,
    rank        double precision,
    class       integer,
    colour      text,
    computed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (field_id, image_id)
);

CREATE TABLE nitrogen_advice (
    field_id      text NOT NULL REFERENCES fields (id),
    for_year      integer NOT NULL,
    total_n       double precision NOT NULL,
    basal_n       double precision NOT NULL,
    details       jsonb NOT NULL DEFAULT '{}',
    computed_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (field_id, for_year)
);

-- Advice drafted by the rules, reviewed and published by an officer. ``key``
-- is the rule's identity (kind, region, first day): a daily re-run updates
-- its draft instead of adding another.
CREATE TABLE advisories (
    id           bigserial PRIMARY KEY,
    key          text NOT NULL UNIQUE,
    kind         text NOT NULL,
    severity     text NOT NULL CHECK (severity IN ('info', 'warning', 'urgent')),
    status       text NOT NULL DEFAULT 'draft'
                 CHECK (status IN ('draft', 'published', 'withdrawn')),
    municipality text,
    field_ids    text[] NOT NULL,
    reason       text NOT NULL,
    evidence     jsonb NOT NULL DEFAULT '{}',
    valid_from   date NOT NULL,
    valid_until  date NOT NULL,
    title_ja     text NOT NULL,
    body_ja      text NOT NULL,
    title_en     text NOT NULL,
    body_en      text NOT NULL,
    computed_for date NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
CREATE INDEX advisories_fields ON advisories USING gin (field_ids);

-- Scheduled analytics runs: one row per schedule and day, taken by whichever
-- process inserts it first.
CREATE TABLE analytics_runs (
    schedule    text NOT NULL,
    run_for     date NOT NULL,
    status      text NOT NULL CHECK (status IN ('running', 'done', 'failed')),
    taken_by    text NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    summary     jsonb NOT NULL DEFAULT '{}',
    error       text CHECK (length(error) <= 2000),
    PRIMARY KEY (schedule, run_for)
);
