"""Linking a LINE account for alerts: the signed-in user asks for a one-time
code (POST /api/v1/me/line-link) and sends it to the platform's LINE
official account; LINE calls the webhook (POST /api/v1/line/webhook), signed
with the channel secret, and the sender's LINE user id is kept in the
user's alert preferences. Codes are stored hashed, live 30 minutes and
link once."""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Header, HTTPException, Request
from linebot.v3.webhooks import MessageEvent, TextMessageContent, UserSource

from agri.alerts import line
from agri.api.deps import CurrentUser, PrimaryConn, SettingsDep

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1", tags=["line"])

WEBHOOK_MAX_BYTES = 256 * 1024  # LINE's webhook bodies are far smaller
CODE_TTL = timedelta(minutes=30)
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read off a screen
CODE_LENGTH = 10  # 50 bits
CODE_TEXT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 -]{6,30}[A-Za-z0-9]$")  # what may be a code
LINE_USER_ID = re.compile(r"^U[0-9a-f]{32}$")

REPLY_LINKED = "LINEでの通知を設定しました({user})。\nLINE alerts are on for {user}."
REPLY_UNKNOWN = ("このコードは見つからないか、期限切れか使用済みです。ページで新しいコードを"
                 "発行してください。\nThis code is unknown, expired or used: make a new one "
                 "on your page.")

_TAKE_CODE = """
UPDATE line_link_codes SET used_at = now()
WHERE code_hash = %s AND used_at IS NULL AND expires_at > now()
RETURNING user_name"""
_LINK = """
INSERT INTO alert_preferences (user_name, line_user_id, line_on) VALUES (%s, %s, true)
ON CONFLICT (user_name) DO UPDATE
SET line_user_id = EXCLUDED.line_user_id, line_on = true, updated_at = now()"""


def normalized(code: str) -> str:
    """A code as typed: case, spaces and hyphens do not matter."""
    return re.sub(r"[\s-]", "", code).upper()


def code_hash(code: str) -> str:
    return hashlib.sha256(normalized(code).encode()).hexdigest()


def shown(code: str) -> str:
    return f"{code[:4]}-{code[4:8]}-{code[8:]}"


@router.post("/me/line-link", status_code=201, responses={201: {"content": {
    "application/json": {"example": {"code": "K7QM-R2XW-9P", "expires_at":
                                     "2026-07-01T09:30:00+09:00", "minutes": 30}}}}})
async def create_line_link(user: CurrentUser, conn: PrimaryConn):
    """A one-time code that links your LINE account: send it as a message to
    the platform's LINE official account within 30 minutes. A new code
    replaces your unused ones."""
    code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
    await conn.execute("DELETE FROM line_link_codes WHERE user_name = %s AND used_at IS NULL",
                       (user.name,))
    cur = await conn.execute(
        "INSERT INTO line_link_codes (code_hash, user_name, expires_at) "
        "VALUES (%s, %s, now() + %s) RETURNING expires_at",
        (code_hash(code), user.name, CODE_TTL))
    (expires,) = await cur.fetchone()
    return {"code": shown(code), "expires_at": expires.isoformat(),
            "minutes": int(CODE_TTL.total_seconds() // 60)}


async def _body(request: Request) -> bytes:
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > WEBHOOK_MAX_BYTES):
        raise HTTPException(413, f"webhook body over {WEBHOOK_MAX_BYTES} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > WEBHOOK_MAX_BYTES:
            raise HTTPException(413, f"webhook body over {WEBHOOK_MAX_BYTES} bytes")
    return bytes(body)


@router.post("/line/webhook", responses={200: {"content": {"application/json": {
    "example": {"linked": 1}}}}, 400: {"description": "no X-Line-Signature, or not a webhook "
                                                     "body"},
    401: {"description": "the signature does not match"}})
async def line_webhook(
    request: Request, conn: PrimaryConn, settings: SettingsDep, background: BackgroundTasks,
    x_line_signature: Annotated[str | None, Header(max_length=200)] = None,
):
    """LINE's webhook (called by the LINE Platform, signed with the channel
    secret): a text message holding a link code links its sender."""
    if not x_line_signature:
        raise HTTPException(400, "missing X-Line-Signature: only the LINE Platform calls this")
    if not settings.line_channel_secret:
        raise HTTPException(503, "LINE is not set up here: set AGRI_LINE_CHANNEL_SECRET")
    body = await _body(request)
    try:
        events = line.verify_and_parse(settings, body, x_line_signature)
    except line.SignatureError as exc:
        raise HTTPException(401, str(exc)) from None
    except line.WebhookError as exc:
        raise HTTPException(400, str(exc)) from None
    linked = 0
    for event in events:
        if not (isinstance(event, MessageEvent) and isinstance(event.message, TextMessageContent)
                and isinstance(event.source, UserSource)):
            continue
        text, sender = event.message.text.strip(), event.source.user_id
        if not CODE_TEXT.match(text) or not LINE_USER_ID.match(sender or ""):
            continue
        cur = await conn.execute(_TAKE_CODE, (code_hash(text),))
        row = await cur.fetchone()
        if row is not None:
            await conn.execute(_LINK, (row[0], sender))
            linked += 1
            logger.info("LINE account linked for %s", row[0])
        reply = REPLY_LINKED.format(user=row[0]) if row else REPLY_UNKNOWN
        if settings.line_channel_token and event.reply_token:
            background.add_task(line.reply_line, settings, event.reply_token, reply)
    return {"linked": linked}
