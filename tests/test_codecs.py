"""Codecs against the published examples of their own specifications.

The examples (RFC 8428 SenML, The Things Stack v3, ChirpStack v4) are read at
test time from ``../shared/vectors`` next to the repository; the cases that
need them are skipped when that folder is absent. They are never copied here.
"""

from __future__ import annotations

import base64
import json
import math
from datetime import UTC, datetime
from pathlib import Path

import cbor2
import pytest

from agri.devices.codecs import (
    RELATIVE_TIME_LIMIT,
    DecodeError,
    decode_chirpstack_uplink,
    decode_senml_cbor,
    decode_senml_json,
    decode_tts_uplink,
)

VECTORS = Path(__file__).resolve().parents[2] / "shared" / "vectors"
SENML = VECTORS / "senml"

NOW = 1_750_000_000.0  # the "now" passed to the decoder (2025-06-15T15:06:40Z)


def vector(relative: str) -> bytes:
    """Bytes of one published example; skips the test when the vectors are absent."""
    if not VECTORS.is_dir():
        pytest.skip("published example payloads (../shared/vectors) are not available")
    path = VECTORS / relative
    if not path.is_file():
        pytest.skip(f"published example {relative} is not available")
    return path.read_bytes()


def vector_json(relative: str):
    return json.loads(vector(relative))


def senml_json_names() -> list[str]:
    return sorted(p.name for p in SENML.glob("*.json")) if SENML.is_dir() else []


def typed(records):
    """Records with the kind of each value made explicit (False == 0.0 otherwise)."""
    return [(n, u, type(v) is bool, type(v) is str, v, t) for n, u, v, t in records]


def device_rule(name: str, bn: str) -> str:
    """A resolved name as the platform names it: a base name that only identifies
    the device (ending in ':' or '/') is stripped (docs/device-developers.md)."""
    if bn and bn[-1] in ":/":
        assert name.startswith(bn), (name, bn)
        return name[len(bn):]
    return name


def active_base_names(pack: list[dict]) -> list[str]:
    """The base name in force at each record of ``pack`` that carries a value."""
    bn, names = "", []
    for rec in pack:
        bn = rec.get("bn", bn)
        if any(k in rec for k in ("v", "vs", "vb", "vd")):
            names.append(bn)
    return names


def expected_from_resolved(source: list[dict], resolved: list[dict]):
    """Records expected from ``source``, given its published resolved form."""
    bns = active_base_names(source)
    assert len(bns) == len(resolved)
    return [(device_rule(r["n"], bn), r.get("u"), r["v"], r["t"])
            for r, bn in zip(resolved, bns, strict=True)]


# ---------------------------------------------------------------------------
# SenML JSON: every example of RFC 8428

URN = "urn:dev:ow:10e2073a01080063"
BT_2B = 1.276020076001e09  # rfc8428-5.1.2b.json, "bt"
BT_6 = 1.320078429e09  # rfc8428-5.1.6.json and 5.1.7b/c, "bt"

EXPECTED = {
    # No time at all: the reading is "now" (RFC 8428 section 4.5.3).
    "rfc8428-1.json": [(URN, "Cel", 23.1, NOW)],
    "rfc8428-5.1.1.json": [(URN, "Cel", 23.1, NOW)],
    "rfc8428-2a.json": [(URN, "Cel", 23.5, 1.276020076e09), (URN, "Cel", 23.6, 1.276020091e09)],
    # bn without n: the name is the base name alone.
    "rfc8428-2b.json": [(URN, "Cel", 23.5, 1.276020076e09), (URN, "Cel", 23.6, 1.276020091e09)],
    # bn ends in ':' so only n remains.
    "rfc8428-5.1.2a.json": [("voltage", "V", 120.1, NOW), ("current", "A", 1.2, NOW)],
    # bu "A" inherited, u "V" overrides; t -5..-1 relative to bt; no t means bt.
    "rfc8428-5.1.2b.json": [("voltage", "V", 120.1, BT_2B)] + [
        ("current", "A", v, BT_2B + t)
        for v, t in ((1.2, -5), (1.3, -4), (1.4, -3), (1.5, -2), (1.6, -1), (1.7, 0))
    ],
    "rfc8428-5.1.5.json": [
        ("temp", "Cel", 23.1, NOW),
        ("label", None, "Machine Room", NOW),
        ("open", None, False, NOW),
        ("nfc-reader", None, "aGkgCg", NOW),
    ],
    # bn changes partway; bt of the first record still applies.
    "rfc8428-5.1.6.json": [
        ("temperature", "Cel", 25.2, BT_6),
        ("humidity", "%RH", 30.0, BT_6),
        ("temperature", "Cel", 12.3, BT_6),
        ("humidity", "%RH", 67.0, BT_6),
    ],
    # First record holds only bn and yields no reading.
    "rfc8428-5.1.7a.json": [
        ("temp", "Cel", 23.1, NOW),
        ("heat", "/", 1.0, NOW),
        ("fan", "/", 0.0, NOW),
    ],
    "rfc8428-5.1.7b.json": [("2001:db8::3", "/", 1.0, BT_6), ("2001:db8::4", "/", 1.0, BT_6)],
    "rfc8428-5.1.7c.json": [
        ("2001:db8::3", "/", 0.5, BT_6),
        ("2001:db8::4", "/", 0.5, BT_6),
        ("2001:db8::3", "/", 0.0, BT_6 + 0.1),
        ("2001:db8::4", "/", 0.0, BT_6 + 0.1),
    ],
}


