"""Signing in to the pages through a real API: password, first-login
change, CSRF, rate limits, sessions that end, and one-time sign-in links."""

from __future__ import annotations

import orjson
import psycopg
import pytest

from agri.api.accounts import add_user
from agri.api.field_registry import import_fields, parse_features
from agri.api.sessions import MAX_FAILURES_PER_NAME
from tests.fix_pages import PageClient, login
from tests.test_ingest_e2e import FIELD

NEW = "a-new-secret-2026"


@pytest.fixture(scope="module")
def people(platform):
    with psycopg.connect(platform.db_url) as conn:
        made = {name: add_user(conn, name=name, role=role, regions=regions)
                for name, role, regions in [
                    ("auth-farmer", "farmer", []), ("auth-locked", "farmer", []),
                    ("auth-linked", "farmer", []), ("auth-officer", "officer", ["Hirosaki"])]}
        data = orjson.loads(orjson.dumps(FIELD))
        data["features"][0]["properties"].update(id="auth-field", owner="auth-linked",
                                                 municipality="Hirosaki")
        import_fields(conn, parse_features(data))
    return made


def test_login_form_names_its_fields_and_the_cookie_is_safe(api, people):
    client = PageClient(api)
    page = client.get("/login")
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    assert 'name="name"' in page.text and 'name="password"' in page.text
    assert 'autocomplete="username"' in page.text and "<html lang=\"ja\"" in page.text
    r = client.form("/login", name="auth-farmer", password=people["auth-farmer"].password,
                    next="/fields")
    assert r.status_code == 303 and r.headers["location"] == "/password"
    cookie = next(h for h in r.headers.get_list("set-cookie") if h.startswith("agri_session="))
    for flag in ("Secure", "HttpOnly", "SameSite=lax"):
        assert flag.lower() in cookie.lower(), cookie
    # Until the initial password is changed, pages send there.
    r = client.get("/fields")
    assert r.status_code == 303 and r.headers["location"] == "/password"
    r = client.form("/password", current=people["auth-farmer"].password, new="short",
                    confirm="short")
    assert r.status_code == 422 and "10" in r.text
    r = client.form("/password", current="wrong-password", new=NEW, confirm=NEW)
    assert r.status_code == 422
    r = client.form("/password", current=people["auth-farmer"].password, new=NEW, confirm=NEW)
    assert r.status_code == 303
    # The old password is gone, the new one works, and logging out ends the session.
    fresh = PageClient(api)
    r = fresh.form("/login", name="auth-farmer", password=people["auth-farmer"].password)
    assert r.status_code == 401
    again = login(api, "auth-farmer", NEW)
    assert again.get("/password").status_code == 200
    stolen = dict(again.cookies)
    r = again.form("/password", action="/logout")
    assert r.status_code == 303 and "agri_session" not in again.cookies
    thief = PageClient(api)
    thief.cookies = stolen
    r = thief.get("/password")
    assert r.status_code == 303 and r.headers["location"].startswith("/login")


def test_forms_without_the_right_csrf_are_refused(api, people, platform):
    client = PageClient(api)
    client.get("/login")
    before = platform.sql("SELECT count(*) FROM login_attempts")[0][0]
    for token in (None, "forged"):
        data = {"name": "auth-farmer", "password": NEW} | ({"csrf": token} if token else {})
        r = client.post("/login", data=data)
        assert r.status_code == 403, token
    # Another visitor's token is not this visitor's.
    other = PageClient(api)
    r = other.post("/login", data={"name": "auth-farmer", "password": NEW,
                                   "csrf": client.csrf("/login")})
    assert r.status_code == 403
    assert platform.sql("SELECT count(*) FROM login_attempts")[0][0] == before
    # Signed in, a form needs the session's token, not the login one.
    signed = login(api, "auth-officer", people["auth-officer"].password)
    r = signed.post("/logout", data={"csrf": signed.cookies["agri_csrf"]})
    assert r.status_code == 403


def test_failed_logins_are_limited_per_name(api, people, platform):
    client = PageClient(api)
    for _ in range(MAX_FAILURES_PER_NAME):
        assert client.form("/login", name="auth-locked", password="guess-guess").status_code == 401
    r = client.form("/login", name="auth-locked", password=people["auth-locked"].password)
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
    assert platform.sql("SELECT count(*) FROM login_attempts WHERE user_name = 'auth-locked' "
                        "AND succeeded") == [(0,)]
    # Hostile input is a clear answer, not a server error.
    for name, password in (("x" * 65, "p"), ("a\u0000b", "p"), ("auth-farmer", "p" * 201)):
        r = client.post("/login", data={"csrf": client.csrf("/login"), "name": name,
                                        "password": password})
        assert r.status_code in (401, 422), (name[:5], r.status_code)
    r = client.get("/login", params={"next": "//evil.example/x"})
    assert r.status_code == 200 and 'name="next" value="/fields"' in r.text
    r = client.form("/login", name="auth-officer", password=people["auth-officer"].password,
                    next="//evil.example/x")
    assert r.status_code == 303 and r.headers["location"] == "/password"


def test_a_sign_in_link_works_once_and_a_preview_does_not_use_it(api, people, platform):
    import httpx

    r = httpx.post(api + "/api/v1/sign-in-links", json={"user": "auth-linked"},
                   headers={"Authorization": f"Bearer {people['auth-officer'].token}"})
    path = "/sign-in/" + r.json()["url"].rsplit("/", 1)[1]
    # A chat app's link preview fetches it: nothing is used up.
    assert httpx.get(api + path).status_code == 200
    farmer = PageClient(api)
    r = farmer.form(path)
    assert r.status_code == 303 and r.headers["location"] == "/fields"
    # Signed in by link, the farmer is not sent to change a password they never had.
    r = farmer.get("/password")
    assert r.status_code == 200
    assert platform.sql("SELECT via FROM page_sessions WHERE user_name = 'auth-linked'") == [
        ("link",)]
    second = PageClient(api)
    assert second.get(path).status_code == 404
    r = second.post(path, data={"csrf": second.cookies.get("agri_csrf", "")})
    assert r.status_code == 404 and "agri_session" not in second.cookies
    assert PageClient(api).get("/sign-in/" + "x" * 500).status_code == 404
