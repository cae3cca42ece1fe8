"""A browser-like client for the pages over plain http in tests.

The session cookie is Secure, which a real browser still sends to
http://127.0.0.1 (a potentially trustworthy origin) but httpx's cookie jar
does not; this client keeps the cookies itself and sends them back, as
Chromium does."""

from __future__ import annotations

import re
from http.cookies import SimpleCookie

import httpx

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


class PageClient:
    def __init__(self, base: str):
        self.base = base
        self.cookies: dict[str, str] = {}

    def _keep(self, response: httpx.Response) -> httpx.Response:
        for header in response.headers.get_list("set-cookie"):
            jar = SimpleCookie()
            jar.load(header)
            for name, morsel in jar.items():
                if morsel["max-age"] == "0" or morsel.value == "":
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value
        return response

    def _headers(self, extra: dict | None) -> dict:
        cookie = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        return ({"Cookie": cookie} if cookie else {}) | (extra or {})

    def get(self, path: str, headers: dict | None = None, **kw) -> httpx.Response:
        return self._keep(httpx.get(self.base + path, headers=self._headers(headers), **kw))

    def post(self, path: str, data: dict | None = None, headers: dict | None = None,
             **kw) -> httpx.Response:
        return self._keep(httpx.post(self.base + path, data=data, headers=self._headers(headers),
                                     **kw))

    def csrf(self, path: str) -> str:
        """The CSRF token of the form on ``path``."""
        page = self.get(path)
        found = CSRF.search(page.text)
        assert found, f"no form on {path}: {page.status_code} {page.text[:300]}"
        return found.group(1)

    def form(self, path: str, action: str | None = None, **fields: str) -> httpx.Response:
        """Open ``path`` and send its form to ``action`` (default ``path``)."""
        return self.post(action or path, data={"csrf": self.csrf(path), **fields})


def login(base: str, name: str, password: str) -> PageClient:
    """A client signed in as ``name``, through the login form."""
    client = PageClient(base)
    r = client.form("/login", name=name, password=password)
    assert r.status_code == 303, (r.status_code, r.text[:300])
    return client
