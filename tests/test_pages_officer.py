"""The officer's pages through a real `agri api` and real sessions: the
region's map and list (only the officer's region), advisories reviewed and
published through the forms (the farmer's field page then shows them),
observations, the harvest order, printable sign-in links; forms without
CSRF, an officer without region, and hostile input."""

from __future__ import annotations

import re
from datetime import date, timedelta

import psycopg
import pytest

from agri.api.accounts import add_user
from agri.api.field_registry import import_fields, parse_features
from agri.clock import today_local
from tests.fix_pages import PageClient, login

TOWN, OTHER_TOWN = "Nishimeya", "Sannohe"


def square(lon: float, lat: float, size: float = 0.0006) -> dict:
    return {"type": "Polygon", "coordinates": [[
        [lon, lat], [lon + size, lat], [lon + size, lat + size * 0.8], [lon, lat + size * 0.8],
        [lon, lat]]]}


def field(fid: str, name: str, owner: str, town: str, lon: float, lat: float) -> dict:
    return {"type": "Feature", "geometry": square(lon, lat),
            "properties": {"id": fid, "name": name, "owner": owner,
                           "cultivar": "seiten-no-hekireki", "transplanted_on": "2026-05-20",
                           "municipality": town}}


def make_people(conn, people: list[tuple[str, str, list[str]]]) -> dict:
    """Users who may sign in with their initial password and go straight on."""
    made = {name: add_user(conn, name=name, role=role, regions=regions)
            for name, role, regions in people}
    conn.execute("UPDATE users SET must_change_password = false WHERE name = ANY(%s)",
                 (list(made),))
    return made


def draft(conn, key: str, town: str, fields: list[str], title: str) -> int:
    today = today_local()
    return conn.execute(
        "INSERT INTO advisories (key, kind, severity, municipality, field_ids, reason, "
        "valid_from, valid_until, title_ja, body_ja, title_en, body_en, computed_for) "
        "VALUES (%s, 'water_band', 'warning', %s, %s, 'water below band', %s, %s, %s, "
        "'水を入れてください', %s, 'Let water in', %s) RETURNING id",
        (key, town, fields, today, today + timedelta(days=3), title, title + " en",
         today)).fetchone()[0]


@pytest.fixture(scope="module")
def world(platform):
    with psycopg.connect(platform.db_url) as conn:
        people = make_people(conn, [
            ("po-officer", "officer", [TOWN]), ("po-other-officer", "officer", [OTHER_TOWN]),
            ("po-noregion", "officer", []), ("po-farmer", "farmer", []),
            ("po-farmer2", "farmer", [])])
        import_fields(conn, parse_features({"type": "FeatureCollection", "features": [
            field("po-f1", "西目屋 一番", "po-farmer", TOWN, 140.2900, 40.5700),
            field("po-f2", "西目屋 二番", "po-farmer", TOWN, 140.2910, 40.5700),
            field("po-k1", "三戸 よその田", "po-farmer2", OTHER_TOWN, 141.2500, 40.3800)]}))
        today = today_local()
        for fid, opens, order in (("po-f1", today + timedelta(days=30), 1),
                                  ("po-f2", today + timedelta(days=36), 2)):
            conn.execute(
                "INSERT INTO field_harvest_windows (field_id, computed_for, opens, closes, "
                "opens_cday, closes_cday, rule, region_order, order_basis) VALUES "
                "(%s, %s, %s, %s, 950, 1150, 'test', %s, 'window') ON CONFLICT DO NOTHING",
                (fid, today, opens, opens + timedelta(days=8), order))
        ids = {"draft": draft(conn, "po:water:1", TOWN, ["po-f1"], "水位が低い 西目屋"),
               "other": draft(conn, "po:water:2", OTHER_TOWN, ["po-k1"], "水位が低い 三戸")}
    return {"people": people, "ids": ids}


def client_of(api, world, name: str) -> PageClient:
    return login(api, name, world["people"][name].password)


