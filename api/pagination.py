"""Pagination of every list: ``{"items": [...], "next": cursor-or-null}``.

A cursor is the id of the last item of the page (ids are bigint, newest
first unless a list says otherwise); one outside the 64-bit range is a 422,
not a server error."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

MAX_CURSOR = 2**63 - 1
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000

Cursor = Annotated[int | None, Query(ge=1, le=MAX_CURSOR,
                                     description="the `next` of the previous page")]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="items per page")]


def page(items: list, limit: int, key: str = "id") -> dict:
    """A page from up to ``limit + 1`` items fetched: the extra one says
    whether another page follows."""
    more = len(items) > limit
    items = items[:limit]
    last = items[-1] if items else None
    nxt = (last[key] if isinstance(last, dict) else getattr(last, key)) if more else None
    return {"items": items, "next": nxt}
