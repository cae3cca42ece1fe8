-- A paddy stays; each year it has a season: that year's cultivar and
-- transplanting date (and, later, its observations and analytics results).
-- Earlier seasons are the field's history. fields.cultivar and
-- fields.transplanted_on mirror the latest season.
CREATE TABLE field_seasons (
    field_id        text NOT NULL REFERENCES fields (id),
    year            integer NOT NULL CHECK (year BETWEEN 1900 AND 2200),
    cultivar        text NOT NULL,
    transplanted_on date NOT NULL CHECK (extract(year FROM transplanted_on) = year),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (field_id, year)
);

INSERT INTO field_seasons (field_id, year, cultivar, transplanted_on)
SELECT id, extract(year FROM transplanted_on)::integer, cultivar, transplanted_on
FROM fields WHERE transplanted_on IS NOT NULL;
