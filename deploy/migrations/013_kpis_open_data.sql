-- What the plan office keeps and publishes: the register of agri-tech
-- initiatives (counted beside what the platform observes itself), which open
-- datasets are published, and the showcase of apps and services built on
-- them. The lists of initiative kinds and of datasets are in the API
-- (api/queries/kpis.py, api/queries/open_data.py); the API is their only writer.

CREATE TABLE initiatives (
    id           bigserial PRIMARY KEY,
    name         text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    kind         text NOT NULL CHECK (char_length(kind) BETWEEN 1 AND 40),
    municipality text NOT NULL CHECK (char_length(municipality) BETWEEN 1 AND 100),
    started_on   date NOT NULL,
    status       text NOT NULL CHECK (status IN ('planned', 'active', 'ended')),
    evidence     text NOT NULL DEFAULT '' CHECK (char_length(evidence) <= 2000),
    recorded_by  text NOT NULL REFERENCES users (name),
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    updated_by   text NOT NULL REFERENCES users (name),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX initiatives_municipality ON initiatives (municipality, id);

-- A dataset of the catalogue is downloadable only while published. The first
-- publication's time stays (it is what the indicators count); withdrawing
-- keeps the row with published = false.
CREATE TABLE open_datasets (
    name         text PRIMARY KEY CHECK (char_length(name) BETWEEN 1 AND 64),
    published    boolean NOT NULL DEFAULT false,
    published_at timestamptz,
    published_by text REFERENCES users (name),
    withdrawn_at timestamptz,
    changed_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE showcase_apps (
    id            bigserial PRIMARY KEY,
    name          text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    organisation  text NOT NULL CHECK (char_length(organisation) BETWEEN 1 AND 200),
    url           text NOT NULL CHECK (url ~ '^https?://' AND char_length(url) <= 500),
    datasets      text[] NOT NULL DEFAULT '{}',
    description   text NOT NULL DEFAULT '' CHECK (char_length(description) <= 2000),
    registered_by text NOT NULL REFERENCES users (name),
    registered_at timestamptz NOT NULL DEFAULT now()
);
