"""Accounts through a real API: /me, tokens (hashed, listable, revocable,
expiring), sign-in links made by officers for their region's farmers, and
shares of a field with a successor."""

from __future__ import annotations

import httpx
import orjson
import psycopg
import pytest

from agri.api.accounts import add_user
from agri.api.field_registry import import_fields, parse_features
from agri.devices.credentials import token_digest
from tests.test_ingest_e2e import FIELD


@pytest.fixture(scope="module")
def acc(platform):
    with psycopg.connect(platform.db_url) as conn:
        people = {name: add_user(conn, name=name, role=role, regions=regions)
                  for name, role, regions in [
                      ("acc-farmer", "farmer", []), ("acc-heir", "farmer", []),
                      ("acc-other", "farmer", []),
                      ("acc-officer", "officer", ["Hirosaki"]),
                      ("acc-officer-far", "officer", ["Mutsu"]),
                      ("acc-noregion", "officer", []), ("acc-planner", "planner", [])]}
        data = orjson.loads(orjson.dumps(FIELD))
        data["features"][0]["properties"].update(id="acc-field", owner="acc-farmer",
                                                 municipality="Hirosaki")
        import_fields(conn, parse_features(data))
    return people


def _h(person) -> dict:
    return {"Authorization": f"Bearer {person.token}"}


def test_me_says_who_and_cannot_change_role_or_region(api, acc, platform):
    r = httpx.get(api + "/api/v1/me", headers=_h(acc["acc-officer"]))
    assert r.status_code == 200
    assert r.json() | {"display_name": None} == {
        "name": "acc-officer", "role": "officer", "regions": ["Hirosaki"], "language": "ja",
        "display_name": None}
    for body in ({"role": "admin"}, {"regions": ["Aomori"]}, {"name": "x"}):
        r = httpx.patch(api + "/api/v1/me", headers=_h(acc["acc-officer"]), json=body)
        assert r.status_code == 422, body
    r = httpx.patch(api + "/api/v1/me", headers=_h(acc["acc-officer"]),
                    json={"display_name": "弘前 普及員", "language": "en"})
    assert r.status_code == 200 and r.json()["language"] == "en"
    assert platform.sql("SELECT role, regions, display_name FROM users "
                        "WHERE name = 'acc-officer'") == [("officer", ["Hirosaki"], "弘前 普及員")]
    # A write is stored by the time its answer arrives, every time.
    for n in range(20):
        r = httpx.patch(api + "/api/v1/me", headers=_h(acc["acc-officer"]),
                        json={"display_name": f"n{n}"})
        assert r.status_code == 200
        assert platform.sql("SELECT display_name FROM users WHERE name = 'acc-officer'") == [
            (f"n{n}",)]


def test_tokens_are_hashed_listed_revoked_and_expire(api, acc, platform):
    me = _h(acc["acc-other"])
    r = httpx.post(api + "/api/v1/me/tokens", headers=me,
                   json={"label": "tablet", "expires_in_days": 30})
    assert r.status_code == 201
    new = r.json()
    stored = platform.sql("SELECT token_hash FROM api_tokens WHERE id = %s", (new["id"],))
    assert stored == [(token_digest(new["token"]),)]
    assert new["token"].encode() not in bytes(stored[0][0])
    second = {"Authorization": f"Bearer {new['token']}"}
    assert httpx.get(api + "/api/v1/me", headers=second).json()["name"] == "acc-other"
    listed = httpx.get(api + "/api/v1/me/tokens", headers=me).json()
    assert {t["label"] for t in listed["items"]} == {"initial", "tablet"}
    assert all("token" not in t for t in listed["items"])
    # Someone else's token cannot be revoked, nor seen to exist.
    r = httpx.delete(api + f"/api/v1/me/tokens/{new['id']}", headers=_h(acc["acc-farmer"]))
    assert r.status_code == 404
    assert httpx.get(api + "/api/v1/me", headers=second).status_code == 200
    assert httpx.delete(api + f"/api/v1/me/tokens/{new['id']}", headers=me).status_code == 204
    assert httpx.get(api + "/api/v1/me", headers=second).status_code == 401
    # An expired token stops.
    r = httpx.post(api + "/api/v1/me/tokens", headers=me, json={"label": "old"}).json()
    with psycopg.connect(platform.db_url) as conn:
        conn.execute("UPDATE api_tokens SET expires_at = now() - interval '1 s' WHERE id = %s",
                     (r["id"],))
    r = httpx.get(api + "/api/v1/me", headers={"Authorization": f"Bearer {r['token']}"})
    assert r.status_code == 401 and "expired" in r.json()["detail"]
    # Hostile: a label too long, a lifetime too long, an id beyond 64 bits.
    for body in ({"label": "x" * 101}, {"label": "a", "expires_in_days": 10_000},
                 {"label": "a", "user_name": "acc-farmer"}):
        assert httpx.post(api + "/api/v1/me/tokens", headers=me, json=body).status_code == 422
    assert httpx.delete(api + "/api/v1/me/tokens/99999999999999999999",
                        headers=me).status_code == 422