def test_the_map_shows_the_officers_region_only(api, world):
    officer = client_of(api, world, "po-officer")
    page = officer.get("/region")
    assert page.status_code == 200, page.text[:500]
    svg = re.search(r'<svg[^>]*class="map".*?</svg>', page.text, re.S)
    assert svg, page.text[:1000]
    assert "西目屋 一番" in svg.group(0) and "西目屋 二番" in svg.group(0)
    assert "三戸" not in page.text and "po-k1" not in page.text
    assert 'href="/fields/po-f1"' in page.text  # the list beside the map
    assert "<image" not in svg.group(0)  # no basemap unless asked for
    # By predicted harvest date: the earlier field is red (class 1), the later green.
    harvest = officer.get("/region?mode=harvest")
    assert harvest.status_code == 200
    assert "#d7191c" in harvest.text and "#1a9641" in harvest.text
    assert "早い" in harvest.text and "遅い" in harvest.text
    protein = officer.get("/region?mode=protein&lang=en")
    assert protein.status_code == 200 and "No protein estimate" in protein.text
    # The basemap only when ticked, with its attribution and the tile server allowed.
    tiles = officer.get(f"/region?municipality={TOWN}&basemap=1")
    assert tiles.status_code == 200
    assert "https://cyberjapandata.gsi.go.jp/xyz/std/" in tiles.text
    assert "出典：国土地理院" in tiles.text
    assert "https://maps.gsi.go.jp/development/ichiran.html" in tiles.text
    assert "cyberjapandata.gsi.go.jp" in tiles.headers["content-security-policy"]
    # Another region's municipality shows nothing of it.
    elsewhere = officer.get(f"/region?municipality={OTHER_TOWN}")
    assert elsewhere.status_code == 404 and "po-k1" not in elsewhere.text
    # The other officer sees theirs and not this one's.
    other = client_of(api, world, "po-other-officer").get("/region")
    assert "三戸 よその田" in other.text and "西目屋" not in other.text


def test_an_officer_without_region_sees_an_empty_region_with_a_message(api, world):
    nobody = client_of(api, world, "po-noregion")
    for path in ("/region", "/advisories", "/harvest-order", "/sign-in-links"):
        page = nobody.get(path)
        assert page.status_code == 200, (path, page.status_code)
        assert "担当地域が設定されていません" in page.text, path
        assert "po-f1" not in page.text and "po-k1" not in page.text
    assert 'class="map"' not in nobody.get("/region").text


def test_a_farmer_and_a_planner_cannot_use_the_officers_pages(api, world, platform):
    farmer = client_of(api, world, "po-farmer")
    for path in ("/region", "/advisories", "/harvest-order", "/sign-in-links",
                 "/fields/po-f1/observations"):
        assert farmer.get(path).status_code == 403, path
    r = farmer.post(f"/advisories/{world['ids']['draft']}/publish", data={
        "csrf": farmer.csrf("/fields"), "target": "fields", "field": "po-f1"})
    assert r.status_code == 403
    assert platform.sql("SELECT count(*) FROM advisory_publications WHERE advisory_id = %s",
                        (world["ids"]["draft"],))[0][0] == 0


def test_the_officer_publishes_a_draft_and_the_farmer_reads_it(api, world, platform):
    officer = client_of(api, world, "po-officer")
    advisory = world["ids"]["draft"]
    listing = officer.get("/advisories")
    assert listing.status_code == 200
    assert "水位が低い 西目屋" in listing.text and "水位が低い 三戸" not in listing.text
    assert listing.text.index("水位が低い 西目屋") < listing.text.index("公開中")  # drafts first
    # Another region's advisory is not this officer's to open.
    assert officer.get(f"/advisories/{world['ids']['other']}").status_code == 404
    farmer = client_of(api, world, "po-farmer")
    assert "水位が低い 西目屋" not in farmer.get("/fields/po-f1").text
    # Edit, then publish to the rule's field, through the forms.
    r = officer.form(f"/advisories/{advisory}", action=f"/advisories/{advisory}/edit",
                     title_ja="水位が低い 西目屋 確認済み", body_ja="今日中に水を入れてください",
                     title_en="", body_en="", severity="warning",
                     valid_from=today_local().isoformat(),
                     valid_until=(today_local() + timedelta(days=3)).isoformat())
    assert r.status_code == 303 and r.headers["location"] == f"/advisories/{advisory}?done=edited"
    r = officer.form(f"/advisories/{advisory}", action=f"/advisories/{advisory}/publish",
                     target="fields", field="po-f1")
    assert r.status_code == 303, r.text[:500]
    shown = officer.get(r.headers["location"])
    assert "公開しました" in shown.text
    # The list is asked for again each time, so it never shows the draft as a draft.
    assert "no-cache" in shown.headers["cache-control"]
    again = officer.get("/advisories", headers={"If-None-Match": listing.headers["etag"]})
    assert again.status_code == 200
    assert platform.sql("SELECT status FROM advisories WHERE id = %s", (advisory,))[0][0] == \
        "published"
    assert platform.sql("SELECT field_ids, published_by FROM advisory_publications WHERE "
                        "advisory_id = %s", (advisory,)) == [(["po-f1"], "po-officer")]
    page = farmer.get("/fields/po-f1")
    assert page.status_code == 200 and "水位が低い 西目屋 確認済み" in page.text
    assert "今日中に水を入れてください" in page.text
    # Withdrawn, the farmer no longer reads it.
    r = officer.form(f"/advisories/{advisory}", action=f"/advisories/{advisory}/withdraw")
    assert r.status_code == 303
    assert "水位が低い 西目屋 確認済み" not in farmer.get("/fields/po-f1").text


