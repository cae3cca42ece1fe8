"""Advisories: the drafts the analytics' rules make and those officers write,
edited, published to fields, a group of fields or whole municipalities, and
withdrawn; and who reads which.

- officers (of a region) and admins review: they see the advisories of their
  region's municipalities in every status, with targets and history;
- anyone who sees a field (its farmer, a successor it is shared with) reads
  the published advisories a live publication reaches it by: the field
  itself, a group it is a member of now, or its municipality;
- planners and developers read no advisory list.

Every function takes the caller (``User``) and scopes itself through
``agri.api.queries.access``; one that writes runs in one transaction, kept in
``advisory_history``. Errors are ``HTTPException`` (404 outside the caller's
scope, 403 for a role that may not, 409 for a withdrawn advisory, 422 for bad
input) with a message saying what to do.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import date
from typing import Annotated, Any, Literal

import orjson
from fastapi import HTTPException
from psycopg import AsyncConnection, sql
from psycopg.rows import dict_row
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from agri.analytics.advice import AdviceKind, Severity
from agri.api.accounts import Role, User
from agri.api.field_registry import FIELD_ID_RE
from agri.api.pagination import MAX_CURSOR, page
from agri.api.queries import access
from agri.clock import today_local

REVIEWERS = (Role.OFFICER, Role.ADMIN)
READERS = (Role.FARMER, Role.OFFICER, Role.ADMIN)
STATUSES = ("draft", "published", "withdrawn")
KINDS = (*(str(k) for k in AdviceKind), "general")  # "general": written by an officer
SEVERITIES = tuple(str(s) for s in Severity)
PAGE = 50
TITLE_MAX = 200
BODY_MAX = 4000
MUNICIPALITY_MAX = 100
MAX_TARGET_FIELDS = 1000
MAX_TARGET_MUNICIPALITIES = 100
MAX_VALID_DAYS = 366
TEXT_COLUMNS = ("title_ja", "title_en", "body_ja", "body_en")


def no_nul(value: str) -> str:
    """Text the database can keep: no NUL character, no lone surrogate."""
    if "\x00" in value:
        raise ValueError("contains a NUL character: remove it")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("is not valid Unicode text (a lone surrogate): send UTF-8") from None
    return value


def _field_id(value: str) -> str:
    if not FIELD_ID_RE.fullmatch(value):
        raise ValueError(f"{value[:70]!r} is not a field id (1-64 letters, digits, - or _)")
    return value


Title = Annotated[str, Field(max_length=TITLE_MAX), AfterValidator(no_nul)]
Body = Annotated[str, Field(max_length=BODY_MAX), AfterValidator(no_nul)]
Municipality = Annotated[str, Field(min_length=1, max_length=MUNICIPALITY_MAX),
                         AfterValidator(no_nul)]
FieldId = Annotated[str, Field(max_length=64), AfterValidator(_field_id)]
Day = Annotated[date, Field(ge=date(1900, 1, 1), le=date(2200, 12, 31))]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TitleText(Strict):
    ja: Annotated[Title, Field(min_length=1, examples=["低温注意：深水管理を"])]
    en: Title = ""


class BodyText(Strict):
    ja: Annotated[Body, Field(min_length=1)]
    en: Body = ""


class TitleEdit(Strict):
    ja: Annotated[Title, Field(min_length=1)] | None = None
    en: Title | None = None


class BodyEdit(Strict):
    ja: Annotated[Body, Field(min_length=1)] | None = None
    en: Body | None = None


def _valid_span(valid_from: date | None, valid_until: date | None) -> None:
    if valid_from is not None and valid_until is not None:
        if valid_until < valid_from:
            raise ValueError("valid_until is before valid_from")
        if (valid_until - valid_from).days > MAX_VALID_DAYS:
            raise ValueError(f"an advisory is valid at most {MAX_VALID_DAYS} days")


class NewAdvisory(Strict):
    """An advisory an officer writes: a draft of their region until published."""
    kind: Literal[KINDS] = "general"  # type: ignore[valid-type]
    severity: Literal[SEVERITIES] = "info"  # type: ignore[valid-type]
    municipality: Municipality
    title: TitleText
    body: BodyText
    valid_from: Day
    valid_until: Day

    @model_validator(mode="after")
    def _span(self):
        _valid_span(self.valid_from, self.valid_until)
        return self


class AdvisoryEdit(Strict):
    """What an officer may change of a draft or a published advisory; a part
    left out stays as it is."""
    severity: Literal[SEVERITIES] | None = None  # type: ignore[valid-type]
    title: TitleEdit | None = None
    body: BodyEdit | None = None
    valid_from: Day | None = None
    valid_until: Day | None = None


class Target(Strict):
    """Whom to publish to: exactly one of ``fields``, ``group`` or ``region``
    (municipalities), all inside the officer's region."""
    fields: Annotated[list[FieldId], Field(min_length=1, max_length=MAX_TARGET_FIELDS)
                      ] | None = None
    group: Annotated[int, Field(ge=1, le=MAX_CURSOR)] | None = None
    region: Annotated[list[Municipality],
                      Field(min_length=1, max_length=MAX_TARGET_MUNICIPALITIES)] | None = None

    @model_validator(mode="after")
    def _one(self):
        given = [k for k in ("fields", "group", "region") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one target: {\"fields\": [...]}, {\"group\": id} "
                             "or {\"region\": [municipalities]}")
        return self


def as_model(cls: type[BaseModel], value: BaseModel | Mapping) -> Any:
    """``value`` as ``cls``; bad input is a 422 naming what is wrong."""
    if isinstance(value, cls):
        return value
    try:
        return cls.model_validate(value)
    except ValidationError as exc:
        raise HTTPException(422, [{"loc": list(e["loc"]), "msg": e["msg"]}
                                  for e in exc.errors()[:20]]) from None


def reaches(*, live: bool = True) -> str:
    """SQL: a publication of advisory ``a`` reaches field ``f`` (``live``: one
    not withdrawn)."""
    return ("EXISTS (SELECT 1 FROM advisory_publications p WHERE p.advisory_id = a.id "
            + ("AND p.withdrawn_at IS NULL " if live else "")
            + "AND (f.id = ANY(p.field_ids) OR f.municipality = ANY(p.municipalities) "
              "OR EXISTS (SELECT 1 FROM field_group_members m WHERE m.group_id = p.group_id "
              "AND m.field_id = f.id)))")


# The advisories a user reads: their region's in every status, and the
# published ones reaching a field they see.
VISIBLE = f"""(
    {access.in_region('a.municipality')}
    OR (a.status = 'published' AND EXISTS (
        SELECT 1 FROM fields f WHERE {access.FIELD_VISIBLE} AND {reaches()}))
)"""

_TARGETS = """coalesce((SELECT json_agg(json_build_object(
    'id', p.id, 'target', p.target, 'fields', p.field_ids, 'group', p.group_id,
    'municipalities', p.municipalities, 'published_by', p.published_by,
    'published_at', p.published_at, 'withdrawn_at', p.withdrawn_at) ORDER BY p.id)
    FROM advisory_publications p WHERE p.advisory_id = a.id), '[]')"""

# The reader's fields an advisory reaches (a reviewer: the rule's fields).
_FIELDS = f"""CASE WHEN {access.in_region('a.municipality')} THEN a.field_ids
    ELSE ARRAY(SELECT f.id FROM fields f WHERE {access.FIELD_VISIBLE} AND {reaches()}
               ORDER BY f.id LIMIT {MAX_TARGET_FIELDS}) END"""

_COLUMNS = (f"a.*, {_FIELDS} AS reached, {_TARGETS} AS targets, "
            f"{access.in_region('a.municipality')} AS reviewer")


def _iso(value) -> str | None:
    return None if value is None else value.isoformat()


def _item(r: dict) -> dict:
    item = {"id": r["id"], "kind": r["kind"], "severity": r["severity"], "status": r["status"],
            "municipality": r["municipality"], "fields": list(r["reached"]),
            "reason": r["reason"],
            "valid_from": _iso(r["valid_from"]), "valid_until": _iso(r["valid_until"]),
            "title": {"ja": r["title_ja"], "en": r["title_en"]},
            "body": {"ja": r["body_ja"], "en": r["body_en"]},
            "computed_for": _iso(r["computed_for"]), "published_at": _iso(r["published_at"]),
            "updated_at": _iso(r["updated_at"])}
    if r["reviewer"]:
        item |= {"evidence": r["evidence"], "targets": r["targets"],
                 "created_by": r["created_by"], "edited_by": r["edited_by"],
                 "edited_at": _iso(r["edited_at"]), "withdrawn_by": r["withdrawn_by"],
                 "withdrawn_at": _iso(r["withdrawn_at"])}
    return item


async def _rows(conn: AsyncConnection, query: str, params: dict) -> list[dict]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, params)
        return await cur.fetchall()


