"""Sharing a field with a successor: the owner grants a named farmer read
access and withdraws it (api/queries/shares.py keeps the shares; what a
grantee then sees is decided in api/queries/access.py)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import RedirectResponse

from agri.api.deps import PrimaryConn
from agri.api.queries import shares
from agri.api.sessions import PageUser
from agri.api.web.farmer import field_or_404
from agri.api.web.forms import CsrfChecked
from agri.api.web.render import render

router = APIRouter(include_in_schema=False)

Grantee = Annotated[str, Form(max_length=64)]


async def _owned(conn, user, field_id: str):
    row = await field_or_404(conn, user, field_id)
    if not await shares.owned_field(conn, user, row[0]):
        raise HTTPException(403, "share.owner_only")
    return row


async def _page(request, conn, user, row, *, error: str | None = None, grantee: str = "",
                status: int = 200):
    current = await shares.list_shares(conn, row[0])
    q = request.query_params
    return render(request, "share.html", {
        "user": user, "field": {"id": row[0], "name": row[1]}, "shares": current,
        "error": error, "grantee": grantee,
        "granted": q.get("granted", "")[:64], "revoked": q.get("revoked", "")[:64],
    }, data_time=None, status=status)


@router.get("/fields/{field_id}/share")
async def share_page(request: Request, field_id: str, conn: PrimaryConn, user: PageUser):
    return await _page(request, conn, user, await _owned(conn, user, field_id))


@router.post("/fields/{field_id}/share")
async def grant(request: Request, field_id: str, conn: PrimaryConn, user: PageUser,
                _csrf: CsrfChecked, grantee: Grantee):
    row = await _owned(conn, user, field_id)
    grantee = grantee.strip()
    try:
        await shares.grant(conn, user, row[0], grantee)
    except shares.ShareError:
        key = "share.self" if grantee == user.name else "share.unknown"
        return await _page(request, conn, user, row, error=key, grantee=grantee, status=400)
    return RedirectResponse(f"/fields/{row[0]}/share?granted={quote(grantee)}", status_code=303)


@router.post("/fields/{field_id}/share/revoke")
async def revoke(request: Request, field_id: str, conn: PrimaryConn, user: PageUser,
                 _csrf: CsrfChecked, grantee: Grantee):
    row = await _owned(conn, user, field_id)
    await shares.withdraw(conn, row[0], grantee)
    return RedirectResponse(f"/fields/{row[0]}/share?revoked={quote(grantee)}", status_code=303)
