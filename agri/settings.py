"""Settings of every service, read once from ``AGRI_*`` environment variables.

No other module reads ``os.environ``. When ``AGRI_DATABASE_URL`` or
``AGRI_MQTT_URL`` is unset, the servers of the embedded stack started by
``agri up`` under ``AGRI_HOME`` are used (their addresses and generated
passwords are in ``AGRI_HOME/stack.json``).

In production each process gets its own ``AGRI_DATABASE_URL``: the migration
owner for ``agri db migrate`` and the CLI, a login of the ingest or API role
for those services (see ``deploy/db_roles.py``). ``AGRI_DATABASE_READ_URL``
names a streaming replica the API reads from.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import orjson
from pydantic import Field, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class SettingsError(RuntimeError):
    """A setting is missing or wrong; the message names the variable to set."""


class ProfilesSettings(BaseSettings):
    """AGRI_PROFILES_DIR alone: devices/profiles.py reads it when it is
    imported, before the other settings are read (and whatever they hold)."""

    model_config = SettingsConfigDict(env_prefix="AGRI_", frozen=True, extra="ignore")

    profiles_dir: Path | None = Field(
        default=None, description="a folder of extra device profiles and metrics (TOML), "
                                  "read after the shipped ones")


class Settings(ProfilesSettings):
    model_config = SettingsConfigDict(env_prefix="AGRI_", frozen=True, extra="ignore")

    home: Path = Field(default=Path(".agri"), description="state directory of the embedded stack")
    database_url: str | None = None
    database_read_url: str | None = Field(
        default=None, description="a streaming replica for the API's reads")
    mqtt_url: str | None = Field(default=None, description="mqtt://user:password@host:port")
    # Ingest.
    ingest_worker: str = Field(default="1", pattern=r"^[A-Za-z0-9_-]{1,32}$",
                               description="stable id of this ingest worker (MQTT client id)")
    ingest_batch_readings: int = Field(default=20_000, ge=1)
    ingest_batch_seconds: float = Field(default=0.2, gt=0)
    ingest_session_expiry_s: int = Field(default=7 * 86_400, ge=0)
    ingest_receive_maximum: int = Field(default=20_000, ge=1, le=65_535)
    max_payload_bytes: int = Field(default=256 * 1024, ge=64)
    max_age_days: float = Field(default=35.0, gt=0,
                                description="oldest reading accepted, days before arrival")
    max_future_s: float = Field(default=600.0, ge=0,
                                description="readings ahead of server time accepted, seconds")
    # API.
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=0, le=65_535)
    access_log_days: int = Field(default=90, ge=1,
                                 description="days the API keeps its access log")
    public_url: str | None = Field(
        default=None, pattern=r"^https?://[^/\s]+(/\S*)?$",
        description="the address people open the pages at (sign-in links and QR codes); "
                    "default http://API_HOST:API_PORT")
    max_upload_mb: int = Field(default=2048, ge=1,
                               description="largest image upload (POST /api/v1/flights), MB")
    # Alerts (alerts/): where messages go.
    smtp_url: str | None = Field(
        default=None, pattern=r"^smtps?://([^@/\s]+@)?[^@/\s]+(:\d+)?/?$",
        description="mail server for alerts: smtp://[user:password@]host[:port] (STARTTLS "
                    "when the server offers it) or smtps:// (TLS from the start)")
    smtp_from: str = Field(default="agri@localhost", pattern=r"^[^@\s]{1,64}@[^@\s]{1,255}$",
                           description="sender address of alert emails")
    line_channel_token: str | None = Field(
        default=None, description="LINE Messaging API channel access token (alerts by LINE)")
    line_channel_secret: str | None = Field(
        default=None, description="LINE channel secret: checks the webhook's signatures")
    line_api_url: str = Field(default="https://api.line.me", pattern=r"^https?://[^/\s]+/?$",
                              description="the Messaging API's address")
    raw_retention_days: int | None = Field(default=None, ge=1,
                                           description="drop raw readings older than this")
    compress_after_days: float | None = Field(
        default=None, gt=0,
        description="compress raw readings older than this (editions with compression only)")

    @field_validator("compress_after_days")
    @classmethod
    def _compress_after_oldest_accepted(cls, value: float | None,
                                        info: ValidationInfo) -> float | None:
        max_age = info.data.get("max_age_days")
        if value is not None and max_age is not None and value <= max_age:
            raise ValueError(
                f"must be more than AGRI_MAX_AGE_DAYS ({max_age:g}), the oldest reading "
                f"ingest accepts: ingest cannot write into compressed chunks")
        return value

    @property
    def site_url(self) -> str:
        """Where people reach the pages: AGRI_PUBLIC_URL, else the API's own
        address (never the Host header a request names)."""
        return (self.public_url or f"http://{self.api_host}:{self.api_port}").rstrip("/")

    @cached_property
    def stack_file(self) -> Path:
        return self.home / "stack.json"

    def _stack(self) -> dict:
        try:
            return orjson.loads(self.stack_file.read_bytes())
        except FileNotFoundError:
            return {}

    def db_url(self, role: str = "owner") -> str:
        """The database URL for ``role`` ("owner", the migration owner, or a
        service: "ingest", "api"): AGRI_DATABASE_URL when set (in production
        each process gets its own), else the embedded stack's login for it."""
        if self.database_url:
            return self.database_url
        stack = self._stack()
        url = stack.get("database_urls", {}).get(role)
        if not url and role == "owner":
            url = stack.get("database_url")
        if not url and stack.get("database_url"):
            raise SettingsError(
                f"the embedded stack under AGRI_HOME={self.home} has no database login for "
                f"{role!r}: restart it with `agri up`, or set AGRI_DATABASE_URL")
        if not url:
            raise SettingsError(
                f"no database: set AGRI_DATABASE_URL, or start the embedded stack with "
                f"`agri up` (AGRI_HOME={self.home})")
        return url

    def db_read_url(self) -> str | None:
        """The replica the API reads from (AGRI_DATABASE_READ_URL), or None."""
        return self.database_read_url or None

    def broker_url(self, account: str = "ingest") -> str:
        """The MQTT URL for one of the platform's service accounts."""
        if self.mqtt_url:
            return self.mqtt_url
        urls = self._stack().get("mqtt_urls", {})
        if account not in urls:
            raise SettingsError(
                f"no MQTT broker: set AGRI_MQTT_URL, or start the embedded stack with "
                f"`agri up` (AGRI_HOME={self.home})")
        return urls[account]


def load() -> Settings:
    """Build the settings once at start-up; fails fast naming the variable."""
    from pydantic import ValidationError

    try:
        return Settings()
    except ValidationError as exc:
        names = ", ".join("AGRI_" + str(e["loc"][0]).upper() for e in exc.errors())
        raise SettingsError(f"invalid setting {names}: {exc}") from None
