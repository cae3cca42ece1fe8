"""Advisories through a real `agri api` process: an analytics draft edited,
published to a group, read by the farmers of the group's fields and by no
one else, withdrawn; officers of another region, without a region, farmers,
planners; hostile bodies; pagination. Counted in the database."""

from __future__ import annotations

import json
from datetime import date, timedelta

import httpx
import orjson
import psycopg
import pytest

from agri.analytics import advice, advice_results
from agri.api.accounts import add_user
from agri.api.field_registry import import_fields, parse_features

TOWN = "Advtown"         # the officer's region
FAR = "Advfar"           # another officer's region
DAY = date(2026, 7, 10)  # a past day: the analytics' draft is for it
FIELDS = {  # id -> (owner, municipality)
    "adv-f1": ("adv-farmer1", TOWN), "adv-f2": ("adv-farmer2", TOWN),
    "adv-f4": ("adv-farmer4", TOWN), "adv-f3": ("adv-farmer3", FAR)}


def feature(fid: str, owner: str, town: str, n: int) -> dict:
    lon, lat = 140.50 + n * 0.001, 40.70
    return {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[
        [lon, lat], [lon + 0.0004, lat], [lon + 0.0004, lat + 0.0009], [lon, lat + 0.0009],
        [lon, lat]]]},
        "properties": {"id": fid, "name": fid, "owner": owner, "cultivar": "seiten-no-hekireki",
                       "transplanted_on": "2026-05-20", "municipality": town}}


@pytest.fixture(scope="module")
def people(platform):
    users = [("adv-officer", "officer", [TOWN]), ("adv-officer-far", "officer", [FAR]),
             ("adv-officer-none", "officer", []), ("adv-planner", "planner", []),
             ("adv-dev", "developer", []), ("adv-admin", "admin", [])]
    users += [(owner, "farmer", []) for owner, _ in FIELDS.values()]
    with psycopg.connect(platform.db_url) as conn:
        tokens = {name: add_user(conn, name=name, role=role, regions=regions).token
                  for name, role, regions in users}
        import_fields(conn, parse_features({"type": "FeatureCollection", "features": [
            feature(fid, owner, town, n)
            for n, (fid, (owner, town)) in enumerate(FIELDS.items())]}))
        # The analytics' daily run drafts the advisories of each municipality.
        drafts = [advice.Advisory(
            kind=advice.AdviceKind.COLD_DAMAGE, severity=advice.Severity.WARNING,
            municipality=town, field_ids=ids, reason="cold-forecast",
            evidence={"fields": {f: {"recent_tmean_c": 18.5} for f in ids}},
            valid_from=DAY, valid_until=DAY + timedelta(days=5), title_ja="冷害に注意",
            body_ja="深水にしてください", title_en="Cold damage", body_en="Keep the water deep")
            for town, ids in ((TOWN, ("adv-f1", "adv-f2", "adv-f4")), (FAR, ("adv-f3",)))]
        assert advice_results.store(conn, drafts, as_of=DAY) == 2
    return tokens


class Client:
    def __init__(self, base: str, token: str) -> None:
        self.http = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"},
                                 timeout=30)

    def get(self, path: str, **params) -> httpx.Response:
        return self.http.get(path, params=params)

    def post(self, path: str, body=None, **kw) -> httpx.Response:
        if body is not None:  # as JSON with \u escapes (a lone surrogate too)
            kw |= {"content": json.dumps(body).encode(),
                   "headers": {"Content-Type": "application/json"}}
        return self.http.post(path, **kw)

    def patch(self, path: str, body) -> httpx.Response:
        return self.http.patch(path, content=json.dumps(body).encode(),
                               headers={"Content-Type": "application/json"})

    def put(self, path: str, body) -> httpx.Response:
        return self.http.put(path, json=body)


@pytest.fixture(scope="module")
def as_(api, people):
    clients = {name: Client(api, token) for name, token in people.items()}
    yield clients.__getitem__
    for c in clients.values():
        c.http.close()


def draft_id(platform, town: str) -> int:
    return platform.sql("SELECT id FROM advisories WHERE municipality = %s AND created_by IS "
                        "NULL ORDER BY id LIMIT 1", (town,))[0][0]


def ids(response: httpx.Response) -> list[int]:
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


def counts(platform) -> tuple:
    return platform.sql(
        "SELECT (SELECT count(*) FROM advisories), (SELECT count(*) FROM advisory_publications),"
        " (SELECT count(*) FROM advisory_history), (SELECT count(*) FROM field_groups), "
        "(SELECT count(*) FROM field_group_members), "
        "(SELECT string_agg(md5(a::text), ',' ORDER BY id) FROM advisories a)")[0]