@pytest.mark.parametrize("name", senml_json_names() or ["(vectors not available)"])
def test_every_senml_json_example_resolves(name):
    payload = vector(f"senml/{name}")
    records, errors = decode_senml_json(payload, now=NOW)
    assert errors == []
    assert records
    for n, u, v, t in records:
        assert isinstance(n, str) and n
        assert u is None or isinstance(u, str)
        assert isinstance(v, float | bool | str)
        assert isinstance(t, float) and math.isfinite(t)
        assert t >= RELATIVE_TIME_LIMIT  # every time is absolute once resolved
    if name in EXPECTED:
        assert typed(records) == typed(EXPECTED[name])


def test_every_example_without_its_own_test_is_listed():
    names = senml_json_names()
    if not names:
        pytest.skip("published example payloads (../shared/vectors) are not available")
    compared = {"rfc8428-5.1.3.json", "rfc8428-5.1.4-resolved.json"}
    assert set(names) - compared == set(EXPECTED)


def test_5_1_5_data_types():
    records, _ = decode_senml_json(vector("senml/rfc8428-5.1.5.json"), now=NOW)
    by_name = {n: v for n, _, v, _ in records}
    assert by_name["label"] == "Machine Room"
    assert by_name["open"] is False
    # vd is kept as sent: base64url without padding, "hi \n".
    assert by_name["nfc-reader"] == "aGkgCg"
    assert base64.urlsafe_b64decode(by_name["nfc-reader"] + "==") == b"hi \n"


def test_5_1_3_resolves_to_the_published_resolved_form_5_1_4():
    source = vector_json("senml/rfc8428-5.1.3.json")
    resolved = vector_json("senml/rfc8428-5.1.4-resolved.json")
    records, errors = decode_senml_json(vector("senml/rfc8428-5.1.3.json"), now=NOW)
    assert errors == []
    assert records == expected_from_resolved(source, resolved)
    # Units and times exactly, and the kind of each value (all numbers).
    assert [(u, t) for _, u, _, t in records] == [(r["u"], r["t"]) for r in resolved]
    assert all(type(v) is float for _, _, v, _ in records)


def test_5_1_4_resolved_form_is_a_fixed_point():
    resolved = vector_json("senml/rfc8428-5.1.4-resolved.json")
    records, errors = decode_senml_json(vector("senml/rfc8428-5.1.4-resolved.json"), now=NOW)
    assert errors == []
    assert records == [(r["n"], r["u"], r["v"], r["t"]) for r in resolved]


def test_5_1_2b_matches_spec_repo_resolved_ex3():
    # ex3 leaves out bver although the pack has bver 5 (RFC 8428 section 4.6
    # wants it kept); a decoded record carries no version, so only n, u, v, t
    # are compared.
    source = vector_json("senml/rfc8428-5.1.2b.json")
    resolved = vector_json("senml/spec-repo-resolved/ex3.gen.resolved.json")
    records, errors = decode_senml_json(vector("senml/rfc8428-5.1.2b.json"), now=NOW)
    assert errors == []
    assert [t for *_, t in records] == [r["t"] for r in resolved]
    assert records == expected_from_resolved(source, resolved)


