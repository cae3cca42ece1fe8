-- Officers publish advisories: to fields, to a group of fields (a 生産組合,
-- a JA branch) or to whole municipalities of their region; they edit drafts
-- and published advisories (every change kept) and withdraw them. What an
-- officer records through the API goes to ``observations`` (008); a record
-- removed there is kept in ``observation_removals``.

-- A named group of fields kept by the officers of the group's municipality.
CREATE TABLE field_groups (
    id           bigserial PRIMARY KEY,
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    municipality text NOT NULL CHECK (length(municipality) BETWEEN 1 AND 100),
    created_by   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (municipality, name)
);

CREATE TABLE field_group_members (
    group_id  bigint NOT NULL REFERENCES field_groups (id) ON DELETE CASCADE,
    field_id  text NOT NULL REFERENCES fields (id),
    added_by  text NOT NULL,
    added_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, field_id)
);
CREATE INDEX field_group_members_field ON field_group_members (field_id);

-- Who wrote an advisory by hand (null: the analytics' rules), who last
-- edited it, who withdrew it.
ALTER TABLE advisories
    ADD COLUMN created_by   text,
    ADD COLUMN edited_by    text,
    ADD COLUMN edited_at    timestamptz,
    ADD COLUMN withdrawn_by text,
    ADD COLUMN withdrawn_at timestamptz;
CREATE INDEX advisories_municipality ON advisories (municipality, id);

-- Whom a published advisory reaches: exactly one kind of target per row.
-- A farmer sees the advisory on every field a live row reaches (a group's
-- members as they are now).
CREATE TABLE advisory_publications (
    id             bigserial PRIMARY KEY,
    advisory_id    bigint NOT NULL REFERENCES advisories (id),
    target         text NOT NULL CHECK (target IN ('fields', 'group', 'region')),
    field_ids      text[] NOT NULL DEFAULT '{}',
    group_id       bigint REFERENCES field_groups (id),
    municipalities text[] NOT NULL DEFAULT '{}',
    published_by   text NOT NULL,
    published_at   timestamptz NOT NULL DEFAULT now(),
    withdrawn_at   timestamptz,
    CHECK ((target = 'fields') = (cardinality(field_ids) > 0)),
    CHECK ((target = 'group') = (group_id IS NOT NULL)),
    CHECK ((target = 'region') = (cardinality(municipalities) > 0))
);
CREATE INDEX advisory_publications_advisory ON advisory_publications (advisory_id);
CREATE INDEX advisory_publications_fields ON advisory_publications USING gin (field_ids);
CREATE INDEX advisory_publications_region ON advisory_publications USING gin (municipalities);
CREATE INDEX advisory_publications_group ON advisory_publications (group_id);

-- Every change an officer made to an advisory: ``changes`` holds each
-- changed column's text before and after ({"body_ja": {"from": .., "to": ..}});
-- a publication its target.
CREATE TABLE advisory_history (
    id          bigserial PRIMARY KEY,
    advisory_id bigint NOT NULL REFERENCES advisories (id),
    action      text NOT NULL CHECK (action IN ('create', 'edit', 'publish', 'withdraw')),
    done_by     text NOT NULL,
    done_at     timestamptz NOT NULL DEFAULT now(),
    changes     jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX advisory_history_advisory ON advisory_history (advisory_id, id);

-- Observations removed through the API, as they were, with who removed them:
-- the analytics no longer use them, the record of them stays.
CREATE TABLE observation_removals (
    id          bigint PRIMARY KEY,
    field_id    text NOT NULL REFERENCES fields (id),
    year        integer NOT NULL,
    kind        text NOT NULL,
    observed_on date NOT NULL,
    value       double precision,
    note        text,
    recorded_by text,
    source      text NOT NULL,
    created_at  timestamptz NOT NULL,
    removed_by  text NOT NULL,
    removed_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX observation_removals_field ON observation_removals (field_id);
CREATE INDEX observations_field ON observations (field_id, id);