def test_forms_without_csrf_are_refused_and_change_nothing(api, world, platform):
    officer = client_of(api, world, "po-officer")
    with psycopg.connect(platform.db_url) as conn:
        advisory = draft(conn, "po:water:csrf", TOWN, ["po-f2"], "CSRF の確認")
    for data in ({"target": "fields", "field": "po-f2"},
                 {"target": "fields", "field": "po-f2", "csrf": "forged"}):
        r = officer.post(f"/advisories/{advisory}/publish", data=data)
        assert r.status_code == 403, data
    r = officer.post("/fields/po-f2/observations", data={"kind": "heading",
                                                         "date": today_local().isoformat()})
    assert r.status_code == 403
    # A token from another session is not this session's.
    other = client_of(api, world, "po-other-officer")
    r = officer.post(f"/advisories/{advisory}/withdraw",
                     data={"csrf": other.csrf("/advisories")})
    assert r.status_code == 403
    assert platform.sql("SELECT status FROM advisories WHERE id = %s", (advisory,))[0][0] == \
        "draft"
    assert platform.sql("SELECT count(*) FROM advisory_publications WHERE advisory_id = %s",
                        (advisory,))[0][0] == 0


def test_hostile_input_in_the_forms(api, world, platform):
    officer = client_of(api, world, "po-officer")
    with psycopg.connect(platform.db_url) as conn:
        advisory = draft(conn, "po:water:hostile", TOWN, ["po-f2"], "悪い入力の確認")
    page = f"/advisories/{advisory}"
    # Another region's field id: not found in this region, nothing published.
    r = officer.form(page, action=f"{page}/publish", target="fields", field="po-k1")
    assert r.status_code == 404 and "po-k1" in r.text
    r = officer.form(page, action=f"{page}/publish", target="fields",
                     fields_text="po-f2 ../../etc")
    assert r.status_code == 422
    r = officer.form(page, action=f"{page}/publish", target="region",
                     municipality=OTHER_TOWN)
    assert r.status_code == 403
    assert platform.sql("SELECT count(*) FROM advisory_publications WHERE advisory_id = %s",
                        (advisory,))[0][0] == 0
    # NUL and huge text: the form again with the reason, nothing changed.
    for title, body in (("NUL\x00です", "本文"), ("見出し", "あ" * 5000), ("x" * 201, "本文")):
        r = officer.form(page, action=f"{page}/edit", title_ja=title, body_ja=body,
                         severity="info", valid_from=today_local().isoformat(),
                         valid_until=today_local().isoformat())
        assert r.status_code == 422, (title[:10], r.status_code)
        assert "\x00" not in r.text
    r = officer.form(page, action=f"{page}/edit", title_ja="見出し", body_ja="本文",
                     severity="catastrophic", valid_from="2026-13-40", valid_until="x")
    assert r.status_code == 422
    assert platform.sql("SELECT title_ja FROM advisories WHERE id = %s", (advisory,))[0][0] == \
        "悪い入力の確認"
    # Ids that are not ids: a page saying so, never a server error.
    for bad in ("%00", "99999999999999999999999", "-1", "1e3", "%E2%80%AE"):
        assert officer.get(f"/advisories/{bad}").status_code in (400, 404), bad
        r = officer.post(f"/advisories/{bad}/withdraw",
                         data={"csrf": officer.csrf("/advisories")})
        assert r.status_code in (400, 404), bad
    assert officer.get(f"{page}?done=recorded").status_code == 200
    assert officer.get("/fields/po-f1/observations?done=published&lang=xx").status_code == 200
    assert officer.get("/fields/po-k1/observations").status_code == 404
    assert officer.get("/fields/%00/observations").status_code in (404, 400)
    r = officer.form("/fields/po-f1/observations", action="/fields/po-k1/observations",
                     kind="heading", date=today_local().isoformat())
    assert r.status_code == 404
    for data in ({"kind": "heading", "date": today_local().isoformat(), "note": "a\x00b"},
                 {"kind": "lab_protein", "date": today_local().isoformat(), "value": "NaN"},
                 {"kind": "lab_protein", "date": today_local().isoformat(), "value": "abc"},
                 {"kind": "lab_protein", "date": today_local().isoformat(), "value": "60"},
                 {"kind": "heading", "date": "2999-01-01"},
                 {"kind": "nonsense", "date": today_local().isoformat()},
                 {"kind": "note", "date": today_local().isoformat(), "note": "n" * 2001}):
        r = officer.form("/fields/po-f1/observations", **data)
        assert r.status_code == 422, (data, r.status_code, r.text[:300])
    assert platform.sql("SELECT count(*) FROM observations WHERE field_id = 'po-k1'")[0][0] == 0
    # A municipality filter that is not text of this region.
    assert officer.get("/region?municipality=%E2%80%AE").status_code == 404
    assert officer.get("/region?mode=x&basemap=yes").status_code == 200