def test_draft_edited_published_to_a_group_read_by_its_farmers_then_withdrawn(platform, as_):
    officer = as_("adv-officer")
    aid = draft_id(platform, TOWN)
    assert aid in ids(officer.get("/api/v1/advisories", status="draft"))
    assert draft_id(platform, FAR) not in ids(officer.get("/api/v1/advisories"))
    assert aid not in ids(as_("adv-farmer1").get("/api/v1/advisories"))  # a draft
    assert ids(as_("adv-farmer1").get("/api/v1/fields/adv-f1/advice")) == []

    r = officer.post("/api/v1/groups", {"name": "第3生産組合", "municipality": TOWN,
                                        "fields": ["adv-f1", "adv-f2"]})
    assert r.status_code == 201, r.text
    group = r.json()
    assert [f["id"] for f in group["fields"]] == ["adv-f1", "adv-f2"]
    assert officer.post("/api/v1/groups", {"name": "第3生産組合", "municipality": TOWN}
                        ).status_code == 409

    r = officer.patch(f"/api/v1/advisories/{aid}",
                      {"body": {"ja": "7月15日まで水深10cm以上に"}, "severity": "urgent"})
    assert r.status_code == 200, r.text
    assert r.json()["body"] == {"ja": "7月15日まで水深10cm以上に", "en": "Keep the water deep"}
    r = officer.post(f"/api/v1/advisories/{aid}/publish", {"group": group["id"]})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "published"
    assert officer.post(f"/api/v1/advisories/{aid}/publish", {"group": group["id"]}
                        ).status_code == 200  # the same target again: kept once
    stored = platform.sql("SELECT status, severity, body_ja, edited_by, published_at IS NOT NULL "
                          "FROM advisories WHERE id = %s", (aid,))
    assert stored == [("published", "urgent", "7月15日まで水深10cm以上に", "adv-officer", True)]
    assert platform.sql("SELECT target, group_id, published_by FROM advisory_publications "
                        "WHERE advisory_id = %s", (aid,)) == [("group", group["id"],
                                                               "adv-officer")]
    history = platform.sql("SELECT action, done_by, changes FROM advisory_history WHERE "
                           "advisory_id = %s ORDER BY id", (aid,))
    assert [(a, b) for a, b, _ in history] == [("edit", "adv-officer"), ("publish", "adv-officer")]
    assert history[0][2] == {"body_ja": {"from": "深水にしてください",
                                         "to": "7月15日まで水深10cm以上に"},
                             "severity": {"from": "warning", "to": "urgent"}}

    # The group's farmers read it; a farmer of the same town outside the group does not.
    for farmer, field in (("adv-farmer1", "adv-f1"), ("adv-farmer2", "adv-f2")):
        listed = as_(farmer).get("/api/v1/advisories").json()["items"]
        mine = [i for i in listed if i["id"] == aid]
        assert mine and mine[0]["fields"] == [field] and "evidence" not in mine[0]
        assert mine[0]["body"]["ja"] == "7月15日まで水深10cm以上に"
        assert ids(as_(farmer).get(f"/api/v1/fields/{field}/advice")) == [aid]
        assert as_(farmer).get(f"/api/v1/advisories/{aid}").status_code == 200
    for farmer, field in (("adv-farmer4", "adv-f4"), ("adv-farmer3", "adv-f3")):
        assert aid not in ids(as_(farmer).get("/api/v1/advisories"))
        assert ids(as_(farmer).get(f"/api/v1/fields/{field}/advice")) == []
        assert as_(farmer).get(f"/api/v1/advisories/{aid}").status_code == 404
    # A field joining the group later gets it too.
    r = officer.put(f"/api/v1/groups/{group['id']}/members",
                    {"fields": ["adv-f1", "adv-f2", "adv-f4"]})
    assert r.status_code == 200 and r.json()["members"] == 3
    assert ids(as_("adv-farmer4").get("/api/v1/fields/adv-f4/advice")) == [aid]

    r = officer.post(f"/api/v1/advisories/{aid}/withdraw")
    assert r.status_code == 200 and r.json()["status"] == "withdrawn"
    for farmer, field in (("adv-farmer1", "adv-f1"), ("adv-farmer4", "adv-f4")):
        assert aid not in ids(as_(farmer).get("/api/v1/advisories"))
        assert ids(as_(farmer).get(f"/api/v1/fields/{field}/advice")) == []
    seen = officer.get("/api/v1/fields/adv-f1/advice").json()["items"]
    assert [(i["id"], i["status"]) for i in seen] == [(aid, "withdrawn")]
    assert platform.sql("SELECT count(*) FILTER (WHERE withdrawn_at IS NULL), count(*) FROM "
                        "advisory_publications WHERE advisory_id = %s", (aid,)) == [(0, 1)]
    detail = officer.get(f"/api/v1/advisories/{aid}").json()
    assert [h["action"] for h in detail["history"]] == ["edit", "publish", "withdraw"]
    for again in (officer.post(f"/api/v1/advisories/{aid}/publish", {"group": group["id"]}),
                  officer.patch(f"/api/v1/advisories/{aid}", {"title": {"ja": "再"}})):
        assert again.status_code == 409 and "draft a new one" in again.json()["detail"]
    # The analytics' next run leaves the withdrawn advisory as the officer left it.
    with psycopg.connect(platform.db_url) as conn:
        advice_results.store(conn, [advice.Advisory(
            kind=advice.AdviceKind.COLD_DAMAGE, severity=advice.Severity.WARNING,
            municipality=TOWN, field_ids=("adv-f1",), reason="cold-forecast", evidence={},
            valid_from=DAY, valid_until=DAY + timedelta(days=5), title_ja="冷害に注意",
            body_ja="x", title_en="Cold", body_en="x")], as_of=DAY)
    assert platform.sql("SELECT status, body_ja FROM advisories WHERE id = %s", (aid,)) == [
        ("withdrawn", "7月15日まで水深10cm以上に")]


