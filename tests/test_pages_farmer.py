"""The farmer's pages through a real `agri api`, signed in through the login
form: their own fields only, the field page with its chart, advice and the
time of its data, caching for a weak signal, the language switch, the diary
(CSRF, hostile photos), the season report and sharing with a successor."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import httpx
import orjson
import psycopg
import pytest

from agri.api.accounts import add_user
from agri.api.field_registry import import_fields, parse_features
from agri.api.web.photos import MAX_PHOTO_BYTES
from agri.api.web.render import PAGE_CACHE
from agri.api.web.svg_charts import BAND, LINE
from agri.clock import TZ, today_local
from agri.deploy.servers import free_port
from agri.devices.topics import senml_topic
from tests.fix_pages import PageClient, login
from tests.fix_stack import wait_for
from tests.test_api_imagery import _polygon, survey
from tests.test_ingest_e2e import FIELD, publish

NEW_PASSWORD = "paddy-pages-2026"
PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00"
       b"\x00\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N"
       b"\x00\x00\x00\x00IEND\xaeB`\x82")
HOURS = 72


def _field(fid: str, owner: str, name: str, lon: float) -> dict:
    data = orjson.loads(orjson.dumps(FIELD))
    feature = data["features"][0]
    feature["properties"].update(id=fid, owner=owner, name=name, municipality="Hirosaki")
    feature["geometry"]["coordinates"] = [[[lon + x, lat] for x, lat in
                                           ((p[0] - 140.46, p[1])
                                            for p in feature["geometry"]["coordinates"][0])]]
    return feature


def _signed_in(api: str, name: str, password: str) -> PageClient:
    client = login(api, name, password)
    r = client.form("/password", current=password, new=NEW_PASSWORD, confirm=NEW_PASSWORD)
    assert r.status_code == 303, (r.status_code, r.text[:300])
    return client


@pytest.fixture(scope="module")
def farm(platform, api):
    today = today_local()
    with psycopg.connect(platform.db_url) as conn:
        people = {name: add_user(conn, name=name, role="farmer")
                  for name in ("pf-owner", "pf-other", "pf-heir", "pf-lang")}
        import_fields(conn, parse_features({"type": "FeatureCollection", "features": [
            _field("pf-wet", "pf-owner", "上の田", 140.46),
            _field("pf-dry", "pf-owner", "下の田", 140.47),
            _field("pf-theirs", "pf-other", "よその田", 140.48)]}))
        with conn.transaction():
            for n in range(7):
                conn.execute("INSERT INTO field_water_bands (field_id, day, low_m, high_m, "
                             "phase, computed_for) VALUES ('pf-dry', %s, 0.03, 0.06, "
                             "'tillering', %s)", (today - timedelta(days=n), today))
            conn.execute("INSERT INTO field_water_status (field_id, computed_for, state, "
                         "off_hours, share_inside, latest_level_m) VALUES "
                         "('pf-dry', %s, 'below', 8, 0.2, 0.02), "
                         "('pf-wet', %s, 'inside', 0, 1.0, 0.05)", (today, today))
            conn.execute("INSERT INTO field_stages (field_id, computed_for, year, cultivar, dvi, "
                         "stage, heading, heading_observed, maturity) VALUES ('pf-dry', %s, %s, "
                         "'seiten-no-hekireki', 0.8, 'booting', %s, true, %s)",
                         (today, today.year, today - timedelta(days=3),
                          today + timedelta(days=40)))
            conn.execute("INSERT INTO field_harvest_windows (field_id, computed_for, opens, "
                         "closes, opens_cday, closes_cday, rule, region_order) VALUES "
                         "('pf-dry', %s, %s, %s, 960, 1100, 'test', 2)",
                         (today, today + timedelta(days=38), today + timedelta(days=47)))
            advisory = conn.execute(
                "INSERT INTO advisories (key, kind, severity, status, municipality, field_ids, "
                "reason, valid_from, valid_until, title_ja, body_ja, title_en, body_en, "
                "computed_for, published_at) VALUES ('pf-advice', 'general', 'urgent', "
                "'published', 'Hirosaki', '{pf-dry}', 'test', %s, %s, '深水にしてください', "
                "'今夜は冷えます。水を10 cmまで深くしてください。', 'Keep the water deep', "
                "'A cold night: raise the water to 10 cm.', %s, now()) RETURNING id",
                (today - timedelta(days=1), today + timedelta(days=1), today)).fetchone()[0]
            conn.execute("INSERT INTO advisory_publications (advisory_id, target, field_ids, "
                         "published_by) VALUES (%s, 'fields', '{pf-dry}', 'pf-test')",
                         (advisory,))
    password = platform.add_device("pf-paddy", "paddy-water", field_id="pf-dry")
    worker = platform.start_ingest("pf")
    try:
        device = platform.device_client("pf-paddy", password)
        now = int(time.time()) // 3600 * 3600
        pack = []
        for h in range(HOURS):
            pack += [{"bt": now - 3600 * h, "n": "water_level", "u": "cm", "v": 2 + h % 3},
                     {"n": "water_temp", "u": "Cel", "v": 21.5}]
        publish(device, senml_topic("pf-paddy"), orjson.dumps(pack))
        wait_for(lambda: platform.sql("SELECT count(*) FROM readings WHERE device_id = "
                                      "'pf-paddy'")[0][0] == 2 * HOURS,
                 what="the paddy's readings to be stored")
        device.loop_stop()
        device.disconnect()
    finally:
        platform.stop_ingest(worker)
    return {"people": people, "latest": datetime.fromtimestamp(now, UTC)}


@pytest.fixture(scope="module")
def owner(api, farm):
    return _signed_in(api, "pf-owner", farm["people"]["pf-owner"].password)


@pytest.fixture(scope="module")
def other(api, farm):
    return _signed_in(api, "pf-other", farm["people"]["pf-other"].password)


@pytest.fixture(scope="module")
def heir(api, farm):
    return _signed_in(api, "pf-heir", farm["people"]["pf-heir"].password)


def _diary_count(platform, field_id: str) -> int:
    return platform.sql("SELECT count(*) FROM field_diary WHERE field_id = %s", (field_id,))[0][0]


def test_pages_need_a_session(api, farm):
    r = httpx.get(api + "/fields/pf-dry")
    assert r.status_code == 303 and r.headers["location"].startswith("/login?next=")
    assert httpx.get(api + "/").headers["location"].startswith("/login")


def test_a_farmer_sees_their_own_fields_the_dry_one_first(owner, other, farm):
    page = owner.get("/fields")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<html lang="ja">' in page.text
    names = re.findall(r'<span class="name">([^<]+)</span>', page.text)
    assert names == ["下の田", "上の田"]  # the one short of water first
    assert "まず水を見てください: 下の田" in page.text
    assert "よその田" not in page.text
    assert "水位 2.0 cm" in page.text  # the latest reading, by measurement time
    assert "すぐ対応" in page.text and "深水にしてください" in page.text
    assert owner.get("/").headers["location"] == "/fields"
    # Another farmer's field, and ids no field has, are missing pages in Japanese.
    for path in ("/fields/pf-theirs", "/fields/nope", "/fields/%3Cscript%3E",
                 "/fields/" + "x" * 300, "/no-such-page"):
        r = owner.get(path)
        assert r.status_code == 404, path
        assert "ページが見つかりません" in r.text and r.headers["cache-control"] == "no-store"
    assert other.get("/fields/pf-dry").status_code == 404
    assert "下の田" not in other.get("/fields").text
    # The JSON API keeps its JSON errors.
    r = owner.get("/api/v1/no-such")
    assert r.status_code == 404 and r.json() == {"detail": "Not Found"}


def test_field_page_water_against_the_band_advice_stage_and_the_data_time(owner, farm):
    page = owner.get("/fields/pf-dry")
    assert page.status_code == 200
    html = page.text
    assert len(page.content) < 60_000
    svgs = re.findall(r"<svg .*?</svg>", html, re.S)
    level = next(s for s in svgs if "水位(7日間、cm)" in s)
    assert f'fill="{BAND}"' in level and f'stroke="{LINE}"' in level
    assert "目標の範囲 3.0 cm〜6.0 cm" in level and "最小 2.0 cm" in level
    temp = next(s for s in svgs if "水温(7日間、℃)" in s)
    assert "最新 21.5 °C" in temp and f'fill="{BAND}"' not in temp
    assert "目標 3〜6 cm" in html and "水が足りません" in html
    assert "深水にしてください" in html and "水を10 cmまで深くしてください" in html
    assert "穂ばらみ期" in html and "(観察)" in html and "(予測)" in html
    today = today_local()
    opens = today + timedelta(days=38)
    assert f"{opens.month}/{opens.day}" in html and "地区内の刈り取り順 2 番目" in html
    shown = farm["latest"].astimezone(TZ).strftime("%Y-%m-%d %H:%M")
    assert f"データ時刻 {shown}" in html
    assert 'href="/fields/pf-dry/diary"' in html and 'href="/fields/pf-dry/share"' in html


def test_pages_revalidate_cheaply_and_say_when_their_data_is_from(owner, farm):
    page = owner.get("/fields/pf-dry")
    assert page.headers["cache-control"] == PAGE_CACHE
    assert "stale-if-error=604800" in PAGE_CACHE and "private" in PAGE_CACHE
    assert "cookie" in page.headers["vary"].lower()
    assert parsedate_to_datetime(page.headers["last-modified"]) == farm["latest"]
    for _ in range(3):  # the page says how old its values are: it may change by the minute
        etag = owner.get("/fields/pf-dry").headers["etag"]
        again = owner.get("/fields/pf-dry", headers={"If-None-Match": etag})
        if again.status_code != 200 or again.headers["etag"] == etag:
            break
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == etag
    assert owner.get("/fields/pf-dry", headers={"If-None-Match": '"other"'}).status_code == 200
    css = re.search(r'href="(/static/app\.css\?v=[0-9a-f]{12})"', page.text).group(1)
    r = owner.get(css)
    assert r.status_code == 200 and "immutable" in r.headers["cache-control"]
    assert "max-age=31536000" in r.headers["cache-control"]
    assert owner.get("/static/app.css?v=0").headers["cache-control"] == "public, max-age=300"
    assert owner.get("/static/../app.py").status_code == 404


def test_language_switch_is_kept(api, farm):
    client = _signed_in(api, "pf-lang", farm["people"]["pf-lang"].password)
    assert '<html lang="ja">' in client.get("/fields").text
    r = client.get("/fields?lang=en")
    assert '<html lang="en">' in r.text and "My fields" in r.text
    assert r.headers["content-language"] == "en" and client.cookies.get("lang") == "en"
    r = client.get("/fields")
    assert '<html lang="en">' in r.text and 'href="/fields?lang=ja"' in r.text
    assert "Page not found" in client.get("/fields/pf-dry").text
    assert '<html lang="ja">' in client.get("/fields?lang=ja").text
    assert '<html lang="ja">' in client.get("/fields?lang=xx").text


def test_diary_refuses_forms_without_the_sessions_token(owner, platform, farm):
    before = _diary_count(platform, "pf-dry")
    fields = {"day": "2026-07-15", "kind": "water", "text": "水を入れた"}
    for token in (None, "", "forged-token"):
        data = fields | ({"csrf": token} if token is not None else {})
        r = owner.post("/fields/pf-dry/diary", data=data)
        assert r.status_code == 403 and "ページを開き直して" in r.text
    assert _diary_count(platform, "pf-dry") == before


def _diary_post(client, field_id, *, files=None, **fields):
    token = client.csrf(f"/fields/{field_id}/diary")
    return client.post(f"/fields/{field_id}/diary", data={"csrf": token, **fields},
                       files=files)


def test_diary_entry_with_a_photo_seen_only_by_who_sees_the_field(owner, other, platform):
    before = _diary_count(platform, "pf-dry")
    r = _diary_post(owner, "pf-dry", day="2026-07-15", kind="water",
                    text="朝 水を入れた\n夕方 5 cm", files={"photo": ("a.png", PNG, "image/png")})
    assert r.status_code == 303 and r.headers["location"] == "/fields/pf-dry/diary?saved=1"
    assert _diary_count(platform, "pf-dry") == before + 1
    entry, photo = platform.sql("SELECT id, photo FROM field_diary WHERE field_id = 'pf-dry' "
                                "ORDER BY id DESC LIMIT 1")[0]
    page = owner.get("/fields/pf-dry/diary?saved=1")
    assert "保存しました" in page.text and "朝 水を入れた\n夕方 5 cm" in page.text
    img = owner.get(f"/fields/pf-dry/diary/{entry}/photo")
    assert img.status_code == 200 and img.content == PNG
    assert img.headers["content-type"] == "image/png"
    assert (platform.home / "photos" / photo).read_bytes() == PNG
    assert other.get(f"/fields/pf-dry/diary/{entry}/photo").status_code == 404
    assert other.get("/fields/pf-dry/diary").status_code == 404
    r = _diary_post(other, "pf-theirs", day="2026-07-15", kind="note", text="x")
    assert r.status_code == 303
    # Another farmer cannot write into this field's diary, even with their own valid token.
    token = other.csrf("/fields/pf-theirs/diary")
    r = other.post("/fields/pf-dry/diary", data={"csrf": token, "day": "2026-07-16",
                                                 "kind": "note", "text": "いたずら"})
    assert r.status_code == 404
    assert _diary_count(platform, "pf-dry") == before + 1


def test_diary_refuses_hostile_input_and_keeps_nothing(owner, platform, api):
    before = _diary_count(platform, "pf-dry")
    photos_before = set((platform.home / "photos").glob("*"))
    cases = [
        ({"day": "2026-07-15", "kind": "water", "text": "x"},
         {"photo": ("a.jpg", b"<html>not a photo</html>", "image/jpeg")}, 400, "JPEGかPNG"),
        ({"day": "2026-07-15", "kind": "water", "text": "x"},
         {"photo": ("a.png", b"GIF89a" + b"\0" * 100, "image/png")}, 400, "JPEGかPNG"),
        ({"day": "2026-07-15", "kind": "water", "text": "x"},
         {"photo": ("big.jpg", b"\xff\xd8\xff\xe0" + b"\0" * MAX_PHOTO_BYTES, "image/jpeg")},
         413, "大きすぎます"),
        ({"day": "yesterday", "kind": "water", "text": "x"}, None, 400, "日付を正しく"),
        ({"day": "2026-07-15", "kind": "<script>", "text": "x"}, None, 400, "種類を選んで"),
        ({"day": "2026-07-15", "kind": "note", "text": "  "}, None, 400, "内容を書いて"),
        ({"day": "2026-07-15", "kind": "note", "text": "x" * 2001}, None, 400, "内容を書いて"),
        ({"day": "2026-07-15", "kind": "note", "text": "a\x00b"}, None, 400, "内容を書いて"),
    ]
    for fields, files, status, words in cases:
        r = _diary_post(owner, "pf-dry", files=files, **fields)
        assert r.status_code == status, (fields, r.status_code, r.text[:200])
        assert words in r.text, (fields, r.text[:500])
        assert "<script>" not in r.text
    # A body declared far too large is refused before it is read.
    host, port = api.removeprefix("http://").split(":")
    cookie = "; ".join(f"{k}={v}" for k, v in owner.cookies.items())
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(f"POST /fields/pf-dry/diary HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\n"
                  f"Content-Type: multipart/form-data; boundary=x\r\n"
                  f"Content-Length: {50 * MAX_PHOTO_BYTES}\r\n\r\n".encode())
        head = s.recv(4096).decode("latin-1")
    assert head.startswith("HTTP/1.1 413"), head[:200]
    assert _diary_count(platform, "pf-dry") == before
    assert set((platform.home / "photos").glob("*")) == photos_before


def test_season_report_gathers_the_season(owner, platform):
    _diary_post(owner, "pf-dry", day=f"{today_local().year}-06-01", kind="fertiliser",
                text="穂肥 N 2 kg")
    r = owner.get(f"/fields/pf-dry/report?year={today_local().year}")
    assert r.status_code == 200
    assert "穂肥 N 2 kg" in r.text and "穂ばらみ期" in r.text and "深水にしてください" in r.text
    assert "@media print" in owner.get("/static/app.css").text
    for year in ("abc", "99999", "-1", "1" * 30):
        r = owner.get(f"/fields/pf-dry/report?year={year}")
        assert r.status_code == 422 and "入力を確かめて" in r.text, year
    assert owner.get("/fields/pf-dry/report?year=%00").status_code == 400
    assert owner.get("/fields/pf-theirs/report").status_code == 404


def test_sharing_with_a_successor_grants_read_only_and_is_withdrawn(owner, heir, other,
                                                                     platform):
    assert heir.get("/fields/pf-dry").status_code == 404
    r = owner.form("/fields/pf-dry/share", grantee="pf-heir")
    assert r.status_code == 303
    assert "pf-heir さんと共有しました" in owner.get(r.headers["location"]).text
    page = heir.get("/fields/pf-dry")
    assert page.status_code == 200 and "見るだけで、日誌は書けません" in page.text
    assert 'href="/fields/pf-dry/diary"' not in page.text
    assert "共有された田んぼ(見るだけ)" in heir.get("/fields").text
    diary = heir.get("/fields/pf-dry/diary")
    assert diary.status_code == 200 and 'name="text"' not in diary.text
    before = _diary_count(platform, "pf-dry")
    token = re.search(r'name="csrf" value="([^"]+)"', diary.text).group(1)
    r = heir.post("/fields/pf-dry/diary", data={"csrf": token, "day": "2026-07-16",
                                                "kind": "note", "text": "書けるか"})
    assert r.status_code == 404 and _diary_count(platform, "pf-dry") == before
    # Only the owner shares: not the successor, not another farmer.
    assert heir.get("/fields/pf-dry/share").status_code == 403
    assert other.get("/fields/pf-dry/share").status_code == 404
    r = heir.post("/fields/pf-dry/share", data={"csrf": token, "grantee": "pf-other"})
    assert r.status_code == 403
    # Hostile and wrong grantees.
    for name, words in (("pf-nobody", "見つかりません"), ("pf-owner", "自分とは"),
                        ("<b>x</b>", "見つかりません")):
        r = owner.form("/fields/pf-dry/share", grantee=name)
        assert r.status_code == 400 and words in r.text and "<b>x</b>" not in r.text
    assert owner.post("/fields/pf-dry/share", data={"grantee": "pf-other"}).status_code == 403
    r = owner.form("/fields/pf-dry/share", action="/fields/pf-dry/share/revoke",
                   grantee="pf-heir")
    assert r.status_code == 303
    assert heir.get("/fields/pf-dry").status_code == 404
    assert platform.sql("SELECT revoked_at IS NOT NULL FROM field_shares WHERE "
                        "field_id = 'pf-dry' AND grantee = 'pf-heir'") == [(True,)]


def test_field_page_shows_the_latest_image_of_the_field_to_who_sees_it(owner, other, platform,
                                                                        farm):
    assert "まだ画像がありません" in owner.get("/fields/pf-dry").text
    assert owner.get("/fields/pf-dry/map.png").status_code == 404
    # Its own bytes: another module stores the same survey in the same database.
    tif = survey(platform.home / "pf-survey.tif", width_m=121.0)
    with psycopg.connect(platform.db_url) as conn:
        import_fields(conn, parse_features({"type": "FeatureCollection", "features": [{
            "type": "Feature", "geometry": _polygon(10.0, -50.0, 50.0, -10.0),
            "properties": {"id": "pf-imaged", "name": "画像の田", "owner": "pf-owner",
                           "cultivar": "seiten-no-hekireki", "transplanted_on": "2026-05-20",
                           "municipality": "Hirosaki"}}]}))
        image = conn.execute(
            "INSERT INTO images (source, path, sha256, acquired_at, status) VALUES "
            "('drone-p4m', %s, %s, '2026-08-20T10:15:00+09:00', 'done') RETURNING id",
            (str(tif), hashlib.sha256(tif.read_bytes()).hexdigest())).fetchone()[0]
        conn.execute("INSERT INTO field_index_stats (image_id, field_id, acquired_on, ndvi_mean, "
                     "valid_fraction, stats) VALUES (%s, 'pf-imaged', '2026-08-20', 0.75, 1, "
                     "'{}')", (image,))
    page = owner.get("/fields/pf-imaged").text
    assert '<img class="fieldmap" src="/fields/pf-imaged/map.png"' in page
    assert 'alt="画像の田 の生育マップ(2026-08-20、drone-p4m)"' in page and "平均 0.75" in page
    png = owner.get("/fields/pf-imaged/map.png")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert png.content.startswith(b"\x89PNG\r\n\x1a\n")
    again = owner.get("/fields/pf-imaged/map.png", headers={"If-None-Match": png.headers["etag"]})
    assert again.status_code == 304
    assert other.get("/fields/pf-imaged/map.png").status_code == 404


@pytest.mark.fault
def test_a_page_says_in_japanese_when_the_database_does_not_answer(tmp_path):
    port, nobody = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGRI_")}
    env |= {"AGRI_HOME": str(tmp_path),
            "AGRI_DATABASE_URL": f"postgresql://agri:x@127.0.0.1:{nobody}/agri",
            "AGRI_MQTT_URL": f"mqtt://agri:x@127.0.0.1:{nobody}"}
    base = f"http://127.0.0.1:{port}"
    with open(tmp_path / "api.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "agri.cli", "api", "--port", str(port)],
                                env=env, stdout=log, stderr=log)
    try:
        def up() -> bool:
            try:
                return httpx.get(base + "/static/app.css", timeout=1).status_code == 200
            except httpx.HTTPError:
                return proc.poll() is not None
        wait_for(up, what="the API to serve its style sheet")
        assert proc.poll() is None, (tmp_path / "api.log").read_text()[-2000:]
        page = httpx.get(base + "/fields", timeout=60)
        assert page.status_code == 503 and page.headers["content-type"].startswith("text/html")
        assert "少し待ってから開き直してください" in page.text
        assert page.headers["cache-control"] == "no-store" and page.headers["retry-after"]
        api = httpx.get(base + "/api/v1/me", headers={"Authorization": "Bearer x"}, timeout=60)
        assert api.status_code == 503 and "database unavailable" in api.json()["detail"]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
