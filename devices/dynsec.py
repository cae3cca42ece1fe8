"""A client of Mosquitto's dynamic security plugin, over its control topic.

The plugin (``mosquitto_dynamic_security.so``, shipped with Mosquitto 2) keeps
clients, roles and ACLs in its own file and takes changes as JSON commands
published to ``$CONTROL/dynamic-security/v1`` by an account with the plugin's
admin role; each answer comes back on the ``/response`` topic, matched by the
``correlationData`` we send. Changes take effect at once on a running broker:
a disabled or deleted client that is connected is disconnected.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Mapping

import orjson
from paho.mqtt.client import Client

from agri import mqtt

logger = logging.getLogger(__name__)

CONTROL_TOPIC = "$CONTROL/dynamic-security/v1"
RESPONSE_TOPIC = CONTROL_TOPIC + "/response"
TIMEOUT_S = 10.0
COMMANDS_PER_MESSAGE = 100  # large syncs go as several control messages


class DynSecError(RuntimeError):
    """The broker's dynamic security plugin refused a command or did not answer."""


class NotFound(DynSecError):
    """The client or role named in a command does not exist on the broker."""


class DynSec:
    """A connection to the broker as its dynamic-security admin.

    Use as a context manager; ``run`` sends commands and returns their
    ``data`` in order, raising :class:`DynSecError` on the first refusal.
    """

    def __init__(self, admin_url: str, *, client_id: str = "") -> None:
        self._url = admin_url
        self._client: Client = mqtt.make_client(admin_url, client_id=client_id)
        self._lock = threading.Lock()
        self._pending: dict[str, tuple[threading.Event, list]] = {}
        self._subscribed = threading.Event()
        self._client.on_message = self._on_message
        self._client.on_subscribe = lambda *_: self._subscribed.set()

    def __enter__(self) -> DynSec:
        connected = threading.Event()
        refused: list[object] = []

        def on_connect(client, userdata, flags, reason, properties) -> None:
            if reason.is_failure:
                refused.append(reason)
            connected.set()

        self._client.on_connect = on_connect
        address = mqtt.parse_url(self._url)
        try:
            mqtt.connect(self._client)
        except OSError as exc:
            raise DynSecError(
                f"cannot reach the MQTT broker at {address.host}:{address.port} ({exc}); "
                "check AGRI_MQTT_URL and that the broker runs") from None
        self._client.loop_start()
        if not connected.wait(TIMEOUT_S) or refused:
            self._client.loop_stop()
            raise DynSecError(
                f"the broker refused the admin account {address.username!r} "
                f"({refused[0] if refused else 'no answer'}); AGRI_MQTT_URL must name the "
                "dynamic-security admin (mosquitto_ctrl dynsec init)")
        self._client.subscribe(RESPONSE_TOPIC, qos=1)
        if not self._subscribed.wait(TIMEOUT_S):
            self.__exit__(None, None, None)
            raise DynSecError("the broker did not confirm the control-topic subscription")
        return self

    def __exit__(self, *exc) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def _on_message(self, client, userdata, msg) -> None:
        try:
            # Text that is not UTF-8 (the plugin echoes names as stored) must
            # not lose the answer.
            responses = orjson.loads(msg.payload.decode("utf-8", "replace")).get(
                "responses", [])
        except (orjson.JSONDecodeError, AttributeError) as exc:
            logger.warning("unreadable dynamic-security response (%s, %d bytes): %r", exc,
                           len(msg.payload), msg.payload[-300:])
            return
        for response in responses:
            key = response.get("correlationData")
            with self._lock:
                waiting = self._pending.get(key)
            if waiting is not None:
                waiting[1].append(response)
                waiting[0].set()

    def run(self, *commands: Mapping[str, object], missing_ok: bool = False) -> list[object]:
        """Send ``commands``; their answers' ``data`` in order.

        ``missing_ok``: a command about a client or role that does not exist
        counts as done (for idempotent deletes)."""
        results: list[object] = []
        batch = list(commands)
        for start in range(0, len(batch), COMMANDS_PER_MESSAGE):
            results += self._run_batch(batch[start:start + COMMANDS_PER_MESSAGE], missing_ok)
        return results

    def _run_batch(self, commands: list[Mapping[str, object]], missing_ok: bool) -> list[object]:
        waits = []
        payload = []
        for command in commands:
            key = secrets.token_hex(8)
            event, box = threading.Event(), []
            with self._lock:
                self._pending[key] = (event, box)
            waits.append((key, command, event, box))
            payload.append({**command, "correlationData": key})
        self._client.publish(CONTROL_TOPIC, orjson.dumps({"commands": payload}), qos=1)
        results = []
        try:
            for _key, command, event, box in waits:
                if not event.wait(TIMEOUT_S):
                    raise DynSecError(f"the broker did not answer {command['command']!r} in "
                                      f"{TIMEOUT_S:.0f} s; is the dynamic security plugin loaded?")
                response = box[0]
                error = response.get("error")
                if error:
                    if missing_ok and _is_missing(error):
                        results.append(None)
                        continue
                    kind = NotFound if _is_missing(error) else DynSecError
                    raise kind(f"{command['command']} {_subject(command)}: {error}")
                results.append(response.get("data"))
        finally:
            with self._lock:
                for key, *_ in waits:
                    self._pending.pop(key, None)
        return results


def _is_missing(error: str) -> bool:
    return "not found" in error.lower()


def _subject(command: Mapping[str, object]) -> str:
    return str(command.get("username") or command.get("rolename") or "")


def acl(acltype: str, topic: str, *, allow: bool = True, priority: int = 0) -> dict:
    """One ACL entry as the plugin takes it."""
    return {"acltype": acltype, "topic": topic, "allow": allow, "priority": priority}


def role_acls(data: Mapping[str, object] | None) -> set[tuple[str, str, bool]]:
    """The comparable content of a role as ``getRole`` answers it."""
    role = (data or {}).get("role", {})
    return {(a["acltype"], a["topic"], bool(a.get("allow"))) for a in role.get("acls", [])}