def test_5_1_6_matches_spec_repo_resolved_ex6():
    source = vector_json("senml/rfc8428-5.1.6.json")
    resolved = vector_json("senml/spec-repo-resolved/ex6.gen.resolved.json")
    records, errors = decode_senml_json(vector("senml/rfc8428-5.1.6.json"), now=NOW)
    assert errors == []
    assert records == expected_from_resolved(source, resolved)
    # The name that remains once "2001:db8::2/" is stripped.
    assert [n for n, *_ in records] == ["temperature", "humidity"] * 2


def test_5_1_7b_matches_spec_repo_resolved_ex12():
    source = vector_json("senml/rfc8428-5.1.7b.json")
    resolved = vector_json("senml/spec-repo-resolved/ex12.gen.resolved.json")
    records, errors = decode_senml_json(vector("senml/rfc8428-5.1.7b.json"), now=NOW)
    assert errors == []
    assert records == expected_from_resolved(source, resolved)


# ---------------------------------------------------------------------------
# SenML CBOR: RFC 8428 section 6


def test_cbor_example_decodes_to_the_same_records_as_5_1_2b():
    payload = bytes.fromhex(vector("senml/rfc8428-6-cbor.hex").decode("ascii").strip())
    assert len(payload) == 0xC3
    # The published bytes hold 1.5 as a half-float and an explicit t = 0.
    assert bytes.fromhex("f93e00") in payload
    pack = cbor2.loads(payload)
    assert pack[4][2] == 1.5 and pack[6][6] == 0
    records, errors = decode_senml_cbor(payload, now=NOW)
    expected, _ = decode_senml_json(vector("senml/rfc8428-5.1.2b.json"), now=NOW)
    assert errors == []
    assert records == expected
    assert [t for *_, t in records] == [t for *_, t in expected]
    assert typed(records) == typed(EXPECTED["rfc8428-5.1.2b.json"])


def test_cbor_string_labels_and_bool_value():
    payload = cbor2.dumps([{-2: "urn:dev:mac:0024befffe804ff1:", 0: "leaf_wetness", 4: True},
                           {"n": "water_level", "u": "cm", "v": 12}])
    records, errors = decode_senml_cbor(payload, now=NOW)
    assert errors == []
    assert typed(records) == typed([("leaf_wetness", None, True, NOW),
                                    ("water_level", "cm", 12.0, NOW)])


# ---------------------------------------------------------------------------
# Published files that are not JSON: rejected cleanly


@pytest.mark.parametrize(("relative", "decode"), [
    # RFC 8428 5.1.2: a SensML stream, truncated with "..." and no closing "]".
    ("senml/rfc8428-5.1.2c-sensml-stream.txt", lambda p: decode_senml_json(p, now=NOW)),
    # The Things Stack docs at HEAD: no comma after "attributes".
    ("tts/data-formats-uplink-example.HEAD.txt", lambda p: decode_tts_uplink(p, device_id="dev1")),
    # The Things Stack docs: annotated format with // comments.
    ("tts/data-formats-uplink-format-annotated.HEAD.txt",
     lambda p: decode_tts_uplink(p, device_id="dev1")),
])
def test_published_non_json_is_rejected(relative, decode):
    with pytest.raises(DecodeError, match="malformed JSON"):
        decode(vector(relative))


@pytest.mark.parametrize("relative", [
    "senml/rfc8428-6-cbor.diag.txt", "senml/rfc8428-6-cbor.hexdump.txt",
])
def test_cbor_notations_are_not_json_senml(relative):
    with pytest.raises(DecodeError):
        decode_senml_json(vector(relative), now=NOW)


# ---------------------------------------------------------------------------
# SenML resolution rules on small packs


def senml(pack) -> bytes:
    return json.dumps(pack).encode()


def test_device_prefix_is_stripped_and_plain_name_kept():
    for bn in ("urn:dev:mac:0024befffe804ff1:", "2001:db8::2/"):
        records, _ = decode_senml_json(senml([{"bn": bn, "n": "water_level", "v": 0.1}]),
                                       now=NOW)
        assert records == [("water_level", None, 0.1, NOW)]
    records, _ = decode_senml_json(senml([{"n": "water_level", "v": 0.1}]), now=NOW)
    assert records == [("water_level", None, 0.1, NOW)]
    # A base name not ending in ':' or '/' is part of the name.
    records, _ = decode_senml_json(senml([{"bn": "paddy.", "n": "water_level", "v": 0.1}]),
                                   now=NOW)
    assert records == [("paddy.water_level", None, 0.1, NOW)]