def test_an_officer_writes_one_and_publishes_to_fields_and_the_region(platform, as_):
    officer = as_("adv-officer")
    body = {"kind": "general", "municipality": TOWN, "title": {"ja": "落水の時期"},
            "body": {"ja": "出穂後30日を目安に落水", "en": "Drain 30 days after heading"},
            "valid_from": "2026-08-25", "valid_until": "2026-09-10"}
    r = officer.post("/api/v1/advisories", body)
    assert r.status_code == 201, r.text
    aid = r.json()["id"]
    assert r.json()["status"] == "draft" and r.json()["created_by"] == "adv-officer"
    r = officer.post(f"/api/v1/advisories/{aid}/publish", {"fields": ["adv-f2"]})
    assert r.status_code == 200, r.text
    assert aid in ids(as_("adv-farmer2").get("/api/v1/advisories"))
    assert aid not in ids(as_("adv-farmer1").get("/api/v1/advisories"))
    r = officer.post(f"/api/v1/advisories/{aid}/publish", {"region": [TOWN]})
    assert r.status_code == 200, r.text
    for farmer in ("adv-farmer1", "adv-farmer2", "adv-farmer4"):
        assert aid in ids(as_(farmer).get("/api/v1/advisories", current="false"))
    assert aid not in ids(as_("adv-farmer3").get("/api/v1/advisories"))
    # Edited while published: farmers read the new text; the history has both.
    r = officer.patch(f"/api/v1/advisories/{aid}", {"valid_until": "2026-09-05",
                                                     "title": {"en": "When to drain"}})
    assert r.status_code == 200 and r.json()["title"] == {"ja": "落水の時期", "en": "When to drain"}
    item = [i for i in as_("adv-farmer1").get("/api/v1/advisories").json()["items"]
            if i["id"] == aid][0]
    assert item["valid_until"] == "2026-09-05" and item["fields"] == ["adv-f1"]
    assert platform.sql("SELECT action FROM advisory_history WHERE advisory_id = %s "
                        "ORDER BY id", (aid,)) == [("create",), ("publish",), ("publish",),
                                                   ("edit",)]
    # An admin sees everything; targets anywhere.
    assert aid in ids(as_("adv-admin").get("/api/v1/advisories"))


