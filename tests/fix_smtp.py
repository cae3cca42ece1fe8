"""A real SMTP server process (agri.deploy.smtp_sink, aiosmtpd) for the mail
tests: ``smtp_server`` accepts every recipient except those at
refuse.example (550) and defer.example (451)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agri.deploy.smtp_sink import SmtpSink, start_server

__all__ = ["REFUSED_DOMAIN", "DEFERRED_DOMAIN", "SmtpSink", "smtp_server", "start_server"]

REFUSED_DOMAIN = "refuse.example"
DEFERRED_DOMAIN = "defer.example"


@pytest.fixture
def smtp_server(tmp_path) -> Iterator[SmtpSink]:
    sink = start_server(tmp_path / "smtp", refuse=(REFUSED_DOMAIN,), defer=(DEFERRED_DOMAIN,))
    try:
        yield sink
    finally:
        sink.stop()
