"""The site's front door: ``/`` sends each role to its own first page."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import RedirectResponse

from agri.api.sessions import PageUser

router = APIRouter(include_in_schema=False)

# A role's first page; a role without one gets the list of fields.
HOMES: dict[str, str] = {"farmer": "/fields", "officer": "/region", "admin": "/region",
                         "planner": "/kpis"}


@router.get("/")
async def home(user: PageUser):
    # A path, never a URL built from the request's Host header.
    return RedirectResponse(HOMES.get(str(user.role), "/fields"), status_code=303)
