"""Who may do what, checked exhaustively: every operation of the JSON API
(from /openapi.json) is in TABLE, and each is called as every kind of user
against a real API. A field of Hirosaki belongs to ``owner``, is shared with
``heir`` and carries a prototype of ``dev``; ``other`` farms in Mutsu.

Codes: 2xx success (the exact one), 401 no token, 403 a role that may never
do it, 404 an object outside the user's scope (its existence does not leak).
"""

from __future__ import annotations

import itertools
from datetime import date, timedelta

import httpx
import psycopg
import pytest

from agri.api.accounts import add_user
from agri.api.field_registry import import_fields, parse_features
from tests.test_ingest_e2e import field_at

ROLES = ("owner", "heir", "other", "dev", "off_h", "off_m", "off_none", "planner", "admin",
         "anon")
PEOPLE = {"owner": ("az-owner", "farmer", []), "heir": ("az-heir", "farmer", []),
          "other": ("az-other", "farmer", []), "dev": ("az-dev", "developer", []),
          "off_h": ("az-off-h", "officer", ["Hirosaki"]),
          "off_m": ("az-off-m", "officer", ["Mutsu"]),
          "off_none": ("az-off-none", "officer", []),
          "planner": ("az-planner", "planner", [])}
_serial = itertools.count(1)


@pytest.fixture(scope="module")
def world(platform, api):
    tokens = {"admin": platform.admin_token, "anon": None}
    with psycopg.connect(platform.db_url) as conn:
        for role, (name, kind, regions) in PEOPLE.items():
            tokens[role] = add_user(conn, name=name, role=kind, regions=regions).token
        import_fields(conn, parse_features(field_at("az-f1", "az-owner", "Hirosaki", 140.46)))
        import_fields(conn, parse_features(field_at("az-f2", "az-other", "Mutsu", 141.18)))
        conn.execute("INSERT INTO field_shares (field_id, grantee, granted_by) "
                     "VALUES ('az-f1', 'az-heir', 'az-owner')")
        today = date.today()
        advisory = conn.execute(
            "INSERT INTO advisories (key, kind, severity, municipality, field_ids, reason, "
            "valid_from, valid_until, title_ja, body_ja, title_en, body_en, computed_for) "
            "VALUES ('az-draft', 'general', 'info', 'Hirosaki', '{az-f1}', 'test', %s, %s, "
            "'題', '本文', 'title', 'body', %s) RETURNING id",
            (today, today + timedelta(days=5), today)).fetchone()[0]
    spare = httpx.post(api + "/api/v1/me/tokens", json={"label": "spare"},
                       headers={"Authorization": f"Bearer {tokens['owner']}"})
    token_id = spare.json()["id"]
    platform.add_device("az-d1", field_id="az-f1", owner="az-owner")
    platform.add_device("az-dp", field_id="az-f1", owner="az-dev")
    platform.add_device("az-d2", field_id="az-f2", owner="az-other")
    admin = {"Authorization": f"Bearer {platform.admin_token}"}
    group = httpx.post(api + "/api/v1/groups", headers=admin, json={
        "name": "az-group", "municipality": "Hirosaki", "fields": ["az-f1"]})
    assert group.status_code == 201, group.text
    observation = httpx.post(api + "/api/v1/fields/az-f1/observations", headers=admin,
                             json={"kind": "note", "date": str(today), "note": "az"})
    assert observation.status_code in (200, 201), observation.text
    initiative = httpx.post(api + "/api/v1/initiatives", headers=admin, json={
        "name": "az-initiative", "kind": "drone", "municipality": "Hirosaki",
        "started_on": str(today), "status": "active"})
    assert initiative.status_code == 201, initiative.text
    return {"tokens": tokens, "advisory": advisory, "token_id": token_id,
            "group": group.json()["id"], "observation": observation.json()["id"],
            "initiative": initiative.json()["id"], "today": str(today)}


def _all(code: int, **overrides: int) -> dict:
    return dict.fromkeys(ROLES, code) | {"anon": 401} | overrides


