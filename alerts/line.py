"""Alerts by LINE: push messages through the Messaging API (line-bot-sdk v3)
with the channel's access token, and the webhook's signature check with its
secret (AGRI_LINE_CHANNEL_TOKEN, AGRI_LINE_CHANNEL_SECRET, AGRI_LINE_API_URL)."""

from __future__ import annotations

import json
import logging
import uuid

import urllib3
from linebot.v3.messaging import (
    ApiClient,
    ApiException,
    Configuration,
    MessagingApi,
    PushMessageRequest,
    ReplyMessageRequest,
    TextMessage,
)
from linebot.v3.webhook import WebhookParser
from linebot.v3.webhooks import Event

from agri.alerts.channels import DeliveryError
from agri.settings import Settings

logger = logging.getLogger(__name__)

TEXT_MAX_CHARS = 5000  # the Messaging API's limit for one text message
TIMEOUT_S = (5.0, 15.0)  # connect, read
# Retry keys are UUIDs: one derived from the caller's key stays the same on every try.
RETRY_KEY_NAMESPACE = uuid.UUID("6f0b1c52-1d55-4f4e-9a57-3a7c2e0d9b41")
TRANSIENT_STATUSES = frozenset({0, 408, 429})  # 0: the SDK's own TLS error; and every 5xx


class WebhookError(ValueError):
    """A webhook request that cannot be taken."""


class SignatureError(WebhookError):
    """X-Line-Signature does not match the body: the request is not from LINE
    (or AGRI_LINE_CHANNEL_SECRET is not this channel's secret)."""


def uuid_key(key: str) -> str:
    """``key`` when it is a UUID already, else a UUID derived from it."""
    try:
        return str(uuid.UUID(key))
    except ValueError:
        return str(uuid.uuid5(RETRY_KEY_NAMESPACE, key))


def _client(settings: Settings) -> ApiClient:
    if not settings.line_channel_token:
        raise DeliveryError("LINE is not set up: set AGRI_LINE_CHANNEL_TOKEN", permanent=True)
    config = Configuration(host=settings.line_api_url.rstrip("/"),
                           access_token=settings.line_channel_token)
    config.retries = 0  # tries again are the caller's, with the same retry key
    return ApiClient(config)


def _fit(text: str) -> str:
    return text if len(text) <= TEXT_MAX_CHARS else text[:TEXT_MAX_CHARS - 1] + "…"


def send_line(settings: Settings, to: str, text: str, retry_key: str) -> None:
    """Push one text message to the LINE user ``to``; a retry with the same
    key is never delivered twice (the API answers 409: already sent)."""
    key = uuid_key(retry_key)
    request = PushMessageRequest(to=to, messages=[TextMessage(text=_fit(text))])
    try:
        with _client(settings) as client:
            MessagingApi(client).push_message(request, x_line_retry_key=key,
                                              _request_timeout=TIMEOUT_S)
    except ApiException as exc:
        if exc.status == 409:  # accepted before under this key: sent
            return
        raise _error(exc) from None
    except urllib3.exceptions.HTTPError as exc:
        raise DeliveryError(f"LINE Messaging API not reachable: {type(exc).__name__}: {exc}",
                            permanent=False) from None


def reply_line(settings: Settings, reply_token: str, text: str) -> bool:
    """Answer a webhook event; False (logged) when the answer was not taken:
    a reply is a courtesy, never a reason to fail the request."""
    request = ReplyMessageRequest(reply_token=reply_token, messages=[TextMessage(text=_fit(text))])
    try:
        with _client(settings) as client:
            MessagingApi(client).reply_message(request, _request_timeout=TIMEOUT_S)
        return True
    except (ApiException, urllib3.exceptions.HTTPError, DeliveryError) as exc:
        logger.warning("LINE reply not sent: %s", _error(exc) if isinstance(
            exc, ApiException) else exc)
        return False


def _error(exc: ApiException) -> DeliveryError:
    status = exc.status or 0
    return DeliveryError(f"LINE Messaging API answered {status}: {_message(exc.body)}",
                         permanent=not (status in TRANSIENT_STATUSES or status >= 500))


def _message(body: bytes | str | None) -> str:
    try:
        return str(json.loads(body)["message"])[:300]
    except (TypeError, ValueError, KeyError):
        return (body.decode("utf-8", "replace") if isinstance(body, bytes)
                else str(body or ""))[:300]


def verify_and_parse(settings: Settings, body: bytes, signature: str) -> list:
    """The webhook's events (linebot.v3.webhooks models) once the signature
    is checked with the channel secret (the SDK's WebhookParser); an event
    the SDK cannot read is left out (logged), never the whole request.
    SignatureError when the signature does not match, WebhookError when the
    body is not a webhook's."""
    if not settings.line_channel_secret:
        raise WebhookError("LINE is not set up: set AGRI_LINE_CHANNEL_SECRET")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise WebhookError("the body is not UTF-8 text") from None
    parser = WebhookParser(settings.line_channel_secret)
    if not parser.signature_validator.validate(text, signature):
        raise SignatureError("X-Line-Signature does not match the body")
    try:
        events = json.loads(text)["events"]
    except (ValueError, KeyError, TypeError):
        events = None
    if not isinstance(events, list):
        raise WebhookError("not a LINE webhook body: send a JSON object with an events list")
    parsed = []
    for event in events:
        try:
            parsed.append(Event.from_dict(event))
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            kind = event.get("type") if isinstance(event, dict) else type(event).__name__
            logger.info("LINE webhook event %.40r left out: %s", kind, type(exc).__name__)
    return parsed
