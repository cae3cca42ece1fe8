"""Hostile requests get a clear 4xx, never a 500 nor a redirect to the host
they name; every answer carries the security headers; every request is in
the access log (without secrets) and in the latency histogram by route."""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import Callable

import httpx
import orjson
import psycopg
import pytest
from fastapi import FastAPI, Request

from agri.api.access_log import PATH_CHARS
from agri.api.accounts import add_user
from agri.api.app import create_app
from agri.api.field_registry import import_fields, parse_features
from agri.api.middleware import CSP, INTERNAL_DETAIL
from agri.settings import Settings
from tests.fix_stack import wait_for
from tests.test_ingest_e2e import FIELD

HEADERS = {"x-content-type-options": "nosniff", "referrer-policy": "same-origin",
           "x-frame-options": "DENY", "content-security-policy": CSP}


@pytest.fixture(scope="module")
def people(platform):
    with psycopg.connect(platform.db_url) as conn:
        users = {name: add_user(conn, name=name, role=role, regions=regions).token
                 for name, role, regions in [("hard-farmer", "farmer", []),
                                             ("hard-other", "farmer", []),
                                             ("hard-admin", "admin", [])]}
        data = orjson.loads(orjson.dumps(FIELD))
        data["features"][0]["properties"].update(id="hard-field", owner="hard-farmer")
        import_fields(conn, parse_features(data))
    return users