async def list_for_user(conn: AsyncConnection, user: User, *, status: str | None = None,
                        current: bool = False, after: int | None = None,
                        limit: int = PAGE) -> dict:
    """A page (``{"items", "next"}``) of the advisories ``user`` reads, newest
    first; ``status`` filters, ``current`` keeps those valid today."""
    access.require_role(user, *READERS, action="reading advisories")
    if status is not None and status not in STATUSES:
        raise HTTPException(422, f"status must be one of {', '.join(STATUSES)}")
    rows = await _rows(
        conn, f"SELECT {_COLUMNS} FROM advisories a WHERE {VISIBLE} "
        "AND (%(status)s::text IS NULL OR a.status = %(status)s) "
        "AND (NOT %(current)s OR %(today)s BETWEEN a.valid_from AND a.valid_until) "
        "AND (%(after)s::bigint IS NULL OR a.id < %(after)s) ORDER BY a.id DESC LIMIT %(n)s",
        {**access.who(user), "status": status, "current": current, "today": today_local(),
         "after": after, "n": limit + 1})
    return page([_item(r) for r in rows], limit)


async def for_field(conn: AsyncConnection, user: User, field_id: str, *,
                    after: int | None = None, limit: int = PAGE, seen: bool = False) -> dict:
    """A page of the advisories of a field the user sees (else 404), newest
    first: the published ones reaching it; for its region's officers and admins
    also drafts and withdrawn ones about it (the rule's fields or a target).
    ``seen``: the caller has found the field visible to the user already."""
    if not seen and not (FIELD_ID_RE.fullmatch(field_id)
                         and await access.visible_field(conn, user, field_id)):
        raise HTTPException(404, f"no field {field_id[:64]!r}")
    rows = await _rows(
        conn, f"SELECT {_COLUMNS} FROM advisories a JOIN fields f ON f.id = %(field)s "
        f"WHERE ((a.status = 'published' AND {reaches()}) OR ("
        f"{access.in_region('a.municipality')} AND (f.id = ANY(a.field_ids) "
        f"OR {reaches(live=False)}))) "
        "AND (%(after)s::bigint IS NULL OR a.id < %(after)s) ORDER BY a.id DESC LIMIT %(n)s",
        {**access.who(user), "field": field_id, "after": after, "n": limit + 1})
    items = [_item(r) for r in rows]
    for item in items:
        if "targets" not in item:
            item["fields"] = [field_id]
    return page(items, limit)