def test_relative_times_resolve_against_now():
    pack = [
        {"n": "a", "v": 1, "t": -60},
        {"bt": -120, "n": "b", "v": 1, "t": 60},
        {"n": "c", "v": 1},
        {"bt": 0, "n": "d", "v": 1, "t": RELATIVE_TIME_LIMIT - 1},
        {"n": "e", "v": 1, "t": RELATIVE_TIME_LIMIT},
        {"n": "f", "v": 1, "t": 1.7e9},
    ]
    records, errors = decode_senml_json(senml(pack), now=NOW)
    assert errors == []
    assert [(n, t) for n, _, _, t in records] == [
        ("a", NOW - 60),
        ("b", NOW - 60),
        ("c", NOW - 120),  # bt -120 still in force
        ("d", NOW + RELATIVE_TIME_LIMIT - 1),  # below 2**28: relative
        ("e", float(RELATIVE_TIME_LIMIT)),  # 2**28 and above: absolute
        ("f", 1.7e9),
    ]


def test_base_unit_inheritance():
    pack = [
        {"bu": "cm", "n": "water_level", "v": 5},
        {"n": "water_level", "u": "m", "v": 0.05},
        {"n": "water_level", "v": 6},
        {"bu": "Cel", "n": "water_temp", "v": 20},
        {"n": "water_temp", "v": 21},
    ]
    records, errors = decode_senml_json(senml(pack), now=NOW)
    assert errors == []
    assert [u for _, u, _, _ in records] == ["cm", "m", "cm", "Cel", "Cel"]


def test_base_value_is_added():
    records, _ = decode_senml_json(senml([{"bv": 10, "n": "a", "v": 1.5}, {"n": "b", "v": 2}]),
                                   now=NOW)
    assert [v for _, _, v, _ in records] == [11.5, 12.0]


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity"])
def test_non_finite_json_literal_rejects_only_that_record(literal):
    payload = b'[{"n":"water_temp","v":' + literal + b'},{"n":"water_level","v":0.1}]'
    records, errors = decode_senml_json(payload, now=NOW)
    assert records == [("water_level", None, 0.1, NOW)]
    assert [(i, reason) for i, reason, _ in errors] == [(0, "value is NaN, infinite or too large")]


def test_non_finite_time_rejects_only_that_record():
    payload = b'[{"n":"a","v":1,"t":NaN},{"bt":Infinity,"n":"b","v":1},{"n":"c","v":1}]'
    records, errors = decode_senml_json(payload, now=NOW)
    assert [i for i, *_ in errors] == [0, 1]
    assert records == [("c", None, 1.0, NOW)]


def test_non_finite_cbor_float_rejects_only_that_record():
    payload = cbor2.dumps([{0: "a", 2: math.nan}, {0: "b", 2: math.inf}, {0: "c", 2: 1.0}])
    records, errors = decode_senml_cbor(payload, now=NOW)
    assert records == [("c", None, 1.0, NOW)]
    assert [i for i, *_ in errors] == [0, 1]


@pytest.mark.parametrize("field", ["v", "t", "bt"])
def test_json_integer_beyond_float_range_rejects_only_that_record(field):
    # 400 digits: valid JSON, but no float holds it.
    rec = {"n": "a", "v": 1, field: "BIG"}
    text = json.dumps([rec, {"n": "b", "v": 2}]).replace('"BIG"', "9" * 400)
    records, errors = decode_senml_json(text.encode(), now=NOW)
    assert [i for i, *_ in errors] == [0]
    assert [n for n, *_ in records] == ["b"]


def test_cbor_integer_beyond_float_range_rejects_only_that_record():
    payload = cbor2.dumps([{0: "a", 2: 10**400}, {0: "b", 2: 2}])
    records, errors = decode_senml_cbor(payload, now=NOW)
    assert [i for i, *_ in errors] == [0]
    assert [n for n, *_ in records] == ["b"]


@pytest.mark.parametrize("payload", [
    b'[{"n":"a","v":1}',
    b'[{"n":"a","v":1},]',
    b"{'n': 'a'}",
    b"",
    b"\xff\xfe[]",
    b'[{"n":"a","v":1}] trailing',
])
def test_malformed_json_raises(payload):
    with pytest.raises(DecodeError, match="malformed JSON"):
        decode_senml_json(payload, now=NOW)


@pytest.mark.parametrize("payload", [b"", b"\xff", b"\x9f", b"\x83\x01", b"\xa1\x00"])
def test_malformed_cbor_raises(payload):
    with pytest.raises(DecodeError, match="malformed CBOR"):
        decode_senml_cbor(payload, now=NOW)


