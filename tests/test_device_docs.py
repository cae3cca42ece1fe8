"""docs/device-developers.md holds: every example in it goes through the
platform's own decoders and checks (and, end to end, through Mosquitto,
ingest and the database) to the rows it shows; its tables of metrics, units
and profiles are those of devices/profiles.py; every reject reason the code
can give has its section there, and a stored reason points to it; the worked
example of a new device type loads with the real profile loader and its
test passes."""

from __future__ import annotations

import ast
import re
import time
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction
from pathlib import Path

import orjson
import psycopg
import pytest

from agri.api.field_registry import import_fields, parse_features
from agri.devices import commands, profiles
from agri.devices.profiles import METRICS, PROFILES, Metric, Profile
from agri.devices.topics import Format, parse
from agri.ingest import pipeline, rejects, validate
from agri.ingest.validate import TimeLimits, profile_metrics
from agri.settings import Settings
from tests.fix_stack import publisher, wait_for

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / rejects.DOC
TEXT = DOC.read_text()

# The devices the guide's examples name: id -> (profile, DevEUI).
DEVICES = {"paddy-001": ("paddy-water", None), "paddy-002": ("paddy-water", None),
           "soil-001": ("soil", "0004a30b001c2a3f"), "drone-001": ("drone", None)}
FIELD_ID = "hirosaki-0001"
READINGS = {Format.SENML_JSON, Format.SENML_CBOR, Format.TTS_UPLINK, Format.CHIRPSTACK_UPLINK}


@dataclass
class Example:
    tag: str  # what follows "example:" in the comment before the block
    lang: str
    body: str
    table: list[dict[str, str]]  # the table right after the block, if any
    after: str  # the text after the block, up to the next block or heading

    @property
    def topic(self) -> str:
        return self.tag.split()[-1]


FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```\n", re.M | re.S)
TAG = re.compile(r"<!-- example: (.+?) -->\n$")


def _table(text: str) -> list[dict[str, str]]:
    lines = []
    for line in text.strip().splitlines():
        if not line.startswith("|"):
            break
        lines.append([c.strip() for c in line.strip().strip("|").split("|")])
    if len(lines) < 3:
        return []
    return [dict(zip(lines[0], row, strict=True)) for row in lines[2:]]


def examples() -> list[Example]:
    found = []
    blocks = list(FENCE.finditer(TEXT))
    for i, m in enumerate(blocks):
        tag = TAG.search(TEXT[:m.start()])
        end = blocks[i + 1].start() if i + 1 < len(blocks) else len(TEXT)
        after = re.split(r"^#", TEXT[m.end():end], maxsplit=1, flags=re.M)[0]
        if tag is None:
            assert m.group(1) == "sh", f"a {m.group(1)!r} block without an example tag: " \
                                       f"{m.group(2)[:60]!r}"
            continue
        found.append(Example(tag.group(1), m.group(1), m.group(2), _table(after), after))
    return found


def example(tag: str) -> Example:
    [ex] = [e for e in examples() if e.tag == tag]
    return ex


def payload_of(ex: Example) -> bytes:
    return bytes.fromhex(ex.body.strip()) if ex.lang == "text" else ex.body.encode()


def epoch(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def documented_rows(ex: Example, device: str) -> set[tuple]:
    return {(device, r["metric"], epoch(r["time"]), float(r["value"])) for r in ex.table}


def device_of(topic: str) -> str:
    route = parse(topic)
    if route.dev_eui:
        [device] = [d for d, (_, eui) in DEVICES.items() if eui == route.device]
        return device
    return route.device


def reading_examples() -> list[Example]:
    return [e for e in examples() if e.tag.count(" ") == 0 and "/" in e.tag
            and parse(e.topic).format in READINGS]


def check(ex: Example, received: float):
    route = parse(ex.topic)
    device = device_of(ex.topic)
    profile = PROFILES[DEVICES[device][0]]
    records, errors = pipeline._decode(route, payload_of(ex), received)
    rows, bad = validate.validate(records, device_id=device, profile=profile,
                                  metrics=profile_metrics(profile), received=received,
                                  limits=TimeLimits.of(Settings()))
    return device, rows, [*errors, *bad]


# ---------------------------------------------------------------------------
# Examples, through the decoders and checks


def test_the_guide_has_an_example_of_every_format():
    formats = {parse(e.topic).format for e in examples() if "/" in e.tag
               and not e.tag.startswith("reject")}
    assert formats == set(Format)


@pytest.mark.parametrize("ex", reading_examples(), ids=lambda e: e.topic)
def test_every_reading_example_is_stored_as_documented(ex):
    assert ex.table, f"no table of stored rows after the example on {ex.topic}"
    times = [epoch(r["time"]) for r in ex.table]
    received = max(times) + 1
    device, rows, errors = check(ex, received)
    assert errors == []
    assert {(d, m, t, v) for d, m, t, v, _ in rows} == documented_rows(ex, device)
    assert len(rows) == len(ex.table)


def test_the_cbor_example_is_what_its_python_makes():
    space: dict = {}
    exec(example("cbor-python").body, space)  # noqa: S102 - the guide's own snippet
    assert space["payload"].hex() == example("agri/v1/devices/paddy-001/senml-cbor").body.strip()


def test_the_command_examples_are_what_the_platform_sends_and_takes():
    sent = orjson.loads(example("command").body)
    expires = datetime.fromisoformat(sent["expires_at"])
    assert orjson.loads(commands.message(sent["id"], sent["name"], sent["args"], expires)) == sent
    assert commands.check(PROFILES["water-gate"], sent["name"], sent["args"]) == sent["args"]
    ack = example("agri/v1/devices/paddy-001/acks")
    assert parse(ack.topic).format is Format.ACKS
    assert [(a.id, a.status) for a in [commands.parse_ack(payload_of(ack))]] == [
        (int(r["id"]), r["status"]) for r in ack.table]


def test_the_reject_example_gives_the_documented_reason():
    ex = example("reject agri/v1/devices/paddy-001/senml")
    _, rows, errors = check(ex, time.time())
    assert rows == [] and len(errors) == 1
    reason = _stored_reason(errors[0][1])
    assert reason == _documented_reason(ex)


def _documented_reason(ex: Example) -> str:
    return " ".join(re.search(r"gives `(.+?)`", ex.after, re.S).group(1).split())


def _stored_reason(reason: str) -> str:
    return rejects.stored((0.0, "t", "d", reason, None, b""))[3]


# ---------------------------------------------------------------------------
# Metrics, units and profiles


def _section(title: str) -> str:
    return re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## )", TEXT, re.M | re.S).group(1)


def _tables(text: str) -> list[list[dict[str, str]]]:
    return [_table(text[m.start():]) for m in re.finditer(r"^\|.*\n\|[-|]+\|\n", text, re.M)]


def _ticked(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def test_the_metrics_table_is_the_code():
    metrics, _ = _tables(_section("Metrics and units"))
    assert [_ticked(r["metric"])[0] for r in metrics] == list(METRICS)
    for row in metrics:
        m = METRICS[_ticked(row["metric"])[0]]
        assert _ticked(row["unit"]) == [m.unit], m.name
        converted = dict(re.findall(r"`([^`]+)` × ([\d/]+)", row["also accepted"]))
        assert {u: Fraction(f) for u, f in converted.items()} == dict(m.convert), m.name
        low, high = (float(x) for x in row["range"].split(".."))
        assert (low, high) == (m.low, m.high), m.name
        assert (row["vb"] == "yes") == m.boolean, m.name


def test_the_profiles_table_is_the_code():
    _, table = _tables(_section("Metrics and units"))
    assert [_ticked(r["profile"])[0] for r in table] == list(PROFILES)
    for row in table:
        p = PROFILES[_ticked(row["profile"])[0]]
        listed = dict(re.findall(r"`(\w+)` (\d+)", row["metrics (interval, s)"]))
        assert {m: int(s) for m, s in listed.items()} == dict(p.intervals_s), p.name
        assert int(row["version"]) == p.version, p.name
        assert _ticked(row["battery"]) == ([p.battery] if p.battery else []), p.name
        assert tuple(_ticked(row["formats"])) == p.formats, p.name
        assert row["commands"] == _commands(p), p.name
        assert (row["flight records"] == "yes") == p.flights, p.name


def _commands(p: Profile) -> str:
    """A profile's commands as the guide's table writes them."""
    out = []
    for c in p.commands.values():
        args = "; ".join(f"`{a.name}` {a.low:g} .. {a.high:g}" + (f" {a.unit}" if a.unit else "")
                         + (", whole" if a.integer else "") for a in c.args.values())
        out.append(f"`{c.name}`" + (f" ({args})" if args else ""))
    return ", ".join(out) or "none"


def test_the_limits_the_guide_names_are_the_defaults():
    defaults = Settings()
    assert f"above {defaults.max_payload_bytes // 1024} KiB" in TEXT
    assert f"more than {defaults.max_future_s:.0f} s ahead" in TEXT
    assert f"older than {defaults.max_age_days:g} days" in TEXT
    assert f"more than {rejects.MAX_ROWS_PER_MESSAGE} bad records" in TEXT
    assert f"first {rejects.PAYLOAD_PREFIX_BYTES // 1024} KiB" in TEXT


# ---------------------------------------------------------------------------
# Reject reasons and their sections


def test_every_reason_code_has_its_section_and_no_section_is_left_over():
    headings = re.findall(r"^### (.+)$", _section("Rejects"), re.M)
    assert sorted(headings) == sorted(rejects.REASON_CODES)
    for link in re.findall(r"\]\(#([\w-]+)\)", TEXT):
        assert link in _anchors(), link


def _anchors() -> set[str]:
    return {re.sub(r"[^\w -]", "", h).strip().lower().replace(" ", "-")
            for h in re.findall(r"^#+ (.+)$", TEXT, re.M)}


# Where each module words a reason: (module, kinds of site). The reason texts
# found there are rendered with a sample for each value they hold.
REASON_SITES = {
    "devices/codecs.py": ("raise", "errors.append"),
    "ingest/validate.py": ("reason =", "return"),
    "ingest/pipeline.py": ("raise", "_reject"),
    "ingest/writer.py": ("reason =", "reject tuple"),
    "ingest/rejects.py": ("reason =",),
    "devices/commands.py": ("raise AckError",),  # a device's answers (CommandError: the API's)
    "devices/receipts.py": ("raise",),  # delivery receipt requests
}
SAMPLES = {"label": "bn", "name": "water_level", "what": "device event", "where": "object"}


def _text_of(node: ast.expr) -> str | None:
    """A reason expression rendered with sample values; None when it is not
    text of its own (it passes on a text made elsewhere)."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
            node.func.attr == "strip":
        node = node.func.value
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if not isinstance(node, ast.JoinedStr):
        return None
    out, own = [], ""
    for part in node.values:
        if isinstance(part, ast.Constant):
            out.append(part.value)
            own += part.value
            continue
        sample = SAMPLES.get(part.value.id, "0") if isinstance(part.value, ast.Name) else "0"
        out.append(repr(sample) if part.conversion == ord("r") else sample)
    return "".join(out) if re.search(r"[A-Za-z]{2}", own) else None


def reason_texts() -> list[tuple[str, int, str]]:
    found = []
    for path, kinds in REASON_SITES.items():
        tree = ast.parse((ROOT / path).read_text())
        for node in ast.walk(tree):
            exprs: list[ast.expr] = []
            if "raise" in kinds and isinstance(node, ast.Raise) and \
                    isinstance(node.exc, ast.Call) and node.exc.args:
                exprs.append(node.exc.args[0])
            if "raise AckError" in kinds and isinstance(node, ast.Raise) and \
                    isinstance(node.exc, ast.Call) and node.exc.args and \
                    getattr(node.exc.func, "id", None) == "AckError":
                exprs.append(node.exc.args[0])
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                    node.func.attr == "append" and "errors.append" in kinds and \
                    isinstance(node.args[0], ast.Tuple):
                exprs.append(node.args[0].elts[1])
            if "_reject" in kinds and isinstance(node, ast.Call) and \
                    isinstance(node.func, ast.Name) and node.func.id == "_reject":
                exprs.append(node.args[4])
            if "reason =" in kinds and isinstance(node, ast.Assign) and \
                    [getattr(t, "id", None) for t in node.targets] == ["reason"]:
                exprs.append(node.value)
            if "return" in kinds and isinstance(node, ast.FunctionDef) and \
                    node.name == "time_problem":
                exprs += [r.value for r in ast.walk(node)
                          if isinstance(r, ast.Return) and r.value is not None]
            if "reject tuple" in kinds and isinstance(node, ast.Tuple) and len(node.elts) == 6:
                exprs.append(node.elts[3])
            for expr in exprs:
                text = _text_of(expr)
                if text is not None:
                    found.append((path, expr.lineno, text))
    return found


def test_every_reason_the_code_gives_has_a_code():
    texts = reason_texts()
    assert len(texts) >= 50, texts  # the scan finds the reasons, not nothing
    codes = set()
    for path, line, text in texts:
        code = rejects.reason_code(text)
        assert code is not None, f"{path}:{line}: {text!r} has no code in rejects.REASON_CODES"
        codes.add(code)
    assert codes == set(rejects.REASON_CODES)  # no code is left without a reason


@pytest.mark.parametrize(("reason", "code"), [
    ("unknown metric 'malformed JSON' for profile 'soil'; expected one of soil_moisture",
     "unknown-metric"),
    ("'unknown metric x': value must be a number or boolean", "lorawan-decoded"),
    ("device event: measurement time is 3600 s ahead of the server clock", "time-in-future"),
    ("flight record: time 1754017200000 looks like milliseconds; times are seconds",
     "time-in-milliseconds"),
    ("21 more records of this message were rejected (only the first 20 are kept one by one): "
     "21 x unknown metric … for profile …", "more-rejected"),
    ("lst reject one", None),
])
def test_a_reason_gets_the_code_of_what_it_says(reason, code):
    assert rejects.reason_code(reason) == code


def test_a_stored_reason_ends_with_its_section_and_stays_bounded():
    long = "unknown metric '" + "x" * 5000 + "' for profile 'soil'"
    stored = _stored_reason(long)
    assert len(stored) <= rejects.REASON_MAX_CHARS
    assert stored.endswith(" (see docs/device-developers.md#unknown-metric)")
    assert _stored_reason("lst reject one") == "lst reject one"
    nul = rejects.stored((0.0, "t", "d", "malformed JSON: \x00", None, b""), printable=True)[3]
    assert nul == "malformed JSON: \\x00 (see docs/device-developers.md#malformed-json)"


# ---------------------------------------------------------------------------
# Adding a device type


def test_the_worked_example_loads_with_the_real_loader_and_its_test_passes(
        monkeypatch, tmp_path):
    metric_toml, profile_toml = example("metric"), example("profile")
    assert (metric_toml.lang, profile_toml.lang) == ("toml", "toml")
    (tmp_path / profiles.METRICS_FILE).write_text(metric_toml.body)
    (tmp_path / "paddy-water-ec.toml").write_text(profile_toml.body)
    metrics, found = profiles.load(profiles.folders(tmp_path))
    [metric] = set(metrics) - set(METRICS)
    [profile] = set(found) - set(PROFILES)
    assert (metric, profile) == ("water_ec", "paddy-water-ec")
    assert isinstance(metrics[metric], Metric) and isinstance(found[profile], Profile)
    assert metric in found[profile].metrics
    monkeypatch.setattr(profiles, "METRICS", metrics)
    monkeypatch.setattr(validate, "METRICS", metrics)
    monkeypatch.setattr(profiles, "PROFILES", found)
    space: dict = {}
    exec(example("profile-test").body, space)  # noqa: S102 - the guide's own test
    tests = [f for name, f in space.items() if name.startswith("test_")]
    assert tests
    for test in tests:
        test()


def test_the_errors_the_guide_names_are_the_loaders(tmp_path):
    """The guide's example of a refused file is what the loader says for it."""
    adding = TEXT.split("## Adding a device type", 1)[1]
    [line] = re.findall(r"`(agri: device profiles: .+?)`", adding)
    label, rest = line.removeprefix("agri: device profiles: ").split(".toml: ", 1)
    extra = tmp_path / "profiles"
    extra.mkdir()
    profile = example("profile").body
    (extra / (Path(label).name + ".toml")).write_text(profile)
    with pytest.raises(profiles.ProfileError) as caught:
        profiles.load(profiles.folders(extra))
    assert str(caught.value).split(".toml: ", 1)[1] == rest
# ---------------------------------------------------------------------------
# End to end: Mosquitto, ingest, the database


FIELD = {"type": "FeatureCollection", "features": [{
    "type": "Feature",
    "geometry": {"type": "Polygon", "coordinates": [[
        [140.4700, 40.6000], [140.4704, 40.6000], [140.4704, 40.6009],
        [140.4700, 40.6009], [140.4700, 40.6000]]]},
    "properties": {"id": FIELD_ID, "name": "Docs 1", "owner": "docs-farmer",
                   "cultivar": "seiten-no-hekireki", "transplanted_on": "2025-05-20",
                   "municipality": "Hirosaki"}}]}


def test_every_example_through_the_broker_and_ingest_is_stored_as_documented(platform):
    with psycopg.connect(platform.db_url) as conn:
        import_fields(conn, parse_features(FIELD), create_owners=True)
    # The LoRaWAN examples' devices, behind their applications' bridges.
    behind: dict[str, str] = {}
    for ex in examples():
        route = parse(ex.topic) if "/" in ex.tag else None
        if route is not None and route.application and device_of(ex.topic) not in behind:
            name = f"docs-{len(behind)}"
            if route.format is Format.TTS_UPLINK:
                app, _, tenant = route.application.partition("@")
                platform.add_bridge(name, "tts", app, tenant or None)
            else:
                platform.add_bridge(name, "chirpstack", route.application)
            behind[device_of(ex.topic)] = name
    passwords = {d: platform.add_device(d, p, dev_eui=eui, field_id=FIELD_ID,
                                        bridge=behind.get(d))
                 for d, (p, eui) in DEVICES.items()}
    # The examples carry fixed times of 2025: a worker that takes readings that old.
    worker = platform.start_ingest("docs", AGRI_MAX_AGE_DAYS="36500")
    clients = {d: platform.device_client(d, pw) for d, pw in passwords.items()
               if d not in behind}
    sim = publisher(platform.simulator_url())
    try:
        expected: set[tuple] = set()
        events, flights = set(), set()
        reject = example("reject agri/v1/devices/paddy-001/senml")
        for ex in examples():
            if "/" not in ex.tag:
                continue
            route = parse(ex.topic)
            if route.format is Format.ACKS:
                continue  # an answer to a command the platform did not send: a reject
            lorawan = route.format in (Format.TTS_UPLINK, Format.CHIRPSTACK_UPLINK)
            client = sim if lorawan else clients[device_of(ex.topic)]
            info = client.publish(ex.topic, payload_of(ex), qos=1)
            info.wait_for_publish(10)
            assert info.rc == 0
            if ex is reject:
                continue
            device = device_of(ex.topic)
            if route.format in READINGS:
                expected |= {(d, m, round(t, 6), v) for d, m, t, v in documented_rows(ex, device)}
            elif route.format is Format.EVENTS:
                events |= {(device, r["type"], epoch(r["time"])) for r in ex.table}
            else:
                flights |= {(device, r["kind"], epoch(r["time"]), r["field"]) for r in ex.table}
        ids = list(DEVICES)

        def stored():
            return (
                {(d, m, round(t, 6), v) for d, m, t, v in platform.sql(
                    "SELECT device_id, metric, extract(epoch FROM time)::float8, value "
                    "FROM readings WHERE device_id = ANY(%s)", (ids,))},
                set(platform.sql("SELECT device_id, kind, extract(epoch FROM time)::float8 "
                                 "FROM device_events WHERE device_id = ANY(%s)", (ids,))),
                set(platform.sql("SELECT drone_id, kind, extract(epoch FROM time)::float8, "
                                 "field_id FROM drone_records WHERE drone_id = ANY(%s)",
                                 (ids,))),
                [r[0] for r in platform.sql("SELECT reason FROM rejects WHERE device_id = "
                                            "ANY(%s) ORDER BY id", (ids,))])

        wait_for(lambda: (s := stored())[0] >= expected and s[1] >= events and
                 s[2] >= flights and s[3], what="the examples' rows and the reject")
        time.sleep(1)  # anything more that ingest would store
        readings, got_events, got_flights, reasons = stored()
        assert readings == expected
        assert len(platform.sql("SELECT 1 FROM readings WHERE device_id = ANY(%s)",
                                (ids,))) == len(expected)
        assert got_events == events and got_flights == flights
        assert reasons == [_documented_reason(reject)]
        body = platform.sql("SELECT body FROM drone_records WHERE drone_id = 'drone-001'")[0][0]
        [flight] = [e for e in examples() if e.tag.endswith("/flights")]
        assert body == orjson.loads(flight.body)
    finally:
        for client in (*clients.values(), sim):
            client.loop_stop()
            client.disconnect()
        platform.stop_ingest(worker)
