"""The sign-in pages: login with user name and password, logout, changing
the password (the initial one must be replaced at first login), and the
one-time sign-in link an officer prints as a QR code for a farmer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from agri.api import passwords, sessions
from agri.api.deps import PrimaryConn
from agri.api.sessions import CsrfForm, OptionalPageUser, PageUser
from agri.api.web import i18n
from agri.api.web.i18n_auth import MESSAGES as AUTH_MESSAGES
from agri.api.web.render import render

router = APIRouter(include_in_schema=False)

for _lang, _messages in AUTH_MESSAGES.items():
    i18n.MESSAGES[_lang].update(_messages)

Name = Annotated[str, Form(max_length=64)]
Secret = Annotated[str, Form(max_length=passwords.MAX_LENGTH)]
Next = Annotated[str, Form(max_length=300)]
HOME = "/fields"


def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return response


def _form(request: Request, template: str, context: dict, status: int = 200) -> Response:
    """A sign-in form page: never cached, with the visitor's CSRF cookie."""
    csrf = sessions.csrf_token(request)
    response = render(request, template, {"csrf": csrf, **context}, data_time=None,
                      status=status)
    sessions.set_anonymous_csrf(request, response)
    return _no_store(response)


def _signed_in(conn_cookie: str, target: str) -> RedirectResponse:
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(sessions.COOKIE, conn_cookie, max_age=sessions.SESSION_DAYS * 86_400,
                        **sessions.cookie_options())
    return response


@router.get("/login")
async def login_page(request: Request, user: OptionalPageUser, next: str = HOME):
    target = sessions.local_path(next, HOME)
    if user is not None:
        return RedirectResponse(target, status_code=303)
    return _form(request, "login.html", {"user": None, "next": target, "error": None})


@router.post("/login", dependencies=[CsrfForm])
async def login(request: Request, conn: PrimaryConn, name: Name = "", password: Secret = "",
                next: Next = HOME):
    target = sessions.local_path(next, HOME)
    lang = i18n.choose(request)
    try:
        who = await sessions.login(conn, name, password, sessions.client_of(request))
    except sessions.LoginLimited as exc:
        response = _form(request, "login.html", {
            "user": None, "next": target,
            "error": i18n.gettext(lang, "login.limited", minutes=-(-exc.retry_after_s // 60))},
            status=429)
        response.headers["Retry-After"] = str(exc.retry_after_s)
        return response
    if who is None:
        return _form(request, "login.html", {"user": None, "next": target,
                                             "error": i18n.gettext(lang, "login.failed")},
                     status=401)
    cookie = await sessions.start_session(conn, who, via="password")
    cur = await conn.execute("SELECT must_change_password FROM users WHERE name = %s", (who,))
    must_change = (await cur.fetchone())[0]
    return _signed_in(cookie, "/password" if must_change else target)


@router.post("/logout")
async def logout(request: Request, user: PageUser, conn: PrimaryConn, _csrf=CsrfForm):
    cookie = request.cookies.get(sessions.COOKIE)
    if cookie:
        await sessions.end_session(conn, cookie)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(sessions.COOKIE, **sessions.cookie_options())
    return response


@router.get("/password")
async def password_page(request: Request, user: PageUser):
    return _no_store(render(request, "password.html", {"user": user, "error": None},
                            data_time=None))


@router.post("/password")
async def change_password(request: Request, user: PageUser, conn: PrimaryConn,
                          _csrf=CsrfForm, current: Secret = "", new: Secret = "",
                          confirm: Secret = ""):
    lang = i18n.choose(request, user.language)
    try:
        if new != confirm:
            raise passwords.PasswordError(i18n.gettext(lang, "password.mismatch"))
        await sessions.change_password(conn, user, current, new)
    except passwords.PasswordError as exc:
        message = str(exc) if new != confirm else i18n.gettext(
            lang, "password.rejected", reason=str(exc))
        return _no_store(render(request, "password.html", {"user": user, "error": message},
                                data_time=None, status=422))
    return RedirectResponse(HOME, status_code=303)


@router.get("/sign-in/{token}")
async def sign_in_page(request: Request, token: str, conn: PrimaryConn):
    """Opening the link only shows a button: a link preview cannot use it up."""
    if not await sessions.link_is_live(conn, token):
        return _form(request, "sign_in.html", {"user": None, "live": False}, status=404)
    return _form(request, "sign_in.html", {"user": None, "live": True, "token": token})


@router.post("/sign-in/{token}", dependencies=[CsrfForm])
async def sign_in(request: Request, token: str, conn: PrimaryConn):
    who = await sessions.use_sign_in_link(conn, token)
    if who is None:
        return _form(request, "sign_in.html", {"user": None, "live": False}, status=404)
    return _signed_in(await sessions.start_session(conn, who, via="link"), HOME)