@pytest.mark.parametrize("pack", [{"n": "a", "v": 1}, "pack", 1, None])
def test_pack_that_is_not_an_array_raises(pack):
    with pytest.raises(DecodeError, match="array"):
        decode_senml_json(senml(pack), now=NOW)
    with pytest.raises(DecodeError, match="array"):
        decode_senml_cbor(cbor2.dumps(pack), now=NOW)


def test_record_that_is_not_an_object_is_rejected():
    records, errors = decode_senml_json(senml([1, {"n": "a", "v": 1}]), now=NOW)
    assert [n for n, *_ in records] == ["a"]
    assert [i for i, *_ in errors] == [0]


def test_must_understand_field_rejects_the_record():
    pack = [{"n": "a", "v": 1, "foo_": 1}, {"n": "b", "v": 2, "foo": 1}]
    records, errors = decode_senml_json(senml(pack), now=NOW)
    assert [n for n, *_ in records] == ["b"]  # an unknown field without '_' is ignored
    assert len(errors) == 1
    assert errors[0][0] == 0 and "foo_" in errors[0][1]
    records, errors = decode_senml_cbor(cbor2.dumps(pack), now=NOW)
    assert [n for n, *_ in records] == ["b"]
    assert [i for i, *_ in errors] == [0]


def test_version_above_10_rejects():
    with pytest.raises(DecodeError, match="version"):
        decode_senml_json(senml([{"bver": 11, "n": "a", "v": 1}]), now=NOW)
    records, errors = decode_senml_json(senml([{"bver": 10, "n": "a", "v": 1}]), now=NOW)
    assert [n for n, *_ in records] == ["a"] and errors == []


def test_version_above_10_applies_to_the_rest_of_the_pack():
    # RFC 8428 section 4.4: all records of a pack have the same version,
    # usually given once by bver in the first record; a reader MUST NOT use
    # a pack of a version it does not understand.
    pack = [{"bver": 11, "n": "a", "v": 1}, {"n": "b", "v": 2}]
    with pytest.raises(DecodeError, match="version"):
        decode_senml_json(senml(pack), now=NOW)


# ---------------------------------------------------------------------------
# The Things Stack v3

TTS_RECEIVED_AT = datetime(2020, 2, 12, 15, 15, 45, 789585, tzinfo=UTC).timestamp()


def test_tts_uplink_example_decodes():
    payload = vector("tts/data-formats-uplink-example.pre-attributes.json")
    records, errors = decode_tts_uplink(payload, device_id="dev1")
    assert errors == []
    # Timed by uplink_message.received_at (ns cut to us), not the top-level one.
    assert typed(records) == typed([("temperature", None, 1.0, TTS_RECEIVED_AT),
                                    ("luminosity", None, 0.64, TTS_RECEIVED_AT),
                                    # the gateway's radio quality (rx_metadata)
                                    ("rssi", None, -35.0, TTS_RECEIVED_AT),
                                    ("snr", None, 5.0, TTS_RECEIVED_AT)])


def test_tts_uplink_of_another_device_raises():
    payload = vector("tts/data-formats-uplink-example.pre-attributes.json")
    with pytest.raises(DecodeError, match="dev1"):
        decode_tts_uplink(payload, device_id="dev2")


def test_tts_mqtt_example_without_decoded_payload_raises():
    with pytest.raises(DecodeError, match="decoded_payload"):
        decode_tts_uplink(vector("tts/mqtt-uplink-example.json"), device_id="dev1")


def test_tts_non_finite_value_rejects_only_that_metric():
    payload = (b'{"end_device_ids":{"device_id":"dev1"},"uplink_message":{'
               b'"received_at":"2020-02-12T15:15:45.789585559Z",'
               b'"decoded_payload":{"water_temp":NaN,"water_level":0.1}}}')
    records, errors = decode_tts_uplink(payload, device_id="dev1")
    assert records == [("water_level", None, 0.1, TTS_RECEIVED_AT)]
    assert [i for i, *_ in errors] == [0]


def test_tts_integer_beyond_float_range_rejects_only_that_metric():
    payload = (b'{"end_device_ids":{"device_id":"dev1"},"uplink_message":{'
               b'"received_at":"2020-02-12T15:15:45.789585559Z",'
               b'"decoded_payload":{"water_temp":' + b"9" * 400 + b',"water_level":0.1}}}')
    records, errors = decode_tts_uplink(payload, device_id="dev1")
    assert records == [("water_level", None, 0.1, TTS_RECEIVED_AT)]
    assert [i for i, *_ in errors] == [0]