# Who sees the Hirosaki field az-f1: its owner, the successor it is shared
# with, the developer with a device on it, Hirosaki's officer, admins.
FIELD_READ = _all(404, owner=200, heir=200, dev=200, off_h=200, admin=200)
# Reviewers of the region: its officer and admins; farmers, developers and
# planners never (403). Other officers do not see the region's objects (404)
# and may not create in it (403: the municipality is not theirs).
REVIEW = _all(403, off_h=200, off_m=404, off_none=404, admin=200)
CREATE_IN_REGION = _all(403, off_h=201, admin=201)
# The plan office's aggregates: planners, officers (their region), admins.
AGGREGATE = _all(403, off_h=200, off_m=200, off_none=200, planner=200, admin=200)
EVERYONE = _all(200)
# Lists of single fields, devices, flights and maps: a planner sees no farm.
NOT_PLANNER = _all(200, planner=403)
PUBLIC = _all(200, anon=200)
ADMIN_ONLY_CREATE = _all(403, admin=201)


def _new_advisory(w) -> dict:
    return {"municipality": "Hirosaki", "title": {"ja": "注意"}, "body": {"ja": "本文"},
            "valid_from": w["today"], "valid_until": w["today"]}


# (method, path template, request(world) -> (path, json), expected per role)
TABLE = [
    # 503 while an ingest worker of another test is away; never a 401.
    ("get", "/healthz", lambda w: ("/healthz", None), dict.fromkeys(ROLES, (200, 503))),
    ("get", "/metrics", lambda w: ("/metrics", None), PUBLIC),
    ("get", "/api/v1/me", lambda w: ("/api/v1/me", None), EVERYONE),
    ("patch", "/api/v1/me", lambda w: ("/api/v1/me", {"language": "ja"}), EVERYONE),
    ("get", "/api/v1/me/tokens", lambda w: ("/api/v1/me/tokens", None), EVERYONE),
    ("post", "/api/v1/me/tokens", lambda w: ("/api/v1/me/tokens", {"label": "t"}), _all(201)),
    # Only its owner revokes a token (the others' attempt is a 404); tested last.
    ("delete", "/api/v1/me/tokens/{token_id}",
     lambda w: (f"/api/v1/me/tokens/{w['token_id']}", None), _all(404, owner=204)),
    # Any signed-in user links their own LINE account.
    ("post", "/api/v1/me/line-link", lambda w: ("/api/v1/me/line-link", None), _all(201)),
    # Called by the LINE Platform, never with a token: without X-Line-Signature a 400.
    ("post", "/api/v1/line/webhook", lambda w: ("/api/v1/line/webhook", {"events": []}),
     dict.fromkeys(ROLES, 400)),
    ("post", "/api/v1/sign-in-links", lambda w: ("/api/v1/sign-in-links", {"user": "az-owner"}),
     _all(403, off_h=201, off_m=404, off_none=404, admin=201)),
    ("get", "/api/v1/fields", lambda w: ("/api/v1/fields", None), NOT_PLANNER),
    ("get", "/api/v1/fields.geojson", lambda w: ("/api/v1/fields.geojson", None), NOT_PLANNER),
    ("get", "/api/v1/fields/{field_id}", lambda w: ("/api/v1/fields/az-f1", None), FIELD_READ),
    ("get", "/api/v1/fields/{field_id}/conditions",
     lambda w: ("/api/v1/fields/az-f1/conditions", None), FIELD_READ),
    ("get", "/api/v1/fields/{field_id}/series",
     lambda w: ("/api/v1/fields/az-f1/series?metric=water_level", None), FIELD_READ),
    ("get", "/api/v1/fields/{field_id}/advice",
     lambda w: ("/api/v1/fields/az-f1/advice", None), FIELD_READ),
    # No image of the field yet: a 404 for everyone (with images:
    # tests/test_api_imagery.py), and a 401 without a token.
    ("get", "/api/v1/fields/{field_id}/map",
     lambda w: ("/api/v1/fields/az-f1/map", None), _all(404)),
    ("get", "/api/v1/fields/{field_id}/map.png",
     lambda w: ("/api/v1/fields/az-f1/map.png", None), _all(404)),
    ("get", "/api/v1/fields/{field_id}/observations",
     lambda w: ("/api/v1/fields/az-f1/observations", None), FIELD_READ),
    ("post", "/api/v1/fields/{field_id}/observations",
     lambda w: ("/api/v1/fields/az-f1/observations",
                {"kind": "note", "date": w["today"], "note": f"n{next(_serial)}"}),
     # A record of the same kind and day replaces the earlier one (200).
     _all(403, off_h=200, off_m=404, off_none=404, admin=200)),
    ("delete", "/api/v1/fields/{field_id}/observations/{observation_id}",
     lambda w: (f"/api/v1/fields/az-f1/observations/{w['observation']}", None),
     _all(403, off_h=204, off_m=404, off_none=404, admin=404)),
    ("get", "/api/v1/fields/{field_id}/shares",
     lambda w: ("/api/v1/fields/az-f1/shares", None), _all(404, owner=200)),
    ("post", "/api/v1/fields/{field_id}/shares",
     lambda w: ("/api/v1/fields/az-f1/shares", {"grantee": "az-heir"}), _all(404, owner=201)),
    ("delete", "/api/v1/fields/{field_id}/shares/{grantee}",
     lambda w: ("/api/v1/fields/az-f1/shares/az-nobody", None), _all(404)),
    ("get", "/api/v1/devices", lambda w: ("/api/v1/devices", None), NOT_PLANNER),
    # The test API's own database login may not register devices: an admin
    # gets the 503 that says so (imports: tests/test_device_import.py).
    ("post", "/api/v1/devices/import",
     lambda w: ("/api/v1/devices/import",
                {"devices": [{"id": f"az-imp-{next(_serial)}", "profile": "soil"}]}),
     _all(403, admin=503)),
    ("get", "/api/v1/devices/{device_id}", lambda w: ("/api/v1/devices/az-d1", None),
     # The developer's prototype shares the field, but not the owner's device.
     _all(404, owner=200, heir=200, off_h=200, admin=200)),
    ("get", "/api/v1/devices/health", lambda w: ("/api/v1/devices/health", None), NOT_PLANNER),
    ("get", "/api/v1/devices/{device_id}/health",
     lambda w: ("/api/v1/devices/az-dp/health", None),
     _all(404, owner=200, heir=200, dev=200, off_h=200, admin=200)),
    ("get", "/api/v1/devices/{device_id}/series",
     lambda w: ("/api/v1/devices/az-dp/series?metric=water_level", None),
     _all(404, owner=200, heir=200, dev=200, off_h=200, admin=200)),
    # Commanding a device: its owner, the region's officer, admins; the
    # successor sees it (403), the developer does not (404).
    ("post", "/api/v1/devices/{device_id}/commands",
     lambda w: ("/api/v1/devices/az-d1/commands", {"name": "reboot", "expires_in_s": 60}),
     _all(404, owner=202, heir=403, off_h=202, admin=202)),
    ("get", "/api/v1/devices/{device_id}/commands",
     lambda w: ("/api/v1/devices/az-d1/commands", None),
     _all(404, owner=200, heir=200, off_h=200, admin=200)),
    # Water control: whoever sees the field reads it; its owner, the region's
    # officer and admins set it and move gates (az-d1 is no gate: 409 once allowed).
    ("get", "/api/v1/fields/{field_id}/water-control",
     lambda w: ("/api/v1/fields/az-f1/water-control", None),
     _all(404, owner=200, heir=200, dev=200, off_h=200, admin=200)),
    ("put", "/api/v1/fields/{field_id}/water-control",
     lambda w: ("/api/v1/fields/az-f1/water-control", {"mode": "manual"}),
     _all(404, owner=200, heir=403, dev=403, off_h=200, admin=200)),
    ("post", "/api/v1/fields/{field_id}/gates/{device_id}/position",
     lambda w: ("/api/v1/fields/az-f1/gates/az-d1/position", {"position": 0}),
     _all(404, owner=409, heir=403, dev=403, off_h=409, admin=409)),
    ("get", "/api/v1/fields/{field_id}/water-control/log",
     lambda w: ("/api/v1/fields/az-f1/water-control/log", None),
     _all(404, owner=200, heir=200, dev=200, off_h=200, admin=200)),
    # The sandbox: a device's conformance reports are its owner's and admins'
    # (the farmer whose field carries the prototype sees the device, not them).
    ("get", "/api/v1/devices/{device_id}/conformance",
     lambda w: ("/api/v1/devices/az-dp/conformance", None), _all(404, dev=200, admin=200)),
    ("post", "/api/v1/devices/{device_id}/conformance",
     lambda w: ("/api/v1/devices/az-dp/conformance?minutes=5", None),
     _all(404, dev=201, admin=201)),
    ("get", "/api/v1/rejects", lambda w: ("/api/v1/rejects", None),
     _all(200, owner=403, heir=403, other=403, planner=403)),
    ("get", "/api/v1/advisories", lambda w: ("/api/v1/advisories", None),
     _all(200, dev=403, planner=403)),
    ("post", "/api/v1/advisories", lambda w: ("/api/v1/advisories", _new_advisory(w)),
     CREATE_IN_REGION),
    ("get", "/api/v1/advisories/{advisory_id}",
     lambda w: (f"/api/v1/advisories/{w['advisory']}", None),
     _all(404, off_h=200, admin=200, dev=403, planner=403)),
    ("patch", "/api/v1/advisories/{advisory_id}",
     lambda w: (f"/api/v1/advisories/{w['advisory']}", {"severity": "warning"}), REVIEW),
    ("post", "/api/v1/advisories/{advisory_id}/publish",
     lambda w: (f"/api/v1/advisories/{w['advisory']}/publish", {"fields": ["az-f1"]}), REVIEW),
    ("post", "/api/v1/advisories/{advisory_id}/withdraw",
     lambda w: (f"/api/v1/advisories/{w['advisory']}/withdraw", None), REVIEW),
    ("get", "/api/v1/groups", lambda w: ("/api/v1/groups", None),
     _all(403, off_h=200, off_m=200, off_none=200, admin=200)),
    ("post", "/api/v1/groups",
     lambda w: ("/api/v1/groups", {"name": f"g{next(_serial)}", "municipality": "Hirosaki"}),
     CREATE_IN_REGION),
    ("get", "/api/v1/groups/{group_id}", lambda w: (f"/api/v1/groups/{w['group']}", None),
     REVIEW),
    ("put", "/api/v1/groups/{group_id}/members",
     lambda w: (f"/api/v1/groups/{w['group']}/members", {"fields": ["az-f1"]}), REVIEW),
    ("post", "/api/v1/fields/import", None, None),  # multipart: tests/test_fude_import.py
    ("get", "/api/v1/kpis", lambda w: ("/api/v1/kpis", None), AGGREGATE),
    ("get", "/api/v1/kpis.csv", lambda w: ("/api/v1/kpis.csv", None), AGGREGATE),
    ("get", "/api/v1/initiatives", lambda w: ("/api/v1/initiatives", None), AGGREGATE),
    ("post", "/api/v1/initiatives",
     lambda w: ("/api/v1/initiatives", {"name": f"i{next(_serial)}", "kind": "drone",
                                        "municipality": "Hirosaki",
                                        "started_on": w["today"], "status": "active"}),
     _all(403, off_h=201, planner=201, admin=201)),
    ("get", "/api/v1/initiatives/{initiative_id}",
     lambda w: (f"/api/v1/initiatives/{w['initiative']}", None),
     _all(403, off_h=200, off_m=404, off_none=404, planner=200, admin=200)),
    ("patch", "/api/v1/initiatives/{initiative_id}",
     lambda w: (f"/api/v1/initiatives/{w['initiative']}", {"status": "active"}),
     _all(403, off_h=200, off_m=404, off_none=404, planner=200, admin=200)),
    ("get", "/api/v1/open-data", lambda w: ("/api/v1/open-data", None), PUBLIC),
    ("get", "/api/v1/open-data/publications", lambda w: ("/api/v1/open-data/publications", None),
     _all(403, planner=200, admin=200)),
    ("post", "/api/v1/open-data/{dataset}/publish",
     lambda w: ("/api/v1/open-data/weather-daily/publish", {}),
     _all(403, planner=200, admin=200)),
    ("get", "/api/v1/open-data/{dataset}.{fmt}",
     lambda w: ("/api/v1/open-data/weather-daily.json", None), PUBLIC),
    ("get", "/api/v1/showcase", lambda w: ("/api/v1/showcase", None), PUBLIC),
    ("post", "/api/v1/showcase",
     lambda w: ("/api/v1/showcase", {"name": f"app{next(_serial)}", "organisation": "az",
                                     "url": "https://az.example.jp/"}),
     _all(403, planner=201, admin=201)),
    ("get", "/api/v1/flights", lambda w: ("/api/v1/flights", None), NOT_PLANNER),
    ("post", "/api/v1/flights", None, None),  # multipart uploads: tests/test_api_imagery.py
    ("get", "/api/v1/flights/{image_id}", lambda w: ("/api/v1/flights/999999999", None),
     _all(404, planner=403)),
    ("get", "/api/v1/spray-records", lambda w: ("/api/v1/spray-records", None),
     _all(200, planner=403, dev=403)),
    ("get", "/api/v1/spray-summary", lambda w: ("/api/v1/spray-summary", None), AGGREGATE),
    ("get", "/api/v1/harvest-map", lambda w: ("/api/v1/harvest-map", None), NOT_PLANNER),
    ("get", "/api/v1/protein-map", lambda w: ("/api/v1/protein-map", None), NOT_PLANNER),
]