async def get(conn: AsyncConnection, user: User, advisory_id: int) -> dict:
    """One advisory the user reads (else 404); reviewers also get its ``history``."""
    access.require_role(user, *READERS, action="reading advisories")
    rows = await _rows(conn, f"SELECT {_COLUMNS} FROM advisories a WHERE a.id = %(id)s "
                       f"AND {VISIBLE}", {**access.who(user), "id": advisory_id})
    if not rows:
        raise HTTPException(404, f"no advisory {advisory_id}")
    item = _item(rows[0])
    if "targets" in item:
        history = await _rows(conn, "SELECT action, done_by, done_at, changes FROM "
                              "advisory_history WHERE advisory_id = %(id)s ORDER BY id",
                              {"id": advisory_id})
        item["history"] = [{"action": h["action"], "by": h["done_by"],
                            "at": _iso(h["done_at"]), "changes": h["changes"]}
                           for h in history]
    return item


async def _outside_region(conn: AsyncConnection, user: User, names: list[str]) -> list[str]:
    cur = await conn.execute(
        f"SELECT m FROM unnest(%(names)s::text[]) AS m WHERE NOT {access.in_region('m')}",
        {**access.who(user), "names": names})
    return [r[0] for r in await cur.fetchall()]


async def require_region(conn: AsyncConnection, user: User, names: list[str]) -> None:
    outside = await _outside_region(conn, user, names)
    if outside:
        mine = ", ".join(user.regions) or "none"
        raise HTTPException(403, f"{', '.join(outside[:5])[:300]} is outside your region "
                                 f"({mine[:300]}): ask an officer of that municipality")


