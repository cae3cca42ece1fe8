-- The field diary: what a farmer did on a field and when (work, water
-- management, fertiliser, spraying, notes), with an optional photo kept
-- under AGRI_HOME/photos (the file's SHA-256 names it). It is read beside the
-- season's data and passed on with the field to a successor.
CREATE TABLE field_diary (
    id          bigserial PRIMARY KEY,
    field_id    text NOT NULL REFERENCES fields (id),
    day         date NOT NULL CHECK (day BETWEEN '1900-01-01' AND '2200-12-31'),
    kind        text NOT NULL CHECK (kind IN ('work', 'water', 'fertiliser', 'spraying', 'note')),
    body        text NOT NULL CHECK (char_length(body) BETWEEN 1 AND 2000),
    photo       text CHECK (photo ~ '^[0-9a-f]{64}\.(jpg|png)$'),
    photo_bytes integer CHECK (photo_bytes > 0),
    author      text NOT NULL REFERENCES users (name),
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX field_diary_field ON field_diary (field_id, day DESC, id DESC);
