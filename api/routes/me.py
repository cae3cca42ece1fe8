"""The signed-in user: who they are, their API tokens, sign-in links that
officers make for farmers, and the shares of a field with a successor."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Response
from pydantic import BaseModel, ConfigDict, Field

from agri.api import accounts, sessions
from agri.api.deps import CurrentUser, PrimaryConn, SettingsDep
from agri.api.field_registry import FIELD_ID_RE
from agri.api.pagination import Cursor, Limit, page
from agri.api.queries import access, shares

router = APIRouter(prefix="/api/v1", tags=["account"])

USER_NAME = r"^[A-Za-z0-9_.@-]{1,64}$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MeUpdate(Strict):
    """What a user may change of themselves (not role, region or name)."""
    display_name: Annotated[str | None, Field(max_length=100)] = None
    language: Literal["ja", "en"] | None = None


class NewToken(Strict):
    label: Annotated[str, Field(min_length=1, max_length=100, examples=["field tablet"])]
    expires_in_days: Annotated[int | None, Field(ge=1, le=accounts.MAX_TOKEN_DAYS)] = 90


class NewLink(Strict):
    user: Annotated[str, Field(pattern=USER_NAME, examples=["tanaka"])]


class NewShare(Strict):
    grantee: Annotated[str, Field(pattern=USER_NAME, examples=["tanaka-jr"])]


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


@router.get("/me", responses={200: {"content": {"application/json": {"example": {
    "name": "tanaka", "role": "farmer", "regions": [], "language": "ja",
    "display_name": "田中 一郎"}}}}})
async def me(user: CurrentUser, conn: PrimaryConn):
    """Who the token belongs to."""
    cur = await conn.execute("SELECT display_name, language FROM users WHERE name = %s",
                             (user.name,))
    display_name, language = await cur.fetchone()
    return {"name": user.name, "role": str(user.role), "regions": list(user.regions),
            "language": language, "display_name": display_name}


@router.patch("/me")
async def update_me(body: MeUpdate, user: CurrentUser, conn: PrimaryConn):
    """Change your display name or language; role, region and name are set
    by an operator (`agri users`), never here."""
    await conn.execute(
        "UPDATE users SET display_name = coalesce(%s, display_name), "
        "language = coalesce(%s, language) WHERE name = %s",
        (body.display_name, body.language, user.name))
    return await me(user, conn)


def _token(row) -> dict:
    tid, label, created, expires, used, revoked = row
    return {"id": tid, "label": label, "created_at": _iso(created), "expires_at": _iso(expires),
            "last_used_at": _iso(used), "revoked_at": _iso(revoked)}


@router.get("/me/tokens")
async def list_tokens(user: CurrentUser, conn: PrimaryConn, cursor: Cursor = None,
                      limit: Limit = 100):
    """Your API tokens, newest first (the tokens themselves are never shown again)."""
    cur = await conn.execute(
        f"SELECT {accounts.BEARER_COLUMNS} FROM api_tokens WHERE user_name = %s "
        "AND (%s::bigint IS NULL OR id < %s) ORDER BY id DESC LIMIT %s",
        (user.name, cursor, cursor, limit + 1))
    return page([_token(r) for r in await cur.fetchall()], limit)


@router.post("/me/tokens", status_code=201, responses={201: {"content": {"application/json": {
    "example": {"id": 7, "label": "field tablet", "token": "q3…", "expires_at":
                "2027-03-01T09:00:00+09:00"}}}}})
async def create_token(body: NewToken, user: CurrentUser, conn: PrimaryConn):
    """A new API token, shown once in ``token``."""
    tid, token, expires = await accounts.create_token(conn, user, label=body.label,
                                                      expires_in_days=body.expires_in_days)
    return {"id": tid, "label": body.label, "token": token, "expires_at": _iso(expires)}


@router.delete("/me/tokens/{token_id}", status_code=204)
async def revoke_token(token_id: Annotated[int, Path(ge=1, le=2**63 - 1)], user: CurrentUser,
                       conn: PrimaryConn):
    """Revoke one of your tokens; it stops working at once."""
    cur = await conn.execute(
        "UPDATE api_tokens SET revoked_at = coalesce(revoked_at, now()) "
        "WHERE id = %s AND user_name = %s", (token_id, user.name))
    if cur.rowcount != 1:
        raise HTTPException(404, f"no token {token_id} of yours")
    return Response(status_code=204)


@router.post("/sign-in-links", status_code=201, responses={201: {"content": {
    "application/json": {"example": {"user": "tanaka", "url": "https://agri.example.jp/sign-in/Xk…",
                                     "hours": 72, "qr_svg": "<svg …>"}}}}})
async def create_link(body: NewLink, user: CurrentUser, conn: PrimaryConn,
                      settings: SettingsDep):
    """A one-time sign-in link for a farmer of your region (officers, admins),
    valid for 72 hours; print its QR code for the farmer."""
    access.require_role(user, "officer", "admin", action="making sign-in links")
    token = await sessions.create_sign_in_link(conn, user, body.user)
    if token is None:
        raise HTTPException(404, f"no farmer {body.user!r} in your region")
    url = f"{settings.site_url}/sign-in/{token}"
    return {"user": body.user, "url": url, "hours": sessions.LINK_HOURS,
            "qr_svg": sessions.qr_svg(url)}


async def _own_field(conn, user, field_id: str) -> None:
    if not (FIELD_ID_RE.fullmatch(field_id) and await shares.owned_field(conn, user, field_id)):
        raise HTTPException(404, f"no field {field_id[:64]!r} of yours")


@router.get("/fields/{field_id}/shares")
async def field_shares(field_id: str, user: CurrentUser, conn: PrimaryConn):
    """Who you let read this field's history (owners only)."""
    await _own_field(conn, user, field_id)
    return {"items": await shares.list_shares(conn, field_id), "next": None}


@router.post("/fields/{field_id}/shares", status_code=201)
async def share_field(field_id: str, body: NewShare, user: CurrentUser, conn: PrimaryConn):
    """Let a named farmer (a successor) read this field: its data, diary and
    reports; they cannot change anything."""
    await _own_field(conn, user, field_id)
    try:
        await shares.grant(conn, user, field_id, body.grantee)
    except shares.ShareError as exc:
        raise HTTPException(422, str(exc)) from None
    return {"field": field_id, "grantee": body.grantee}


@router.delete("/fields/{field_id}/shares/{grantee}", status_code=204)
async def unshare_field(field_id: str, grantee: str, user: CurrentUser, conn: PrimaryConn):
    """Withdraw a share; the grantee no longer sees the field."""
    await _own_field(conn, user, field_id)
    if not await shares.withdraw(conn, field_id, grantee):
        raise HTTPException(404, f"the field is not shared with {grantee[:64]!r}")
    return Response(status_code=204)
