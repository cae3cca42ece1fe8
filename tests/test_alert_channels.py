"""The alert channels against real peers: email through a real SMTP server
process (Japanese subject and body as a mail reader decodes them, a refused
recipient is a permanent failure, a server that is away a transient one),
LINE pushes checked by a local Messaging API that follows the reference
(token, user id, retry key), every rule's message in both languages, and
the LINE linking webhook on a real API: only LINE's signature links, a code
links once, within its time, to the user who made it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from datetime import UTC, datetime

import httpx
import psycopg
import pytest

from agri.alerts import email, line, messages
from agri.alerts.channels import DeliveryError
from agri.api.accounts import add_user
from agri.deploy.servers import free_port
from agri.settings import Settings
from tests.fix_line import line_api  # noqa: F401 - fixture
from tests.fix_smtp import DEFERRED_DOMAIN, REFUSED_DOMAIN, smtp_server  # noqa: F401 - fixture
from tests.fix_stack import api_server, wait_for

RULE_NAMES = ("water-out-of-band", "water-gone", "gate-not-answering", "gate-not-moving",
              "sensor-silent", "battery-low", "cold-ahead", "blast-day", "harvest-window",
              "advisory-published")
LINK = "https://agri.example/fields/aomori-f1"
SECRET = secrets.token_hex(16)


def line_user() -> str:
    return "U" + secrets.token_hex(16)


def alert(rule: str, **evidence) -> dict:
    now = datetime.now(UTC)
    return {"id": 1, "rule": rule, "severity": "urgent", "field_id": "aomori-f1",
            "field_name": "田んぼ1", "device_id": "gate-3", "evidence": evidence,
            "opened_at": now, "observed_at": now}


# --- Email ----------------------------------------------------------------------------

def test_email_arrives_with_its_japanese_subject_and_body(smtp_server):  # noqa: F811
    settings = Settings(smtp_url=smtp_server.url, smtp_from="alerts@agri.example")
    message = messages.render(alert("water-gone", level_m=-0.01), "opened", "ja", LINK)
    email.send_email(settings, "tanaka@example.jp", message.subject, message.text)
    (got,) = smtp_server.wait_for(1, timeout=10)
    assert got["Subject"] == "【至急】田んぼ1: 水がありません"
    assert got["To"] == "tanaka@example.jp" and got["From"] == "alerts@agri.example"
    assert got["Message-ID"].endswith("@agri.example>") and got["Date"]
    assert got.get_content_charset() == "utf-8"
    assert got.get_content().rstrip("\n") == message.text
    assert "給水口を確認してください" in got.get_content() and LINK in got.get_content()
    assert len(smtp_server.accepted_times()) == 1


def test_refused_recipient_is_permanent_a_deferred_one_transient(smtp_server):  # noqa: F811
    settings = Settings(smtp_url=smtp_server.url)
    with pytest.raises(DeliveryError) as refused:
        email.send_email(settings, f"nobody@{REFUSED_DOMAIN}", "件名", "本文")
    assert refused.value.permanent and "550" in str(refused.value)
    with pytest.raises(DeliveryError) as deferred:
        email.send_email(settings, f"later@{DEFERRED_DOMAIN}", "件名", "本文")
    assert not deferred.value.permanent and "451" in str(deferred.value)
    assert smtp_server.messages() == []


def test_server_away_is_transient_and_missing_setting_permanent():
    with pytest.raises(DeliveryError) as away:
        email.send_email(Settings(smtp_url=f"smtp://127.0.0.1:{free_port()}"), "a@example.jp",
                         "s", "t")
    assert not away.value.permanent
    with pytest.raises(DeliveryError) as unset:
        email.send_email(Settings(smtp_url=None), "a@example.jp", "s", "t")
    assert unset.value.permanent and "AGRI_SMTP_URL" in str(unset.value)


def test_login_when_the_url_has_one(tmp_path):
    from tests.fix_smtp import start_server

    sink = start_server(tmp_path / "smtp", auth="agri:s3cret")
    try:
        email.send_email(Settings(smtp_url=sink.url), "a@example.jp", "s", "t")
        assert len(sink.wait_for(1, timeout=10)) == 1
        with pytest.raises(DeliveryError) as wrong:
            email.send_email(Settings(smtp_url=f"smtp://agri:bad@127.0.0.1:{sink.port}"),
                             "a@example.jp", "s", "t")
        assert wrong.value.permanent and "535" in str(wrong.value)
        assert len(sink.messages()) == 1
    finally:
        sink.stop()


# --- LINE push ------------------------------------------------------------------------

def pushes(line_api, to: str) -> list[dict]:  # noqa: F811
    return [r for r in line_api.requests("/v2/bot/message/push") if r["body"].get("to") == to]


def test_push_is_accepted_as_documented_and_a_retry_not_sent_twice(line_api):  # noqa: F811
    settings = Settings(line_channel_token=line_api.token, line_api_url=line_api.url)
    to = line_user()
    text = messages.render(alert("water-gone"), "opened", "ja", LINK).text
    line.send_line(settings, to, text, "alert-delivery-41")
    line.send_line(settings, to, text, "alert-delivery-41")  # a retry after a lost answer
    first, again = pushes(line_api, to)
    assert (first["status"], again["status"]) == (200, 409)
    assert first["headers"]["authorization"] == f"Bearer {line_api.token}"
    assert first["headers"]["x-line-retry-key"] == again["headers"]["x-line-retry-key"] == \
        line.uuid_key("alert-delivery-41")
    assert first["body"]["messages"] == [{"type": "text", "text": text}]
    long = line_user()
    line.send_line(settings, long, "長" * 6000, "alert-delivery-42")
    (cut,) = pushes(line_api, long)
    assert cut["status"] == 200 and len(cut["body"]["messages"][0]["text"]) == 5000


def test_push_failures_say_whether_to_try_again(line_api):  # noqa: F811
    settings = Settings(line_channel_token=line_api.token, line_api_url=line_api.url)
    wrong = Settings(line_channel_token="not-the-token", line_api_url=line_api.url)
    with pytest.raises(DeliveryError) as refused:
        line.send_line(wrong, line_user(), "x", "k-1")
    assert refused.value.permanent and "401" in str(refused.value)
    with pytest.raises(DeliveryError) as bad_user:
        line.send_line(settings, "Unot-a-user", "x", "k-2")
    assert bad_user.value.permanent and "400" in str(bad_user.value)
    for status in (429, 500):
        line_api.fail_next(status)
        with pytest.raises(DeliveryError) as busy:
            line.send_line(settings, line_user(), "x", f"k-{status}")
        assert not busy.value.permanent and str(status) in str(busy.value)
    with pytest.raises(DeliveryError) as away:
        line.send_line(Settings(line_channel_token="t", line_api_url=f"http://127.0.0.1:"
                                f"{free_port()}"), line_user(), "x", "k-3")
    assert not away.value.permanent


# --- Messages -------------------------------------------------------------------------

@pytest.mark.parametrize("rule", [*RULE_NAMES, "some-new-rule"])
def test_every_rule_reads_short_with_its_link(rule):
    evidence = {"level_m": -0.01, "since": "2026-07-01T02:10:00+00:00", "battery_pct": 8.5,
                "title_ja": "深水管理" * 20, "title_en": "Keep water deep", "reason": "x" * 500}
    for language in ("ja", "en"):
        for event in ("opened", "cleared"):
            m = messages.render(alert(rule, **evidence), event, language, LINK)
            assert len(m.text) < 300 and m.text.endswith(LINK), (language, event, m.text)
            assert "田んぼ1" in m.subject and "\n" not in m.subject
    ja = messages.render(alert(rule), "opened", "ja", LINK)
    cleared = messages.render(alert(rule), "cleared", "ja", LINK)
    assert ja.subject.startswith("【至急】") and cleared.subject.startswith("【解除】")
    if rule == "some-new-rule":
        assert rule in ja.text


def test_water_gone_tells_what_to_do():
    m = messages.render(alert("water-gone", level_m=-0.01), "opened", "ja", LINK)
    assert m.text.splitlines()[0] == "【至急】田んぼ1: 水がありません。給水口を確認してください。"
    assert m.text.splitlines()[1] == "水位 -0.01 m"
    en = messages.render(alert("water-gone", level_m=-0.01), "opened", "en", LINK)
    assert en.text.splitlines()[0] == "[URGENT] 田んぼ1: the paddy has no water. " \
                                      "Check the water inlet."


# --- Linking by the webhook -----------------------------------------------------------

@pytest.fixture(scope="module")
def linking(platform, line_api):  # noqa: F811
    with api_server(platform, AGRI_LINE_CHANNEL_SECRET=SECRET,
                    AGRI_LINE_CHANNEL_TOKEN=line_api.token,
                    AGRI_LINE_API_URL=line_api.url) as base:
        yield base


def person(platform) -> tuple[str, dict]:
    name = f"ln-{secrets.token_hex(4)}"
    with psycopg.connect(platform.db_url) as conn:
        token = add_user(conn, name=name, role="farmer", regions=[]).token
    return name, {"Authorization": f"Bearer {token}"}


def new_code(base: str, headers: dict) -> str:
    r = httpx.post(base + "/api/v1/me/line-link", headers=headers, timeout=10)
    assert r.status_code == 201, r.text
    assert r.json()["minutes"] == 30 and len(r.json()["code"].replace("-", "")) >= 8
    return r.json()["code"]


def webhook_body(text: str, sender: str) -> bytes:
    return json.dumps({"destination": "U" + "0" * 32, "events": [{
        "type": "message", "mode": "active", "timestamp": 1751331000000,
        "webhookEventId": "01J" + secrets.token_hex(10).upper(),
        "deliveryContext": {"isRedelivery": False},
        "source": {"type": "user", "userId": sender},
        "replyToken": secrets.token_hex(16),
        "message": {"id": "468789577898262530", "type": "text", "text": text,
                    "quoteToken": "q"}}]}, ensure_ascii=False).encode()


def sign(body: bytes, secret: str = SECRET) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def post_webhook(base: str, body: bytes, signature: str | None) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["X-Line-Signature"] = signature
    return httpx.post(base + "/api/v1/line/webhook", content=body, headers=headers, timeout=10)


def linked(platform, name: str) -> list[tuple]:
    return platform.sql("SELECT line_user_id, line_on FROM alert_preferences "
                        "WHERE user_name = %s", (name,))


def test_a_signed_code_links_its_sender_once(platform, linking, line_api):  # noqa: F811
    name, headers = person(platform)
    code, sender = new_code(linking, headers), line_user()
    body = webhook_body(code.lower(), sender)  # as typed on a phone
    r = post_webhook(linking, body, sign(body))
    assert r.status_code == 200 and r.json() == {"linked": 1}, r.text
    assert linked(platform, name) == [(sender, True)]
    stored = platform.sql("SELECT code_hash, used_at IS NOT NULL FROM line_link_codes "
                          "WHERE user_name = %s", (name,))
    assert stored == [(hashlib.sha256(code.replace("-", "").encode()).hexdigest(), True)]
    assert code.replace("-", "") not in str(stored)
    # The reply confirms it, sent through the Messaging API with the reply token.
    token = json.loads(body)["events"][0]["replyToken"]
    (reply,) = wait_for(lambda: [r for r in line_api.requests("/v2/bot/message/reply")
                                 if r["body"].get("replyToken") == token], timeout=10,
                        what="the reply to the linking message")
    assert reply["status"] == 200 and name in reply["body"]["messages"][0]["text"]
    # The same code again, from another LINE account: nothing changes.
    again = webhook_body(code, line_user())
    assert post_webhook(linking, again, sign(again)).json() == {"linked": 0}
    assert linked(platform, name) == [(sender, True)]


def test_bad_signatures_link_nothing(platform, linking):
    name, headers = person(platform)
    code = new_code(linking, headers)
    body = webhook_body(code, line_user())
    assert post_webhook(linking, body, None).status_code == 400
    assert post_webhook(linking, body, sign(body, "another-channel")).status_code == 401
    assert post_webhook(linking, body, "not base64 at all").status_code == 401
    tampered = body.replace(b'"user"', b'"user" ')
    assert post_webhook(linking, tampered, sign(body)).status_code == 401
    assert linked(platform, name) == []
    assert platform.sql("SELECT count(*) FROM line_link_codes WHERE user_name = %s "
                        "AND used_at IS NULL", (name,)) == [(1,)]


def test_expired_used_and_replaced_codes_link_nothing(platform, linking):
    name, headers = person(platform)
    expired = new_code(linking, headers)
    platform.sql("UPDATE line_link_codes SET expires_at = now() - interval '1 minute' "
                 "WHERE user_name = %s RETURNING 1", (name,))
    body = webhook_body(expired, line_user())
    assert post_webhook(linking, body, sign(body)).json() == {"linked": 0}
    first = new_code(linking, headers)
    second = new_code(linking, headers)  # replaces the first
    body = webhook_body(first, line_user())
    assert post_webhook(linking, body, sign(body)).json() == {"linked": 0}
    assert linked(platform, name) == []
    body = webhook_body(second, line_user())
    assert post_webhook(linking, body, sign(body)).json() == {"linked": 1}


def test_another_users_code_links_only_its_maker(platform, linking):
    maker, maker_headers = person(platform)
    other, other_headers = person(platform)
    code = new_code(linking, maker_headers)
    new_code(linking, other_headers)
    thief = line_user()
    body = webhook_body(code, thief)
    assert post_webhook(linking, body, sign(body)).json() == {"linked": 1}
    assert linked(platform, maker) == [(thief, True)] and linked(platform, other) == []
    # Consumed: a second message with it (a replay with a fresh event) links no one.
    replay = webhook_body(code, line_user())
    assert post_webhook(linking, replay, sign(replay)).json() == {"linked": 0}
    assert linked(platform, maker) == [(thief, True)]


def test_hostile_bodies_get_clear_errors(platform, linking):
    huge = b'{"events": [' + b" " * 400_000 + b"]}"
    r = post_webhook(linking, huge, sign(huge))
    assert r.status_code == 413 and "bytes" in r.json()["detail"]
    for body in (b"not json", b'{"no": "events"}', b"\xff\xfe", b'{"events": 5}', b"[]"):
        r = post_webhook(linking, body, sign(body))
        assert r.status_code == 400 and r.json()["detail"], (body, r.text)
    odd = json.dumps({"events": [{"type": "follow", "mode": "active", "timestamp": 1,
                                  "source": {"type": "user", "userId": line_user()},
                                  "webhookEventId": "x", "replyToken": "r",
                                  "deliveryContext": {"isRedelivery": False}},
                                 {"type": "never-heard-of"}, {"type": "message", "message": 7},
                                 "not an event"]}).encode()
    assert post_webhook(linking, odd, sign(odd)).json() == {"linked": 0}
    verify = b'{"destination":"U' + b"0" * 32 + b'","events":[]}'  # LINE's "Verify" button
    assert post_webhook(linking, verify, sign(verify)).status_code == 200
    assert httpx.get(linking + "/healthz", timeout=5).status_code in (200, 503)


def test_link_code_needs_a_user(linking):
    assert httpx.post(linking + "/api/v1/me/line-link", timeout=10).status_code == 401