def test_another_region_no_region_farmers_planners(platform, as_):
    aid = draft_id(platform, TOWN)
    far_aid = draft_id(platform, FAR)
    group = platform.sql("SELECT id FROM field_groups WHERE municipality = %s", (TOWN,))[0][0]
    before = counts(platform)
    far = as_("adv-officer-far")
    for r in (far.get(f"/api/v1/advisories/{aid}"),
              far.patch(f"/api/v1/advisories/{aid}", {"title": {"ja": "x"}}),
              far.post(f"/api/v1/advisories/{aid}/publish", {"region": [FAR]}),
              far.post(f"/api/v1/advisories/{aid}/withdraw"),
              far.get(f"/api/v1/groups/{group}"),
              far.put(f"/api/v1/groups/{group}/members", {"fields": ["adv-f3"]}),
              far.post(f"/api/v1/advisories/{far_aid}/publish", {"group": group}),
              far.post(f"/api/v1/advisories/{far_aid}/publish", {"fields": ["adv-f3", "adv-f1"]}),
              far.post("/api/v1/groups", {"name": "x", "municipality": FAR,
                                          "fields": ["adv-f1"]})):
        assert r.status_code == 404, (r.request.url, r.text)
    assert aid not in ids(far.get("/api/v1/advisories"))
    assert group not in ids(far.get("/api/v1/groups"))
    r = far.post(f"/api/v1/advisories/{far_aid}/publish", {"region": [FAR, TOWN]})
    assert r.status_code == 403 and TOWN in r.json()["detail"]
    r = far.post("/api/v1/advisories", {"municipality": TOWN, "title": {"ja": "x"},
                                        "body": {"ja": "x"}, "valid_from": "2026-08-01",
                                        "valid_until": "2026-08-02"})
    assert r.status_code == 403
    none = as_("adv-officer-none")
    assert ids(none.get("/api/v1/advisories")) == [] and ids(none.get("/api/v1/groups")) == []
    assert none.get(f"/api/v1/advisories/{aid}").status_code == 404
    assert none.get("/api/v1/fields/adv-f1/advice").status_code == 404
    assert none.post(f"/api/v1/advisories/{aid}/publish", {"fields": ["adv-f1"]}
                     ).status_code == 404
    assert none.post("/api/v1/groups", {"name": "x", "municipality": TOWN}).status_code == 403
    farmer = as_("adv-farmer1")
    for r in (farmer.post(f"/api/v1/advisories/{aid}/publish", {"fields": ["adv-f1"]}),
              farmer.patch(f"/api/v1/advisories/{aid}", {"title": {"ja": "x"}}),
              farmer.post(f"/api/v1/advisories/{aid}/withdraw"),
              farmer.post("/api/v1/advisories", {"municipality": TOWN, "title": {"ja": "x"},
                                                 "body": {"ja": "x"},
                                                 "valid_from": "2026-08-01",
                                                 "valid_until": "2026-08-02"}),
              farmer.get("/api/v1/groups"),
              farmer.put(f"/api/v1/groups/{group}/members", {"fields": ["adv-f1"]})):
        assert r.status_code == 403, (r.request.url, r.text)
        assert "officer" in r.json()["detail"]
    for who in ("adv-planner", "adv-dev"):
        client = as_(who)
        assert client.get("/api/v1/advisories").status_code == 403
        assert client.get(f"/api/v1/advisories/{aid}").status_code == 403
        assert client.get("/api/v1/fields/adv-f1/advice").status_code == 404
        assert client.post(f"/api/v1/advisories/{aid}/publish", {"region": [TOWN]}
                           ).status_code == 403
    assert counts(platform) == before