def _auth(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def _raw_get(api: str, target: str, **headers: str) -> httpx.Response:
    """A GET of ``target`` exactly as written (httpx would re-encode it)."""
    with httpx.Client(base_url=api) as client:
        request = client.build_request("GET", api, headers=headers)
        request.url = request.url.copy_with(raw_path=target.encode("ascii"))
        return client.send(request)


def _assert_clear_4xx(r: httpx.Response, *statuses: int) -> None:
    assert r.status_code in statuses, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/json")
    assert isinstance(r.json()["detail"], (str, list))


def test_a_nul_byte_in_the_path_or_query_is_a_400(api, people):
    token = people["hard-farmer"]
    for target in ("/api/v1/fields/%00", "/api/v1/fields/hard%00field/conditions",
                   "/api/v1/rejects?device=%00", "/api/v1/rejects?device=a%00b&limit=5",
                   "/api/v1/fields?x%00=1"):
        r = _raw_get(api, target, **_auth(token))
        _assert_clear_4xx(r, 400)
        assert "NUL" in r.json()["detail"], target
    # The same requests without the NUL byte are answered as usual.
    assert _raw_get(api, "/api/v1/fields/hard-field", **_auth(token)).status_code == 200
    assert _raw_get(api, "/api/v1/fields/hard-field",
                    **_auth(people["hard-other"])).status_code == 404


def test_a_cursor_outside_the_64_bit_range_is_a_422(api, people):
    admin = people["hard-admin"]
    for cursor in ("99999999999999999999", "9223372036854775808", "-1", "0", "abc", "1e3"):
        r = httpx.get(f"{api}/api/v1/rejects", params={"cursor": cursor}, headers=_auth(admin))
        _assert_clear_4xx(r, 422)
    ok = httpx.get(f"{api}/api/v1/rejects", params={"cursor": str(2**63 - 1), "limit": 1},
                   headers=_auth(admin))
    assert ok.status_code == 200 and "items" in ok.json()


def test_no_redirect_is_built_from_the_host_header(api, people):
    token = people["hard-farmer"]
    for path in ("/api/v1/fields/", "/api/v1/fields/hard-field/", "/healthz/", "/metrics/"):
        r = httpx.get(api + path, headers={"Host": "evil.example", **_auth(token)},
                      follow_redirects=False)
        assert not r.is_redirect, (path, r.headers.get("location"))
        assert "evil.example" not in r.headers.get("location", "")
        _assert_clear_4xx(r, 404)
    # Redirects of the pages (to the login page, home) are paths on this site.
    for path in ("/", "/fields", "/login?next=//evil.example/", "/docs/"):
        r = httpx.get(api + path, headers={"Host": "evil.example"}, follow_redirects=False)
        assert r.status_code < 500 and "evil" not in r.headers.get("location", ""), path
        if r.is_redirect:
            assert r.headers["location"].startswith("/"), (path, r.headers["location"])
    # Without the slash the same request is answered, whatever Host it names.
    r = httpx.get(api + "/api/v1/fields/hard-field",
                  headers={"Host": "evil.example", **_auth(token)})
    assert r.status_code == 200 and "evil.example" not in r.text


def test_long_paths_and_invalid_utf8_are_4xx(api, people):
    token = people["hard-farmer"]
    long_id = "f" * 6000
    for target in (f"/api/v1/fields/{long_id}", f"/api/v1/fields/{long_id}/conditions",
                   "/api/v1/fields/%ff%fe", "/api/v1/fields/%c3%28/series?metric=water_level",
                   "/api/v1/rejects?device=%ff%fe", "/api/v1/fields/%", "/api/v1/fields/%zz",
                   "/" + "%ff" * 1000):
        r = _raw_get(api, target, **_auth(token if "rejects" not in target
                                          else people["hard-admin"]))
        assert r.status_code < 500, (target[:60], r.status_code, r.text[:200])
        assert r.status_code in (200, 400, 404, 422), (target[:60], r.status_code)


def test_every_answer_carries_the_security_headers(api, people):
    answers = [httpx.get(f"{api}/api/v1/fields", headers=_auth(people["hard-farmer"])),
               httpx.get(f"{api}/api/v1/fields"),  # 401
               httpx.get(f"{api}/nowhere"),  # 404
               _raw_get(api, "/api/v1/fields/%00"),  # 400 before any route
               httpx.get(f"{api}/metrics"), httpx.get(f"{api}/openapi.json")]
    for r in answers:
        for name, value in HEADERS.items():
            assert r.headers.get(name) == value, (r.request.url, r.status_code, name)
    assert "frame-ancestors 'none'" in CSP and "https://cyberjapandata.gsi.go.jp" in CSP


def _access_rows(platform, where: str, params: tuple) -> list[tuple]:
    return platform.sql("SELECT user_name, client, method, path, status, duration_ms "
                        f"FROM access_log WHERE {where} ORDER BY id", params)  # noqa: S608


def test_each_request_is_in_the_access_log_without_its_secrets(platform, api, people):
    mark = uuid.uuid4().hex[:8]
    token = people["hard-farmer"]
    since = platform.sql("SELECT now()")[0][0]
    httpx.get(f"{api}/api/v1/fields/hard-field", params={"token": f"secret-{mark}"},
              headers=_auth(token))
    httpx.get(f"{api}/api/v1/fields/nope-{mark}", headers=_auth(token))
    httpx.get(f"{api}/sign-in/link-{mark}-secret")
    httpx.get(f"{api}/api/v1/fields/{mark}{'x' * 2000}")
    _raw_get(api, f"/api/v1/fields/{mark}%00")

    wanted = ("/api/v1/fields/hard-field", f"/api/v1/fields/nope-{mark}", "/sign-in/...",
              f"/api/v1/fields/{mark}x", f"/api/v1/fields/{mark}\\x00")

    def logged() -> list[tuple]:
        rows = _access_rows(platform, "time > %s AND (path LIKE %s OR path LIKE %s "
                            "OR path = '/api/v1/fields/hard-field')",
                            (since, f"%{mark}%", "/sign-in/%"))
        return rows if all(any(r[3].startswith(w) for r in rows) for w in wanted) else []

    rows = wait_for(logged, timeout=10, what="the requests in the access log")
    by_path = {r[3]: r for r in rows}
    user, client, method, _, status, duration = by_path["/api/v1/fields/hard-field"]
    assert (user, client, method, status) == ("hard-farmer", "127.0.0.1", "GET", 200)
    assert 0 < duration < 10_000
    assert by_path[f"/api/v1/fields/nope-{mark}"][4] == 404
    long_rows = [r for r in rows if r[3].startswith(f"/api/v1/fields/{mark}x")]
    assert long_rows and len(long_rows[0][3]) == PATH_CHARS
    nul = [r for r in rows if r[3] == f"/api/v1/fields/{mark}\\x00"]
    assert nul and nul[0][4] == 400 and nul[0][0] is None
    # The sign-in link's token and the query string are never kept.
    everything = platform.sql("SELECT string_agg(path, ' ') FROM access_log "
                              "WHERE time > now() - interval '5 minutes'")[0][0]
    assert f"link-{mark}" not in everything and f"secret-{mark}" not in everything
    assert "/sign-in/..." in everything


def test_the_operator_reads_the_access_log(platform, api, people):
    before = len(_access_rows(platform, "user_name = %s", ("hard-other",)))
    httpx.get(f"{api}/api/v1/fields", headers=_auth(people["hard-other"]))
    # (earlier tests' requests of hard-other are logged already: wait for this one)
    wait_for(lambda: len(_access_rows(platform, "user_name = %s", ("hard-other",))) > before,
             timeout=10, what="hard-other's request in the access log")
    out = platform.cli("access-log", "--user", "hard-other", "--limit", "1", "--json").stdout
    lines = [orjson.loads(line) for line in out.splitlines()]
    assert len(lines) == 1 and lines[0]["user"] == "hard-other"
    assert lines[0]["path"] == "/api/v1/fields" and lines[0]["status"] == 200
    text = platform.cli("access-log", "--limit", "3").stdout
    assert len(text.splitlines()) == 3 and re.search(r" GET /\S* \d{3} [\d.]+ ms$", text, re.M)


def test_latency_is_counted_by_route_template_not_by_path(api, people):
    token = people["hard-farmer"]
    for k in range(5):
        httpx.get(f"{api}/api/v1/fields/random-{uuid.uuid4().hex}", headers=_auth(token))
        httpx.get(f"{api}/no-such-page-{k}-{uuid.uuid4().hex}")
    text = httpx.get(f"{api}/metrics").text
    routes = set(re.findall(r'agri_http_request_duration_seconds_count\{[^}]*route="([^"]*)"',
                            text))
    assert "/api/v1/fields/{field_id}" in routes and "<unmatched>" in routes
    assert not any("random-" in r or "no-such-page" in r for r in routes)
    assert re.search(r'agri_http_request_duration_seconds_count\{method="GET",'
                     r'route="/api/v1/fields/\{field_id\}",status="4xx"\} [1-9]', text)
    assert "agri_http_requests_in_flight 1.0" in text  # the scrape itself
    assert "# TYPE agri_ingest_readings_stored_total counter" in text
    assert "# TYPE agri_ingest_reading_age_at_commit_seconds histogram" in text


# In-process: the app of `agri api` with two routes added by the test, to
# reach the handlers for errors that no route of the API should make.


def _settings(platform, **kw) -> Settings:
    return Settings(home=platform.home, database_url=None, database_read_url=None,
                    mqtt_url=None, **kw)


def _serve(app: FastAPI, check: Callable) -> None:
    """Start ``app`` (its lifespan), run ``await check(client)``, stop it."""
    async def run() -> None:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                await check(client)

    asyncio.run(run())


def test_values_the_database_refuses_are_422_and_errors_a_plain_500(platform, caplog):
    app = create_app(_settings(platform))

    @app.get("/api/v1/test-only/cast")
    async def cast(request: Request, value: str):
        async with request.app.state.databases.connection(read=True) as conn:
            return (await (await conn.execute("SELECT %s::smallint", (value,))).fetchone())[0]

    @app.post("/api/v1/test-only/text")
    async def text(request: Request, body: dict):
        async with request.app.state.databases.connection(read=True) as conn:
            return (await (await conn.execute("SELECT %s::text", (body["note"],))).fetchone())[0]

    @app.get("/api/v1/test-only/fail")
    async def fail():
        raise RuntimeError("secret internals")

    @app.get("/test-only-page/fail")
    async def page_fail():
        raise RuntimeError("secret internals of a page")

    async def check(client: httpx.AsyncClient) -> None:
        assert (await client.get("/api/v1/test-only/cast", params={"value": "12"})).json() == 12
        for value in ("99999", "twelve", "a\x00b"):
            r = await client.get("/api/v1/test-only/cast", params={"value": value})
            assert r.status_code in (400, 422) and r.json()["detail"], r.text
        r = await client.post("/api/v1/test-only/text", json={"note": "rice\u0000"})
        assert r.status_code == 422 and "NUL" in r.json()["detail"], r.text
        assert (await client.post("/api/v1/test-only/text", json={"note": "rice"})).json() == "rice"
        with caplog.at_level(logging.ERROR, logger="agri.api.middleware"):
            r = await client.get("/api/v1/test-only/fail")
        assert r.status_code == 500 and r.json() == {"detail": INTERNAL_DETAIL}
        assert "secret" not in r.text and r.headers["x-frame-options"] == "DENY"
        # A page's error may be the pages' error page; never the internals.
        r = await client.get("/test-only-page/fail")
        assert r.status_code == 500 and "secret" not in r.text
        assert r.headers["content-security-policy"] == CSP

    _serve(app, check)
    assert "RuntimeError: secret internals" in caplog.text  # the traceback, for the operator


def test_the_access_log_keeps_its_retention(platform):
    mark = uuid.uuid4().hex[:8]
    platform.sql("INSERT INTO access_log (time, client, method, path, status, duration_ms) "
                 "VALUES (now() - interval '40 days', '127.0.0.1', 'GET', %s, 200, 1), "
                 "(now() - interval '20 days', '127.0.0.1', 'GET', %s, 200, 1) RETURNING id",
                 (f"/old-{mark}", f"/recent-{mark}"))
    app = create_app(_settings(platform, access_log_days=30))
    async def check(client: httpx.AsyncClient) -> None:
        # The access log's task deletes old rows as it starts.
        for _ in range(200):
            if not _access_rows(platform, "path = %s", (f"/old-{mark}",)):
                return
            await asyncio.sleep(0.05)
        pytest.fail("the 40-day-old row was not deleted within 10 s")

    _serve(app, check)
    assert _access_rows(platform, "path = %s", (f"/recent-{mark}",))