@pytest.mark.parametrize("payload", [b"[]", b"{}", b'{"uplink_message": 1}', b"{"])
def test_tts_not_an_uplink_raises(payload):
    with pytest.raises(DecodeError):
        decode_tts_uplink(payload, device_id="dev1")


# ---------------------------------------------------------------------------
# ChirpStack v4

CS_EUI = "0101010101010101"
CS_TIME = datetime(2022, 7, 18, 9, 34, 15, 775023, tzinfo=UTC).timestamp()


def chirpstack_with_object() -> bytes:
    # Test-made variant, not published: the published up event has no
    # "object" (it is set only when a codec is configured), so one is added.
    event = vector_json("chirpstack/up-event-example.json")
    assert "object" not in event
    event["object"] = {"water_level": 0.12, "battery": 87}
    return json.dumps(event).encode()


def test_chirpstack_example_without_object_raises():
    with pytest.raises(DecodeError, match="codec"):
        decode_chirpstack_uplink(vector("chirpstack/up-event-example.json"), dev_eui=CS_EUI)


def test_chirpstack_event_with_object_decodes():
    records, errors = decode_chirpstack_uplink(chirpstack_with_object(), dev_eui=CS_EUI)
    assert errors == []
    assert typed(records) == typed([("water_level", None, 0.12, CS_TIME),
                                    ("battery", None, 87, CS_TIME),
                                    ("rssi", None, -36.0, CS_TIME),
                                    ("snr", None, 10.5, CS_TIME)])


def _tts_uplink(rx_metadata) -> bytes:
    return json.dumps({"end_device_ids": {"device_id": "dev1"}, "uplink_message": {
        "decoded_payload": {"water_level": 0.05},
        "received_at": "2025-08-01T03:00:01Z", "rx_metadata": rx_metadata}})


def test_uplink_radio_comes_from_the_best_gateway():
    records, errors = decode_tts_uplink(_tts_uplink([
        {"gateway_ids": {"gateway_id": "far"}, "rssi": -118, "snr": -9.5},
        {"gateway_ids": {"gateway_id": "near"}, "channel_rssi": -92, "snr": 8.25},
        {"gateway_ids": {"gateway_id": "no-rssi"}, "snr": 12}]), device_id="dev1")
    assert errors == []
    assert [(n, u, v) for n, u, v, _ in records[1:]] == [("rssi", None, -92.0),
                                                        ("snr", None, 8.25)]


@pytest.mark.parametrize("rx_metadata", [None, [], "gateways", [None, 3, "x"],
                                         [{"rssi": "strong", "snr": 5}],
                                         [{"rssi": True, "snr": 5}]])
def test_uplink_without_usable_radio_metadata_keeps_its_readings(rx_metadata):
    records, errors = decode_tts_uplink(_tts_uplink(rx_metadata), device_id="dev1")
    assert errors == [] and [r[0] for r in records] == ["water_level"]


def test_uplink_radio_without_snr_gives_rssi_alone():
    records, _ = decode_tts_uplink(_tts_uplink([{"rssi": -100}]), device_id="dev1")
    assert [r[0] for r in records] == ["water_level", "rssi"]


def test_chirpstack_event_of_another_device_raises():
    with pytest.raises(DecodeError, match="devEui"):
        decode_chirpstack_uplink(chirpstack_with_object(), dev_eui="0202020202020202")


def test_chirpstack_upper_case_dev_eui_matches():
    event = json.loads(chirpstack_with_object())
    event["deviceInfo"]["devEui"] = "00A1B2C3D4E5F607"
    records, _ = decode_chirpstack_uplink(json.dumps(event).encode(), dev_eui="00a1b2c3d4e5f607")
    assert [r[0] for r in records] == ["water_level", "battery", "rssi", "snr"]


@pytest.mark.parametrize("rec", [
    {"n": "water_level", "vs": 0.2},
    {"n": "water_level", "vd": 12},
])
def test_text_and_data_values_must_be_strings(rec):
    # RFC 8428 section 5: vs is a string and vd a base64 string; a number
    # there must not come through as a reading.
    records, errors = decode_senml_json(senml([rec, {"n": "b", "v": 1}]), now=NOW)
    assert [n for n, *_ in records] == ["b"]
    assert [i for i, *_ in errors] == [0]
