"""Alerts by email: one message per call, handed to the SMTP server of
AGRI_SMTP_URL (smtp://[user:password@]host[:port], STARTTLS when the server
offers it; smtps:// for TLS from the start), from AGRI_SMTP_FROM."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from urllib.parse import unquote, urlsplit

from agri.alerts.channels import DeliveryError
from agri.settings import Settings

TIMEOUT_S = 20.0  # connect and every reply of the server
DEFAULT_PORTS = {"smtp": 25, "smtps": 465}


def build(settings: Settings, to: str, subject: str, text: str) -> EmailMessage:
    """The message as sent: UTF-8 subject and body, with Date and Message-ID."""
    message = EmailMessage()
    message["From"] = settings.smtp_from
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=True)
    message["Message-ID"] = make_msgid(domain=settings.smtp_from.rpartition("@")[2])
    message.set_content(text, charset="utf-8")
    return message


def send_email(settings: Settings, to: str, subject: str, text: str) -> None:
    """Hand one message to the SMTP server; DeliveryError when it was not taken."""
    if not settings.smtp_url:
        raise DeliveryError("no mail server: set AGRI_SMTP_URL", permanent=True)
    url = urlsplit(settings.smtp_url)
    message = build(settings, to, subject, text)
    host, port = url.hostname or "localhost", url.port or DEFAULT_PORTS[url.scheme]
    try:
        if url.scheme == "smtps":
            client = smtplib.SMTP_SSL(host, port, timeout=TIMEOUT_S,
                                      context=ssl.create_default_context())
        else:
            client = smtplib.SMTP(host, port, timeout=TIMEOUT_S)
        with client:
            client.ehlo()
            if url.scheme == "smtp" and client.has_extn("starttls"):
                client.starttls(context=ssl.create_default_context())
                client.ehlo()
            if url.username:
                client.login(unquote(url.username), unquote(url.password or ""))
            client.send_message(message)
    except smtplib.SMTPRecipientsRefused as exc:
        code, reply = next(iter(exc.recipients.values()))
        raise DeliveryError(f"the mail server refused {to}: {code} {_text(reply)}",
                            permanent=code >= 500) from None
    except smtplib.SMTPResponseException as exc:
        raise DeliveryError(f"the mail server answered {exc.smtp_code} {_text(exc.smtp_error)}",
                            permanent=exc.smtp_code >= 500) from None
    except (OSError, smtplib.SMTPException) as exc:
        raise DeliveryError(f"mail server {host}:{port} not reachable: "
                            f"{type(exc).__name__}: {exc}", permanent=False) from None


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
