-- A reject keeps a bounded prefix of its payload (ingest/rejects.py,
-- PAYLOAD_PREFIX_BYTES) with the whole payload's size and SHA-256. Rejects
-- stored before keep the same: their payloads are cut here.
ALTER TABLE rejects
    ADD COLUMN payload_size   integer,
    ADD COLUMN payload_sha256 bytea;
UPDATE rejects SET payload_size = octet_length(payload), payload_sha256 = sha256(payload);
UPDATE rejects SET payload = substring(payload FROM 1 FOR 4096) WHERE octet_length(payload) > 4096;
ALTER TABLE rejects
    ALTER COLUMN payload_size SET NOT NULL,
    ALTER COLUMN payload_sha256 SET NOT NULL,
    ADD CONSTRAINT rejects_payload_prefix CHECK (octet_length(payload) <= payload_size);
