"""A local stand-in for the LINE Messaging API, as a process of its own,
that checks each request as the API reference documents it and records it:

    python tests/line_api_server.py --port P --token T --out requests.jsonl

POST /v2/bot/message/push: ``Authorization: Bearer T`` (else 401),
``Content-Type: application/json``, ``to`` a user id (U + 32 hex digits),
``messages`` 1 to 5 text messages of 1 to 5000 characters; an optional
``X-Line-Retry-Key`` must be a UUID, and a key already accepted answers 409.
POST /v2/bot/message/reply: ``replyToken`` (each usable once), messages as
above, no retry key (400). 200 answers ``{"sentMessages": [{"id", "quoteToken"}]}``,
errors ``{"message": ..., "details": [...]}``.

POST /_test/fail ``{"status": 429, "count": 2}`` makes the next pushes
answer that status (the test's lever for 429 and 5xx); it is not recorded.
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

USER_ID = re.compile(r"^U[0-9a-f]{32}$")
MAX_MESSAGES = 5
MAX_TEXT = 5000
MAX_BODY = 1024 * 1024


class State:
    def __init__(self, token: str, out: str):
        self.token, self.out = token, out
        self.lock = threading.Lock()
        self.retry_keys: set[str] = set()
        self.reply_tokens: set[str] = set()
        self.fail: list[int] = []
        self.ids = itertools.count(100_000_000_000_000)

    def record(self, entry: dict) -> None:
        with self.lock, open(self.out, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry, ensure_ascii=False) + "\n")


def _messages_errors(messages) -> list[dict]:
    if not isinstance(messages, list) or not 1 <= len(messages) <= MAX_MESSAGES:
        return [{"message": f"Size must be between 1 and {MAX_MESSAGES}",
                 "property": "messages"}]
    errors = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("type") != "text":
            errors.append({"message": "Must be one of the following values: [text]",
                           "property": f"messages[{i}].type"})
        elif not isinstance(m.get("text"), str) or not 1 <= len(m["text"]) <= MAX_TEXT:
            errors.append({"message": f"Length must be between 1 and {MAX_TEXT}",
                           "property": f"messages[{i}].text"})
    return errors


class Handler(BaseHTTPRequestHandler):
    state: State
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # noqa: A002 - quiet
        pass

    def _answer(self, status: int, body: dict, **headers: str) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(min(length, MAX_BODY))
        if self.path == "/_test/fail":
            spec = json.loads(raw)
            with self.state.lock:
                self.state.fail = [int(spec["status"])] * int(spec.get("count", 1))
            return self._answer(200, {})
        status, body, headers = self._check(raw)
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = raw.decode("utf-8", "replace")
        self.state.record({"at": time.time(), "method": "POST", "path": self.path,
                           "headers": {k.lower(): v for k, v in self.headers.items()},
                           "body": parsed, "status": status})
        self._answer(status, body, **headers)

    def do_GET(self):  # noqa: N802
        self._answer(404, {"message": "Not found"})

    def _check(self, raw: bytes) -> tuple[int, dict, dict]:
        if self.path not in ("/v2/bot/message/push", "/v2/bot/message/reply"):
            return 404, {"message": "Not found"}, {}
        if self.headers.get("Authorization") != f"Bearer {self.state.token}":
            return 401, {"message": "Authentication failed. Confirm that the access token "
                                    "in the authorization header is valid."}, {}
        if (self.headers.get("Content-Type") or "").split(";")[0].strip() != \
                "application/json":
            return 400, {"message": "Content-Type must be application/json"}, {}
        try:
            body = json.loads(raw)
        except ValueError:
            return 400, {"message": "The request body has 1 error(s)"}, {}
        if not isinstance(body, dict):
            return 400, {"message": "The request body has 1 error(s)"}, {}
        key = self.headers.get("X-Line-Retry-Key")
        push = self.path.endswith("/push")
        if key is not None:
            if not push:
                return 400, {"message": "X-Line-Retry-Key is not supported by this API"}, {}
            try:
                uuid.UUID(key)
            except ValueError:
                return 400, {"message": "The value of the X-Line-Retry-Key header is "
                                        "invalid"}, {}
        errors = _messages_errors(body.get("messages"))
        if push and not (isinstance(body.get("to"), str) and USER_ID.match(body["to"])):
            errors.append({"message": "Invalid user ID", "property": "to"})
        if not push and not (isinstance(body.get("replyToken"), str) and body["replyToken"]):
            errors.append({"message": "Must not be empty", "property": "replyToken"})
        if errors:
            return 400, {"message": f"The request body has {len(errors)} error(s)",
                         "details": errors}, {}
        with self.state.lock:
            if push and self.state.fail:
                status = self.state.fail.pop(0)
                return status, {"message": "The API rate limit has been exceeded. Try again "
                                           "later." if status == 429 else
                                "An error occurred in the internal server."}, {}
            if key is not None and key in self.state.retry_keys:
                return 409, {"message": "The retry key is already accepted"}, {
                    "x_line_accepted_request_id": str(uuid.uuid4())}
            if not push:
                if body["replyToken"] in self.state.reply_tokens:
                    return 400, {"message": "Invalid reply token"}, {}
                self.state.reply_tokens.add(body["replyToken"])
            if key is not None:
                self.state.retry_keys.add(key)
            sent = [{"id": str(next(self.state.ids)), "quoteToken": uuid.uuid4().hex}
                    for _ in body["messages"]]
        return 200, {"sentMessages": sent}, {"x_line_request_id": str(uuid.uuid4())}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    Handler.state = State(args.token, args.out)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
