-- Images uploaded through the API (POST /api/v1/flights): the drone and the
-- flight they came from, and the registered fields their footprint
-- overlapped when they were uploaded, so that whoever sees one of those
-- fields sees the flight before it is processed. Drone records get an id:
-- the cursor of their list (newest first).
ALTER TABLE images ADD COLUMN drone_id text CHECK (drone_id ~ '^[A-Za-z0-9_-]{1,64}$');
ALTER TABLE images ADD COLUMN flight text CHECK (char_length(flight) <= 100);
ALTER TABLE images ADD COLUMN field_ids text[] NOT NULL DEFAULT '{}';
CREATE INDEX images_fields ON images USING gin (field_ids);
CREATE INDEX images_added_by ON images (added_by);
CREATE INDEX field_index_stats_field ON field_index_stats (field_id, acquired_on DESC);

ALTER TABLE drone_records ADD COLUMN id bigserial;
CREATE UNIQUE INDEX drone_records_id ON drone_records (id);
CREATE INDEX drone_records_kind ON drone_records (kind, id DESC);