async def changeable_fields(conn: AsyncConnection, user: User, ids: list[str]) -> list[str]:
    """``ids`` sorted, once each, when the user may change every one of them
    (an officer: fields of their region); else 404 naming the first missing."""
    ids = sorted(set(ids))
    cur = await conn.execute(f"SELECT f.id FROM fields f WHERE f.id = ANY(%(ids)s) AND "
                             f"{access.FIELD_OWNED}", {**access.who(user), "ids": ids})
    found = {r[0] for r in await cur.fetchall()}
    missing = [i for i in ids if i not in found]
    if missing:
        raise HTTPException(404, f"no field {missing[0]!r} in your region"
                            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    return ids


async def _history(conn: AsyncConnection, advisory_id: int, user: User, action: str,
                   changes: dict) -> None:
    await conn.execute("INSERT INTO advisory_history (advisory_id, action, done_by, changes) "
                       "VALUES (%s, %s, %s, %s::jsonb)",
                       (advisory_id, action, user.name, orjson.dumps(changes).decode()))


async def _reviewed(conn: AsyncConnection, user: User, advisory_id: int) -> dict:
    """The advisory locked for a change by a reviewer of its region, else 404."""
    rows = await _rows(conn, f"SELECT a.* FROM advisories a WHERE a.id = %(id)s AND "
                       f"{access.in_region('a.municipality')} FOR UPDATE",
                       {**access.who(user), "id": advisory_id})
    if not rows:
        raise HTTPException(404, f"no advisory {advisory_id} in your region")
    return rows[0]


def _not_withdrawn(row: dict, action: str) -> None:
    if row["status"] == "withdrawn":
        raise HTTPException(409, f"advisory {row['id']} was withdrawn and cannot be {action}: "
                                 "draft a new one")


async def create(conn: AsyncConnection, user: User, new: NewAdvisory | Mapping) -> dict:
    """A new draft written by an officer (or admin) for a municipality of their
    region; returns it as :func:`get` does."""
    access.require_role(user, *REVIEWERS, action="drafting advisories")
    new = as_model(NewAdvisory, new)
    async with conn.transaction():
        await require_region(conn, user, [new.municipality])
        cur = await conn.execute(
            "INSERT INTO advisories (key, kind, severity, municipality, field_ids, reason, "
            "valid_from, valid_until, title_ja, body_ja, title_en, body_en, computed_for, "
            "created_by) VALUES (%s, %s, %s, %s, '{}', %s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "RETURNING id",
            (f"manual:{uuid.uuid4().hex}", new.kind, new.severity, new.municipality,
             f"written by {user.name}", new.valid_from, new.valid_until, new.title.ja,
             new.body.ja, new.title.en, new.body.en, today_local(), user.name))
        advisory_id = (await cur.fetchone())[0]
        await _history(conn, advisory_id, user, "create", {
            "title_ja": new.title.ja, "title_en": new.title.en, "body_ja": new.body.ja,
            "body_en": new.body.en, "valid_from": new.valid_from.isoformat(),
            "valid_until": new.valid_until.isoformat()})
    return await get(conn, user, advisory_id)


async def update(conn: AsyncConnection, user: User, advisory_id: int,
                 edit: AdvisoryEdit | Mapping) -> dict:
    """Change the text, severity or validity of a draft or published advisory
    of the user's region; each changed column's old and new value go to the
    history. Returns the advisory as :func:`get` does."""
    access.require_role(user, *REVIEWERS, action="editing advisories")
    edit = as_model(AdvisoryEdit, edit)
    wanted: dict[str, Any] = {"severity": edit.severity, "valid_from": edit.valid_from,
                              "valid_until": edit.valid_until}
    for part in ("title", "body"):
        text = getattr(edit, part)
        if text is not None:
            wanted |= {f"{part}_ja": text.ja, f"{part}_en": text.en}
    async with conn.transaction():
        row = await _reviewed(conn, user, advisory_id)
        _not_withdrawn(row, "edited")
        changes = {k: v for k, v in wanted.items() if v is not None and v != row[k]}
        try:
            _valid_span(changes.get("valid_from", row["valid_from"]),
                        changes.get("valid_until", row["valid_until"]))
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        if changes:
            assignments = sql.SQL(", ").join(
                sql.SQL("{} = {}").format(sql.Identifier(k), sql.Placeholder(k))
                for k in changes)
            await conn.execute(
                sql.SQL("UPDATE advisories SET {}, edited_by = %(by)s, edited_at = now(), "
                        "updated_at = now() WHERE id = %(id)s").format(assignments),
                {**changes, "by": user.name, "id": advisory_id})
            await _history(conn, advisory_id, user, "edit", {
                k: {"from": _text(row[k]), "to": _text(v)} for k, v in changes.items()})
    return await get(conn, user, advisory_id)


def _text(value) -> Any:
    return value.isoformat() if isinstance(value, date) else value


async def _target_columns(conn: AsyncConnection, user: User, target: Target) -> dict:
    """The publication row of a target inside the user's region (fields and
    groups outside it: 404; municipalities outside it: 403)."""
    if target.fields is not None:
        ids = await changeable_fields(conn, user, target.fields)
        return {"target": "fields", "field_ids": ids, "group_id": None, "municipalities": []}
    if target.group is not None:
        cur = await conn.execute(f"SELECT g.id FROM field_groups g WHERE g.id = %(id)s AND "
                                 f"{access.in_region('g.municipality')}",
                                 {**access.who(user), "id": target.group})
        if await cur.fetchone() is None:
            raise HTTPException(404, f"no group {target.group} in your region")
        return {"target": "group", "field_ids": [], "group_id": target.group,
                "municipalities": []}
    names = sorted(set(target.region or ()))
    await require_region(conn, user, names)
    return {"target": "region", "field_ids": [], "group_id": None, "municipalities": names}


async def publish(conn: AsyncConnection, user: User, advisory_id: int,
                  target: Target | Mapping) -> dict:
    """Publish a draft (or a published advisory to one more target): from now
    on the farmers of the fields the target reaches read it. The same live
    target twice is kept once. Returns the advisory as :func:`get` does."""
    access.require_role(user, *REVIEWERS, action="publishing advisories")
    target = as_model(Target, target)
    async with conn.transaction():
        row = await _reviewed(conn, user, advisory_id)
        _not_withdrawn(row, "published")
        columns = await _target_columns(conn, user, target)
        cur = await conn.execute(
            "SELECT 1 FROM advisory_publications WHERE advisory_id = %(id)s AND "
            "withdrawn_at IS NULL AND target = %(target)s AND field_ids = %(field_ids)s "
            "AND group_id IS NOT DISTINCT FROM %(group_id)s AND municipalities = "
            "%(municipalities)s::text[]", {"id": advisory_id, **columns})
        if await cur.fetchone() is None:
            await conn.execute(
                "INSERT INTO advisory_publications (advisory_id, target, field_ids, group_id, "
                "municipalities, published_by) VALUES (%(id)s, %(target)s, %(field_ids)s, "
                "%(group_id)s, %(municipalities)s::text[], %(by)s)",
                {"id": advisory_id, "by": user.name, **columns})
            await conn.execute(
                "UPDATE advisories SET status = 'published', published_at = "
                "coalesce(published_at, now()), updated_at = now() WHERE id = %s",
                (advisory_id,))
            await _history(conn, advisory_id, user, "publish", {
                "target": columns["target"], "fields": columns["field_ids"],
                "group": columns["group_id"], "municipalities": columns["municipalities"]})
    return await get(conn, user, advisory_id)


async def withdraw(conn: AsyncConnection, user: User, advisory_id: int) -> dict:
    """Withdraw an advisory of the user's region (and all its targets): farmers
    no longer read it; withdrawing it again changes nothing. Returns it as
    :func:`get` does."""
    access.require_role(user, *REVIEWERS, action="withdrawing advisories")
    async with conn.transaction():
        row = await _reviewed(conn, user, advisory_id)
        if row["status"] != "withdrawn":
            await conn.execute(
                "UPDATE advisories SET status = 'withdrawn', withdrawn_by = %s, withdrawn_at = "
                "now(), updated_at = now() WHERE id = %s", (user.name, advisory_id))
            await conn.execute("UPDATE advisory_publications SET withdrawn_at = now() WHERE "
                               "advisory_id = %s AND withdrawn_at IS NULL", (advisory_id,))
            await _history(conn, advisory_id, user, "withdraw", {"status": {
                "from": row["status"], "to": "withdrawn"}})
    return await get(conn, user, advisory_id)
