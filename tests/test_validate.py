"""Checks of decoded records against device profiles, and the MQTT topic scheme."""

from __future__ import annotations

import random
from fractions import Fraction

import pytest

from agri.devices import topics
from agri.devices.profiles import METRICS, profile, scale
from agri.devices.topics import Format, Route
from agri.ingest.validate import TimeLimits, profile_metrics, validate
from agri.settings import Settings

RECEIVED = 1_750_000_000.0
DAY = 86_400.0

# The limits as the ingest service builds them from the default settings.
DEFAULT_AGE_DAYS = Settings.model_fields["max_age_days"].default
DEFAULT_FUTURE_S = Settings.model_fields["max_future_s"].default
LIMITS = TimeLimits(DEFAULT_AGE_DAYS * DAY, DEFAULT_FUTURE_S)


def check(records, profile_name="paddy-water", limits=LIMITS):
    prof = profile(profile_name)
    return validate(records, device_id="dev-1", profile=prof, metrics=profile_metrics(prof),
                    received=RECEIVED, limits=limits)


def reason_of(record, profile_name="paddy-water", limits=LIMITS) -> str:
    rows, errors = check([record], profile_name, limits)
    assert rows == []
    assert len(errors) == 1 and errors[0][0] == 0
    return errors[0][1]


def value_of(record, profile_name="paddy-water", limits=LIMITS) -> float:
    rows, errors = check([record], profile_name, limits)
    assert errors == []
    ((device, name, t, value, received),) = rows
    assert (device, name, t, received) == ("dev-1", record[0], record[3], RECEIVED)
    return value


# ---------------------------------------------------------------------------
# Metrics and value kinds


def test_defaults_are_the_documented_ones():
    assert DEFAULT_FUTURE_S == 600
    assert DEFAULT_AGE_DAYS == 35


def test_good_records_become_rows():
    rows, errors = check([("water_level", "m", 0.1, RECEIVED - 60),
                          ("water_temp", "Cel", 21.5, RECEIVED),
                          ("battery", None, 87, RECEIVED)])
    assert errors == []
    assert rows == [("dev-1", "water_level", RECEIVED - 60, 0.1, RECEIVED),
                    ("dev-1", "water_temp", RECEIVED, 21.5, RECEIVED),
                    ("dev-1", "battery", RECEIVED, 87, RECEIVED)]


def test_unknown_metric_lists_the_profiles_metrics():
    reason = reason_of(("air_temp", "Cel", 20.0, RECEIVED))
    assert "unknown metric 'air_temp'" in reason
    assert "'paddy-water'" in reason
    assert "water_level, water_temp, battery" in reason


def test_unknown_metric_for_a_profile_without_readings():
    reason = reason_of(("battery", "%EL", 50.0, RECEIVED), "drone")
    assert "unknown metric 'battery'" in reason
    assert "no readings" in reason


def test_a_pack_keeps_its_good_records():
    rows, errors = check([("water_temp", "Cel", 20.0, RECEIVED),
                          ("rain", "mm", 1.0, RECEIVED),
                          ("water_level", "m", 0.2, RECEIVED)])
    assert [name for _, name, *_ in rows] == ["water_temp", "water_level"]
    assert [i for i, *_ in errors] == [1]
    assert errors[0][2] == {"n": "rain", "u": "mm", "v": 1.0, "t": RECEIVED}


def test_boolean_for_a_non_boolean_metric_is_rejected():
    reason = reason_of(("water_temp", "Cel", True, RECEIVED))
    assert "water_temp" in reason and "boolean" in reason


def test_text_for_a_numeric_metric_is_rejected():
    reason = reason_of(("water_temp", "Cel", "20.5", RECEIVED))
    assert "water_temp" in reason and "text" in reason


def test_leaf_wetness_boolean_is_stored_as_a_number():
    for sent, stored in ((True, 1.0), (False, 0.0)):
        value = value_of(("leaf_wetness", None, sent, RECEIVED), "weather-station")
        assert type(value) is float and value == stored
    value = value_of(("leaf_wetness", "/", True, RECEIVED), "weather-station")
    assert type(value) is float and value == 1.0


def test_a_boolean_is_never_scaled_by_its_unit():
    # true with "%" used to be stored as 0.01.
    for sent, stored in ((True, 1.0), (False, 0.0)):
        assert value_of(("leaf_wetness", "%", sent, RECEIVED), "weather-station") == stored
    assert "unit 'cm' not accepted" in reason_of(("leaf_wetness", "cm", True, RECEIVED),
                                                 "weather-station")


# ---------------------------------------------------------------------------
# Units


@pytest.mark.parametrize(("unit", "sent", "stored"), [
    ("cm", 4.5, 0.045),
    ("mm", 45.0, 0.045),
    ("m", 0.045, 0.045),
    (None, 0.045, 0.045),
    ("cm", 12, 0.12),
    ("mm", 300, 0.3),
])
def test_water_level_is_converted_to_metres(unit, sent, stored):
    assert value_of(("water_level", unit, sent, RECEIVED)) == stored


