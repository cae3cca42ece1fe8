"""A real SMTP server (aiosmtpd) that keeps every message it accepts, for
the tests and `agri bench alerts`:

    python -m agri.deploy.smtp_sink --port 2525 --out mail.jsonl

Each accepted message is one JSON line of ``--out``: ``accepted_at`` (Unix
time, when the server answered 250 to the data), ``mail_from``,
``rcpt_tos`` and ``data`` (the message's bytes, base64). Recipients at a
``--refuse-domain`` get 550 (refused for good), at a ``--defer-domain`` 451
(try later); ``--auth USER:PASSWORD`` requires that login (over plain SMTP:
for local tests only). ``start_server`` runs it as a process of its own."""

from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

READY_TIMEOUT_S = 15.0


class Sink:
    """The aiosmtpd handler: refuses or defers by domain, appends the rest."""

    def __init__(self, out: Path, refuse: set[str], defer: set[str]):
        self.out, self.refuse, self.defer = out, refuse, defer
        self._lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        domain = address.rpartition("@")[2].lower()
        if domain in self.refuse:
            return f"550 5.1.1 <{address}>: recipient refused"
        if domain in self.defer:
            return f"451 4.3.0 <{address}>: try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        data = envelope.original_content or envelope.content
        record = {"accepted_at": time.time(), "mail_from": envelope.mail_from,
                  "rcpt_tos": list(envelope.rcpt_tos),
                  "data": base64.b64encode(data).decode("ascii")}
        with self._lock, open(self.out, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        return "250 2.0.0 accepted"


def _authenticator(login: str, password: str):
    from aiosmtpd.smtp import AuthResult, LoginPassword

    def check(server, session, envelope, mechanism, auth_data):
        ok = (isinstance(auth_data, LoginPassword) and auth_data.login.decode() == login
              and auth_data.password.decode() == password)
        return AuthResult(success=ok, handled=False)

    return check


def serve(args: argparse.Namespace) -> None:
    from aiosmtpd.controller import Controller

    out = Path(args.out)
    out.touch()
    handler = Sink(out, {d.lower() for d in args.refuse_domain},
                   {d.lower() for d in args.defer_domain})
    kwargs: dict = {}
    if args.auth:
        login, _, password = args.auth.partition(":")
        kwargs = {"authenticator": _authenticator(login, password), "auth_required": True,
                  "auth_require_tls": False}
    controller = Controller(handler, hostname=args.host, port=args.port, **kwargs)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    controller.start()
    try:
        stop.wait()
    finally:
        controller.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m agri.deploy.smtp_sink",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", required=True, help="JSON lines file of accepted messages")
    parser.add_argument("--refuse-domain", action="append", default=[],
                        help="recipients at this domain get 550 (repeatable)")
    parser.add_argument("--defer-domain", action="append", default=[],
                        help="recipients at this domain get 451 (repeatable)")
    parser.add_argument("--auth", help="USER:PASSWORD the server requires")
    serve(parser.parse_args(argv))


@dataclass
class SmtpSink:
    """A running sink process and what it accepted."""

    proc: subprocess.Popen
    host: str
    port: int
    out: Path
    auth: str | None = None
    refuse: tuple[str, ...] = ()
    _stopped: bool = field(default=False, repr=False)

    @property
    def url(self) -> str:
        login = f"{self.auth}@" if self.auth else ""
        return f"smtp://{login}{self.host}:{self.port}"

    @property
    def refused_address(self) -> str:
        """An address this server refuses with 550 (started with ``refuse``)."""
        if not self.refuse:
            raise ValueError("this SMTP sink refuses no domain: start it with refuse=(...)")
        return f"nobody@{self.refuse[0]}"

    def records(self) -> list[dict]:
        if not self.out.exists():
            return []
        lines = self.out.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.endswith("}")]

    def messages(self) -> list[EmailMessage]:
        parser = BytesParser(policy=policy.default)
        return [parser.parsebytes(base64.b64decode(r["data"])) for r in self.records()]

    def accepted_times(self) -> list[float]:
        return [r["accepted_at"] for r in self.records()]

    def wait_for(self, n: int, timeout: float = 30.0) -> list[EmailMessage]:
        """At least ``n`` messages accepted; TimeoutError naming the count when not."""
        deadline = time.monotonic() + timeout
        while len(self.records()) < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(self.records())} of {n} messages accepted after "
                                   f"{timeout:g} s")
            time.sleep(0.05)
        return self.messages()

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(folder: Path, *, port: int | None = None, refuse: tuple[str, ...] = (),
                 defer: tuple[str, ...] = (), auth: str | None = None) -> SmtpSink:
    """Start the sink as a process writing under ``folder``; returns once it
    accepts connections."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    port = port or _free_port()
    out = folder / f"smtp-{port}.jsonl"
    args = [sys.executable, "-m", "agri.deploy.smtp_sink", "--port", str(port),
            "--out", str(out)]
    for domain in refuse:
        args += ["--refuse-domain", domain]
    for domain in defer:
        args += ["--defer-domain", domain]
    if auth:
        args += ["--auth", auth]
    with open(folder / f"smtp-{port}.log", "ab") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=log, env=dict(os.environ))
    sink = SmtpSink(proc, "127.0.0.1", port, out, auth, tuple(refuse))
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return sink
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                sink.stop()
                raise RuntimeError("the SMTP sink did not start: see "
                                   f"{folder / f'smtp-{port}.log'}") from None
            time.sleep(0.05)


if __name__ == "__main__":
    main()