def test_sign_in_links_only_for_the_officers_own_farmers(api, acc, platform):
    body = {"user": "acc-farmer"}
    r = httpx.post(api + "/api/v1/sign-in-links", headers=_h(acc["acc-officer"]), json=body)
    assert r.status_code == 201
    link = r.json()
    assert "/sign-in/" in link["url"] and link["qr_svg"].startswith("<svg")
    # The token is stored hashed, once.
    token = link["url"].rsplit("/", 1)[1]
    assert platform.sql("SELECT user_name, created_by FROM sign_in_links WHERE token_hash = %s",
                        (token_digest(token),)) == [("acc-farmer", "acc-officer")]
    before = platform.sql("SELECT count(*) FROM sign_in_links")[0][0]
    for who in ("acc-officer-far", "acc-noregion"):
        r = httpx.post(api + "/api/v1/sign-in-links", headers=_h(acc[who]), json=body)
        assert r.status_code == 404, who
    for who in ("acc-farmer", "acc-planner"):
        r = httpx.post(api + "/api/v1/sign-in-links", headers=_h(acc[who]), json=body)
        assert r.status_code == 403, who
    r = httpx.post(api + "/api/v1/sign-in-links", headers=_h(acc["acc-officer"]),
                   json={"user": "acc-officer-far"})  # not a farmer
    assert r.status_code == 404
    r = httpx.post(api + "/api/v1/sign-in-links", headers=_h(acc["acc-officer"]),
                   json={"user": "bad\u0000name"})
    assert r.status_code == 422
    assert platform.sql("SELECT count(*) FROM sign_in_links")[0][0] == before


def test_a_share_lets_the_successor_read_until_withdrawn(api, acc, platform):
    owner, heir, other = _h(acc["acc-farmer"]), _h(acc["acc-heir"]), _h(acc["acc-other"])
    detail = api + "/api/v1/fields/acc-field"
    assert httpx.get(detail, headers=heir).status_code == 404
    # Only the owner shares; another farmer's attempt looks like no field.
    r = httpx.post(detail + "/shares", headers=other, json={"grantee": "acc-other"})
    assert r.status_code == 404
    r = httpx.post(detail + "/shares", headers=owner, json={"grantee": "acc-officer"})
    assert r.status_code == 422 and "farmer" in r.json()["detail"]
    r = httpx.post(detail + "/shares", headers=owner, json={"grantee": "acc-heir"})
    assert r.status_code == 201
    assert httpx.get(detail, headers=heir).status_code == 200
    assert httpx.get(detail, headers=other).status_code == 404
    # The successor may read but not share onwards.
    r = httpx.post(detail + "/shares", headers=heir, json={"grantee": "acc-other"})
    assert r.status_code == 404
    listed = httpx.get(detail + "/shares", headers=owner).json()["items"]
    assert [s["grantee"] for s in listed] == ["acc-heir"]
    assert httpx.delete(detail + "/shares/acc-heir", headers=owner).status_code == 204
    assert httpx.get(detail, headers=heir).status_code == 404
    assert platform.sql("SELECT count(*) FROM field_shares WHERE field_id = 'acc-field' "
                        "AND revoked_at IS NULL") == [(0,)]


def test_an_officer_without_region_and_a_planner_see_no_field(api, acc):
    for who in ("acc-noregion", "acc-planner", "acc-officer-far"):
        r = httpx.get(api + "/api/v1/fields/acc-field", headers=_h(acc[who]))
        assert r.status_code == 404, who
    r = httpx.get(api + "/api/v1/fields/acc-field", headers=_h(acc["acc-officer"]))
    assert r.status_code == 200