def test_hostile_input_is_refused_and_stores_nothing(platform, as_, api):
    officer = as_("adv-officer")
    aid = officer.post("/api/v1/advisories", {
        "municipality": TOWN, "title": {"ja": "試し"}, "body": {"ja": "本文"},
        "valid_from": "2026-08-01", "valid_until": "2026-08-02"}).json()["id"]
    before = counts(platform)
    log = platform.home / "api.log"
    offset = log.stat().st_size
    good = {"municipality": TOWN, "title": {"ja": "t"}, "body": {"ja": "b"},
            "valid_from": "2026-08-01", "valid_until": "2026-08-02"}
    bad_new = [good | {"title": {"ja": "長" * 201}}, good | {"body": {"ja": "x" * 100_000}},
               good | {"body": {"ja": "a\u0000b"}}, good | {"status": "published"},
               good | {"owner": "adv-farmer1"}, good | {"field_ids": ["adv-f1"]},
               good | {"municipality": "T\u0000"}, good | {"valid_until": "2026-07-01"},
               good | {"valid_until": "2028-08-01"}, good | {"kind": "DROP TABLE"},
               good | {"title": {"ja": ""}}, good | {"title": {"ja": "t", "fr": "t"}},
               good | {"valid_from": "2026-13-01"}, [good], "text", None]
    for body in bad_new:
        r = officer.post("/api/v1/advisories", body)
        assert r.status_code == 422, (str(body)[:200], r.text[:300])
    for body in ({"status": "published"}, {"title": {"ja": "\u0000"}},
                 {"body": {"en": "y" * 4001}}, {"valid_until": "2026-07-01"},
                 {"key": "x"}, {"municipality": FAR}):
        r = officer.patch(f"/api/v1/advisories/{aid}", body)
        assert r.status_code == 422, (body, r.text[:300])
    for target in ({}, {"fields": []}, {"fields": ["adv-f1"], "group": 1},
                   {"fields": ["adv\u0000"]}, {"fields": ["x" * 65]}, {"fields": ["a/../b"]},
                   {"group": 2**63}, {"group": "1; DROP"}, {"region": [""]},
                   {"region": [TOWN], "status": "draft"}, {"fields": ["f"] * 1001}):
        r = officer.post(f"/api/v1/advisories/{aid}/publish", target)
        assert r.status_code == 422, (str(target)[:100], r.text[:300])
    r = officer.post(f"/api/v1/advisories/{aid}/publish", {"fields": ["adv-f1", "adv-nosuch"]})
    assert r.status_code == 404 and "adv-nosuch" in r.json()["detail"]
    r = officer.post(f"/api/v1/advisories/{aid}/publish", {"region": ["Nowhere"]})
    assert r.status_code == 403
    r = officer.post(f"/api/v1/advisories/{aid}/publish", content=b"{not json",
                     headers={"Content-Type": "application/json"})
    assert r.status_code == 422
    for path in ("/api/v1/advisories/%00", f"/api/v1/advisories/{2**64}",
                 "/api/v1/advisories/-1", f"/api/v1/groups/{2**63}"):
        assert officer.get(path).status_code in (400, 422), path  # never a 500
    for params in ({"cursor": str(2**64)}, {"limit": "0"}, {"limit": "100000"},
                   {"status": "deleted"}, {"cursor": "%00"}):
        assert officer.get("/api/v1/advisories", **params).status_code == 422, params
    for path in ("/api/v1/fields/%00/advice", "/api/v1/fields/" + "x" * 300 + "/advice"):
        assert officer.get(path).status_code in (400, 404, 422), path
    r = officer.post("/api/v1/groups", {"name": "g" * 201, "municipality": TOWN})
    assert r.status_code == 422
    r = officer.post("/api/v1/groups", {"name": "g", "municipality": TOWN, "id": 5})
    assert r.status_code == 422
    assert counts(platform) == before
    with log.open("rb") as fh:
        fh.seek(offset)
        assert b"Traceback" not in fh.read()


def test_text_that_is_not_unicode_is_a_422(platform, as_):
    before = counts(platform)
    r = as_("adv-officer").post("/api/v1/advisories", {
        "municipality": TOWN, "title": {"ja": "\ud800"}, "body": {"ja": "b"},
        "valid_from": "2026-08-01", "valid_until": "2026-08-02"})
    assert counts(platform) == before
    assert r.status_code == 422, r.text


def test_pagination_walks_every_advisory_once(platform, as_):
    officer = as_("adv-officer")
    for n in range(5):
        r = officer.post("/api/v1/advisories", {
            "municipality": TOWN, "title": {"ja": f"お知らせ {n}"}, "body": {"ja": "本文"},
            "valid_from": "2026-08-01", "valid_until": "2026-08-31"})
        assert r.status_code == 201
    seen, cursor = [], None
    while True:
        params = {"limit": "2"} | ({"cursor": str(cursor)} if cursor else {})
        body = officer.get("/api/v1/advisories", **params).json()
        assert len(body["items"]) <= 2
        seen += [i["id"] for i in body["items"]]
        cursor = body["next"]
        if cursor is None:
            break
    stored = [r[0] for r in platform.sql("SELECT id FROM advisories WHERE municipality = %s "
                                         "ORDER BY id DESC", (TOWN,))]
    assert seen == stored and len(stored) >= 7
    drafts = ids(officer.get("/api/v1/advisories", status="draft", limit="50"))
    assert drafts == [i for i, in platform.sql(
        "SELECT id FROM advisories WHERE municipality = %s AND status = 'draft' "
        "ORDER BY id DESC", (TOWN,))]


def test_openapi_has_examples_for_the_advisory_routes(api):
    spec = orjson.loads(httpx.get(api + "/openapi.json").content)
    for path, method in (("/api/v1/advisories", "get"), ("/api/v1/advisories", "post"),
                         ("/api/v1/advisories/{advisory_id}/publish", "post"),
                         ("/api/v1/groups", "post"), ("/api/v1/fields/{field_id}/advice", "get")):
        op = spec["paths"][path][method]
        ok = op["responses"]["200" if method == "get" or "publish" in path else "201"]
        assert "example" in ok["content"]["application/json"], (path, method)
        if method == "post":
            body = op["requestBody"]["content"]["application/json"]
            assert body.get("examples"), (path, method)
