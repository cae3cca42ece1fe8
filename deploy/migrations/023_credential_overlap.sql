-- Rotation with an overlap (devices/rotation.py): a device's new credential
-- may be under a second broker username ('<id>.b' or '<id>'), so that the
-- old one keeps working until previous_until, when it is ended.
ALTER TABLE devices
    ADD COLUMN mqtt_username text,
    ADD COLUMN previous_username text,
    ADD COLUMN previous_password_hash text,
    ADD COLUMN previous_until timestamptz,
    ADD CONSTRAINT devices_mqtt_username CHECK (mqtt_username IN (id, id || '.b')),
    ADD CONSTRAINT devices_previous CHECK (
        (previous_username IS NULL) = (previous_until IS NULL)
        AND (previous_username IS NULL) = (previous_password_hash IS NULL)
        AND previous_username IN (id, id || '.b')
        AND previous_username IS DISTINCT FROM coalesce(mqtt_username, id));