def test_percent_is_converted_to_a_ratio():
    assert value_of(("leaf_wetness", "%", 50, RECEIVED), "weather-station") == 0.5


@pytest.mark.parametrize(("sent", "stored"), [(36.0, 10.0), (90.0, 25.0), (1.0, 5 / 18),
                                              (7.3, float(Fraction(7.3) * Fraction(5, 18)))])
def test_a_factor_that_is_not_one_over_n_converts_exactly(sent, stored):
    """km/h to m/s is 5/18; dividing by round(1/factor) would divide by 4."""
    assert value_of(("wind_speed", "km/h", sent, RECEIVED), "weather-station") == stored


def test_every_conversion_is_correctly_rounded():
    rng = random.Random(7)
    for metric in METRICS.values():
        for unit, factor in metric.convert.items():
            assert isinstance(factor, Fraction), (metric.name, unit)
            for _ in range(200):
                v = rng.uniform(0, 100)
                assert scale(v, factor) == float(Fraction(v) * factor), (metric.name, unit, v)


def test_unit_not_accepted_names_the_accepted_units():
    reason = reason_of(("water_temp", "K", 293.15, RECEIVED))
    assert "unit 'K' not accepted for water_temp" in reason
    assert reason.endswith("send Cel")
    reason = reason_of(("water_level", "in", 2.0, RECEIVED))
    assert "unit 'in' not accepted for water_level" in reason
    assert reason.endswith("send m, cm, mm")


# ---------------------------------------------------------------------------
# Physical range, inclusive at both ends


@pytest.mark.parametrize(("profile_name", "metric", "unit", "low", "high"), [
    ("paddy-water", "water_level", "m", -0.30, 0.50),
    ("paddy-water", "water_level", "cm", -30, 50),
    ("paddy-water", "water_level", "mm", -300, 500),
    ("paddy-water", "water_temp", "Cel", -5.0, 50.0),
    ("paddy-water", "battery", "%EL", 0, 100),
    ("weather-station", "rel_humidity", "%RH", 0, 100),
    ("weather-station", "leaf_wetness", "/", 0, 1),
    ("weather-station", "solar_radiation", "W/m2", 0, 1500),
])
def test_range_limits_are_inclusive(profile_name, metric, unit, low, high):
    rows, errors = check([(metric, unit, low, RECEIVED), (metric, unit, high, RECEIVED)],
                         profile_name)
    assert errors == [] and len(rows) == 2
    step = (high - low) * 1e-6
    rows, errors = check([(metric, unit, low - step, RECEIVED),
                          (metric, unit, high + step, RECEIVED)], profile_name)
    assert rows == []
    assert [i for i, *_ in errors] == [0, 1]
    assert all("outside the physical range" in reason for _, reason, _ in errors)


def test_range_message_is_in_the_canonical_unit():
    reason = reason_of(("water_level", "cm", 60, RECEIVED))
    assert reason == "water_level = 0.6 m is outside the physical range -0.3..0.5 m"


# ---------------------------------------------------------------------------
# Measurement time


def test_milliseconds_are_detected():
    reason = reason_of(("water_temp", "Cel", 20.0, RECEIVED * 1000))
    assert "milliseconds" in reason


def test_future_limit_at_the_boundary():
    assert value_of(("water_temp", "Cel", 20.0, RECEIVED + 600)) == 20.0
    reason = reason_of(("water_temp", "Cel", 20.0, RECEIVED + 601))
    assert "601 s ahead" in reason and "at most 600 s" in reason


def test_age_limit_at_the_boundary():
    assert value_of(("water_temp", "Cel", 20.0, RECEIVED - 35 * DAY)) == 20.0
    reason = reason_of(("water_temp", "Cel", 20.0, RECEIVED - 35 * DAY - 1))
    assert "days old" in reason and "at most 35 days" in reason


def test_time_limits_are_configurable():
    limits = TimeLimits(max_age_s=DAY, max_future_s=0)
    assert value_of(("water_temp", "Cel", 20.0, RECEIVED - DAY), limits=limits) == 20.0
    assert "ahead" in reason_of(("water_temp", "Cel", 20.0, RECEIVED + 1), limits=limits)
    assert "old" in reason_of(("water_temp", "Cel", 20.0, RECEIVED - DAY - 1), limits=limits)


# ---------------------------------------------------------------------------
# Topics (docs/device-developers.md)

TTS_APP = "app1@tenant1"
CS_APP = "17c82e96-be03-4f38-aef3-f83d48582d97"
EUI = "0101010101010101"