def test_observations_are_recorded_through_the_form(api, world, platform):
    officer = client_of(api, world, "po-officer")
    day = (today_local() - timedelta(days=2)).isoformat()
    r = officer.form("/fields/po-f2/observations", kind="lab_protein", date=day, value="6,2",
                     note="JA 分析")
    assert r.status_code == 303, r.text[:500]
    page = officer.get(r.headers["location"])
    assert "記録しました" in page.text and "6.2" in page.text
    r = officer.form("/fields/po-f2/observations", kind="heading", date=day)
    assert r.status_code == 303
    rows = platform.sql("SELECT kind, observed_on, value, note, recorded_by FROM observations "
                        "WHERE field_id = 'po-f2' ORDER BY kind")
    assert rows == [("heading", date.fromisoformat(day), None, None, "po-officer"),
                    ("lab_protein", date.fromisoformat(day), 6.2, "JA 分析", "po-officer")]


def test_the_harvest_order_lists_each_municipalitys_fields_in_order(api, world):
    officer = client_of(api, world, "po-officer")
    page = officer.get("/harvest-order")
    assert page.status_code == 200
    assert page.text.index("西目屋 一番") < page.text.index("西目屋 二番")
    opens = today_local() + timedelta(days=30)
    assert f"{opens.month}/{opens.day}" in page.text
    assert "三戸" not in page.text


def test_a_printable_sign_in_link_for_a_farmer_of_the_region(api, world):
    officer = client_of(api, world, "po-officer")
    form = officer.get("/sign-in-links")
    assert 'value="po-farmer"' in form.text and "po-farmer2" not in form.text
    # The URL comes from the settings, never from the Host header of the request.
    r = officer.post("/sign-in-links", data={"csrf": officer.csrf("/sign-in-links"),
                                             "farmer": "po-farmer"},
                     headers={"Host": "evil.example"})
    assert r.status_code == 200, r.text[:500]
    assert r.headers["cache-control"] == "no-store" and "etag" not in r.headers
    assert "<svg" in r.text and "evil.example" not in r.text
    url = re.search(r"(http://[^\s<]+/sign-in/[A-Za-z0-9_-]+)", r.text).group(1)
    token_path = url[url.index("/sign-in/"):]
    farmer = PageClient(api)
    button = farmer.get(token_path)
    assert button.status_code == 200
    r = farmer.form(token_path)
    assert r.status_code == 303
    assert "西目屋 一番" in farmer.get("/fields").text
    # A farmer outside the region, or no such user: not found, no link.
    for name in ("po-farmer2", "nobody-at-all", "a\x00b", "x" * 500):
        r = officer.post("/sign-in-links", data={"csrf": officer.csrf("/sign-in-links"),
                                                 "farmer": name})
        assert r.status_code == 404, name
        assert "/sign-in/" not in r.text
