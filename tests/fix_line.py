"""A local LINE Messaging API (tests/line_api_server.py) as a process of its
own: ``line_api`` has its ``url``, the channel ``token`` it accepts and the
``requests()`` it got (each checked as the API reference documents it)."""

from __future__ import annotations

import json
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from agri.deploy.servers import free_port

SERVER = Path(__file__).with_name("line_api_server.py")
READY_TIMEOUT_S = 15.0


@dataclass
class LineApi:
    proc: subprocess.Popen
    port: int
    token: str
    out: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def requests(self, path: str | None = None) -> list[dict]:
        if not self.out.exists():
            return []
        rows = [json.loads(line) for line in self.out.read_text("utf-8").splitlines()
                if line.endswith("}")]
        return [r for r in rows if path is None or r["path"] == path]

    def fail_next(self, status: int, count: int = 1) -> None:
        """The next ``count`` pushes answer ``status`` (429, 500, ...)."""
        httpx.post(self.url + "/_test/fail", json={"status": status, "count": count},
                   timeout=5).raise_for_status()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(10)


def start_line_api(folder: Path) -> LineApi:
    folder.mkdir(parents=True, exist_ok=True)
    port, token = free_port(), secrets.token_urlsafe(32)
    out = folder / f"line-{port}.jsonl"
    with open(folder / f"line-{port}.log", "ab") as log:
        proc = subprocess.Popen([sys.executable, str(SERVER), "--port", str(port), "--token",
                                 token, "--out", str(out)], stdout=log, stderr=log)
    api = LineApi(proc, port, token, out)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return api
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                api.stop()
                pytest.fail(f"the local LINE API did not start: {folder}/line-{port}.log")
            time.sleep(0.05)


@pytest.fixture(scope="module")
def line_api(tmp_path_factory) -> Iterator[LineApi]:
    api = start_line_api(tmp_path_factory.mktemp("line"))
    try:
        yield api
    finally:
        api.stop()