@pytest.mark.parametrize(("topic", "route"), [
    ("agri/v1/devices/dev-1/senml", Route(Format.SENML_JSON, "dev-1")),
    ("agri/v1/devices/dev-1/senml-cbor", Route(Format.SENML_CBOR, "dev-1")),
    ("agri/v1/devices/dev-1/events", Route(Format.EVENTS, "dev-1")),
    ("agri/v1/drones/drone_7/flights", Route(Format.FLIGHTS, "drone_7")),
    ("v3/app1@tenant1/devices/dev1/up", Route(Format.TTS_UPLINK, "dev1")),
    ("v3/app1@ttn/devices/dev1/up", Route(Format.TTS_UPLINK, "dev1")),
    ("v3/app1/devices/dev1/up", Route(Format.TTS_UPLINK, "dev1")),  # Open Source: no tenant
    (f"application/{CS_APP}/device/{EUI}/event/up",
     Route(Format.CHIRPSTACK_UPLINK, EUI, dev_eui=True)),
    (f"application/{CS_APP}/device/0004A30B001C0530/event/up",
     Route(Format.CHIRPSTACK_UPLINK, "0004a30b001c0530", dev_eui=True)),
    ("agri/v1/devices/" + "a" * 64 + "/senml", Route(Format.SENML_JSON, "a" * 64)),
    ("agri/v1/devices/A-z_0-9/senml", Route(Format.SENML_JSON, "A-z_0-9")),
])
def test_contract_topics_parse(topic, route):
    assert topics.parse(topic) == route


def test_built_topics_parse_back():
    assert topics.parse(topics.senml_topic("d1")) == Route(Format.SENML_JSON, "d1")
    assert topics.parse(topics.senml_topic("d1", cbor=True)) == Route(Format.SENML_CBOR, "d1")
    assert topics.parse(topics.events_topic("d1")) == Route(Format.EVENTS, "d1")
    assert topics.parse(topics.flights_topic("dr1")) == Route(Format.FLIGHTS, "dr1")
    for tenant in ("tenant1", None):
        topic = topics.tts_uplink_topic(app="app1", tenant=tenant, device_id="dev1")
        assert topics.parse(topic) == Route(Format.TTS_UPLINK, "dev1")
    topic = topics.chirpstack_uplink_topic(application_id=CS_APP, dev_eui=EUI)
    assert topics.parse(topic) == Route(Format.CHIRPSTACK_UPLINK, EUI, dev_eui=True)


def test_ingest_filters_are_shared():
    assert topics.shared("agri/v1/devices/+/+") == "$share/ingest/agri/v1/devices/+/+"


@pytest.mark.parametrize("topic", [
    "",
    "agri",
    "agri/v1/devices/dev1",
    "agri/v1/devices/dev1/other",
    "agri/v1/devices/dev1/flights",
    "agri/v1/drones/dr1/senml",
    "agri/v1/drones/dr1/events",
    "agri/v2/devices/dev1/senml",
    "AGRI/v1/devices/dev1/senml",
    "agri/v1/device/dev1/senml",
    "agri/v1/devices/dev1/senml/extra",
    "agri/v1/devices/dev1/senml/",
    "/agri/v1/devices/dev1/senml",
    "$share/ingest/agri/v1/devices/dev1/senml",
    "$SYS/broker/clients/connected",
    f"v3/{TTS_APP}/devices/dev1/join",
    f"v3/{TTS_APP}/devices/dev1/down/queued",
    f"v3/{TTS_APP}/devices/dev1/down/sent",
    f"v3/{TTS_APP}/devices/dev1/service/data",
    f"v3/{TTS_APP}/devices/dev1/location/solved",
    f"v3/{TTS_APP}/devices/dev1/up/extra",
    f"v2/{TTS_APP}/devices/dev1/up",
    f"application/{CS_APP}/device/{EUI}/event/join",
    f"application/{CS_APP}/device/{EUI}/event/status",
    f"application/{CS_APP}/device/{EUI}/command/down",
    f"application/{CS_APP}/devices/{EUI}/event/up",
    f"application/{CS_APP}/device/{EUI}/event/up/extra",
])
def test_non_contract_topics_do_not_parse(topic):
    assert topics.parse(topic) is None


BAD_IDS = ["", "a" * 65, "dev.1", "dev 1", "dev:1", "dev@x", "dev+", "dev#", "dév", "dev\n",
           "ｄｅｖ", "١٢٣", "dev\x00"]


@pytest.mark.parametrize("bad", BAD_IDS)
def test_ids_outside_the_id_pattern_do_not_parse(bad):
    for topic in (f"agri/v1/devices/{bad}/senml", f"agri/v1/devices/{bad}/senml-cbor",
                  f"agri/v1/devices/{bad}/events", f"agri/v1/drones/{bad}/flights",
                  f"v3/{TTS_APP}/devices/{bad}/up", f"v3/app1/devices/{bad}/up"):
        assert topics.parse(topic) is None, topic


@pytest.mark.parametrize("bad", ["", "010101010101010", "01010101010101010", "010101010101010g",
                                 "0101-0101-0101-01", "+", "dev1"])
def test_chirpstack_dev_eui_must_be_16_hex_digits(bad):
    assert topics.parse(f"application/{CS_APP}/device/{bad}/event/up") is None