def test_every_operation_is_in_the_table(api):
    documented = {(method, path) for path, ops in httpx.get(api + "/openapi.json").json()[
        "paths"].items() for method in ops}
    listed = {(method, path) for method, path, _, _ in TABLE}
    assert documented - listed == set(), "operations nobody said who may call"
    assert listed - documented == set(), "operations in the table that the API lacks"


def _call(api: str, method: str, path: str, body, token: str | None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.request(method.upper(), api + path, headers=headers,
                         json=body if body is not None else None, timeout=30).status_code


def test_who_may_do_what(api, world):
    wrong = []
    # Token revocation last, so that the owner's token works for the rest.
    ordered = sorted(TABLE, key=lambda row: row[1] == "/api/v1/me/tokens/{token_id}")
    for method, template, request, expected in ordered:
        if request is None:
            continue
        for role in ROLES:
            path, body = request(world)
            got = _call(api, method, path, body, world["tokens"][role])
            want = expected[role]
            if got != want and not (isinstance(want, tuple) and got in want):
                wrong.append(f"{method.upper()} {template} as {role}: {got}, "
                             f"expected {expected[role]}")
    assert not wrong, "\n".join(wrong)


def test_lists_hold_only_what_each_user_may_see(api, world):
    """What each list shows, by user: the Hirosaki field (az-f1) and the
    Mutsu one (az-f2), their devices, and the Hirosaki draft advisory."""
    def ids(role: str, path: str, key: str = "id") -> set:
        token = world["tokens"][role]
        body = httpx.get(api + path, headers={"Authorization": f"Bearer {token}"}).json()
        items = body.get("items", body.get("features", []))
        found = {item.get(key) or item.get("properties", {}).get(key) for item in items}
        return {i for i in found if isinstance(i, str) and i.startswith("az-")} if key != \
            "key" else found
    fields = {"owner": {"az-f1"}, "heir": {"az-f1"}, "other": {"az-f2"}, "dev": {"az-f1"},
              "off_h": {"az-f1"}, "off_m": {"az-f2"}, "off_none": set(), "planner": set(),
              "admin": {"az-f1", "az-f2"}}
    # A farmer sees the devices on their fields, a developer's prototype there
    # included; the developer sees only their own.
    devices = {"owner": {"az-d1", "az-dp"}, "heir": {"az-d1", "az-dp"}, "other": {"az-d2"},
               "dev": {"az-dp"},
               "off_h": {"az-d1", "az-dp"}, "off_m": {"az-d2"}, "off_none": set(),
               "planner": set(), "admin": {"az-d1", "az-dp", "az-d2"}}
    wrong = []
    for role, want in fields.items():
        for path in ("/api/v1/fields?limit=1000", "/api/v1/fields.geojson",
                     "/api/v1/harvest-map", "/api/v1/protein-map"):
            got = ids(role, path)
            if got != want:
                wrong.append(f"{path} as {role}: {sorted(got)}, expected {sorted(want)}")
    for role, want in devices.items():
        got = ids(role, "/api/v1/devices?limit=1000", key="device_id") | ids(
            role, "/api/v1/devices?limit=1000")
        if got != want:
            wrong.append(f"/api/v1/devices as {role}: {sorted(got)}, expected {sorted(want)}")
    assert not wrong, "\n".join(wrong)
