"""The ingest's view of the device registry: id -> profile, field, owner,
revoked or not, DevEUI -> id for ChirpStack, and each field's owner and
municipality with the regions of each device's owner (which fields a drone
may serve). Reloaded periodically and on a miss."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import psycopg

from agri.devices.profiles import PROFILES, Metric, Profile
from agri.devices.topics import Format, tts_application
from agri.ingest.validate import profile_metrics

logger = logging.getLogger(__name__)

REFRESH_S = 10.0
MISS_REFRESH_S = 1.0  # at most this often on an unknown id


@dataclass(frozen=True, slots=True)
class KnownDevice:
    id: str
    profile: Profile
    metrics: dict[str, Metric]
    revoked: bool
    field_id: str | None = None
    owner: str | None = None
    owner_regions: frozenset[str] = frozenset()  # municipalities its owner serves
    # (bridge name, format, application as its topics name it) of a LoRaWAN
    # device behind a bridge (devices/bridges.py); its uplinks come only so.
    bridge: tuple[str, Format, str] | None = None


class Directory:
    def __init__(self, connect) -> None:
        self._connect = connect
        self._conn: psycopg.Connection | None = None
        self._by_id: dict[str, KnownDevice] = {}
        self._by_eui: dict[str, str] = {}
        self._fields: dict[str, tuple[str | None, str]] = {}  # id -> (owner, municipality)
        self._loaded_at = -1e9
        self._metrics = {name: profile_metrics(p) for name, p in PROFILES.items()}

    def lookup(self, key: str, *, dev_eui: bool = False) -> KnownDevice | None:
        now = time.monotonic()
        if now - self._loaded_at > REFRESH_S:
            self.reload()
        device = self._find(key, dev_eui)
        if device is None and now - self._loaded_at > MISS_REFRESH_S:
            self.reload()
            device = self._find(key, dev_eui)
        return device

    def field(self, field_id: str) -> tuple[str | None, str] | None:
        """(owner, municipality) of a field, None when there is no such field."""
        if field_id not in self._fields and time.monotonic() - self._loaded_at > \
                MISS_REFRESH_S:
            self.reload()
        return self._fields.get(field_id)

    def _find(self, key: str, dev_eui: bool) -> KnownDevice | None:
        if dev_eui:
            key = self._by_eui.get(key, "")
        return self._by_id.get(key)

    def reload(self) -> None:
        """Read the registry; while the database is away, keep trying (ingest
        cannot commit anyway, and guessing would reject good devices)."""
        delay = 0.2
        while True:
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = self._connect()
                rows = self._conn.execute(
                    "SELECT d.id, d.profile, d.revoked_at IS NOT NULL, d.dev_eui, d.field_id, "
                    "d.owner, coalesce(u.regions, '{}'), b.name, b.kind, b.application, "
                    "b.tenant FROM devices d "
                    "LEFT JOIN users u ON u.name = d.owner "
                    "LEFT JOIN lorawan_bridges b ON b.name = d.bridge").fetchall()
                fields = self._conn.execute(
                    "SELECT id, owner, municipality FROM fields").fetchall()
                self._conn.rollback()
                break
            except psycopg.OperationalError as exc:
                logger.warning("device registry unavailable (%s); retrying", exc)
                if self._conn is not None:
                    self._conn.close()
                self._conn = None
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
        self._by_id = {
            r[0]: KnownDevice(r[0], PROFILES[r[1]], self._metrics[r[1]], r[2], r[4], r[5],
                              frozenset(r[6]), _bridge(*r[7:11]))
            for r in rows if r[1] in PROFILES
        }
        self._by_eui = {r[3]: r[0] for r in rows if r[3]}
        self._fields = {f: (owner, municipality) for f, owner, municipality in fields}
        self._loaded_at = time.monotonic()


def _bridge(name: str | None, kind: str | None, application: str | None,
            tenant: str | None) -> tuple[str, Format, str] | None:
    if name is None or application is None:
        return None
    if kind == "tts":
        return name, Format.TTS_UPLINK, tts_application(application, tenant)
    return name, Format.CHIRPSTACK_UPLINK, application
