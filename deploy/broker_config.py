"""The Mosquitto configuration, rendered from one template for `agri up` and
for production (``deploy/mosquitto/production.conf``)."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template

TEMPLATE = resources.files("agri.deploy") / "mosquitto" / "mosquitto.conf.template"
PLUGIN_NAME = "mosquitto_dynamic_security.so"
# Debian and Ubuntu, then the eclipse-mosquitto image and source builds.
PLUGIN_DIRS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib",
               "/usr/local/lib")
MQTT_PORT = 1883
MQTTS_PORT = 8883

# Sized for a day of backlog of a prefecture (tens of thousands of sensors at
# 10-minute intervals, a few hundred messages/s -> tens of millions a day).
MAX_QUEUED_MESSAGES = 50_000_000
MAX_INFLIGHT_MESSAGES = 20_000
MAX_PACKET_BYTES = 4 * 1024 * 1024  # above ingest's payload limit, so ingest can reject and record
AUTOSAVE_INTERVAL_S = 5


class BrokerConfigError(RuntimeError):
    """The broker cannot be configured as asked; the message says what to install or set."""


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """PEM files of a TLS listener: the CA that signed the server's certificate,
    the certificate and its key."""

    cafile: Path
    certfile: Path
    keyfile: Path


def plugin_path() -> str:
    for folder in PLUGIN_DIRS:
        candidate = Path(folder) / PLUGIN_NAME
        if candidate.exists():
            return str(candidate)
    raise BrokerConfigError(
        f"{PLUGIN_NAME} not found in {', '.join(PLUGIN_DIRS)}: install Mosquitto 2 "
        "(Debian package mosquitto), which ships the dynamic security plugin")


def render(*, bind: str, port: int, data_dir: str, dynsec_file: str, plugin: str,
           tls: TlsFiles | None = None, tls_port: int = MQTTS_PORT, plain: bool = True,
           max_queued_messages: int = MAX_QUEUED_MESSAGES,
           autosave_interval: int = AUTOSAVE_INTERVAL_S) -> str:
    """The configuration text. ``bind`` is the address both listeners use;
    ``plain`` False leaves only the TLS listener."""
    listeners = []
    if plain:
        listeners.append(f"listener {port} {bind}")
    if tls is not None:
        listeners += [f"listener {tls_port} {bind}", f"cafile {tls.cafile}",
                      f"certfile {tls.certfile}", f"keyfile {tls.keyfile}",
                      "tls_version tlsv1.2"]
    if not listeners:
        raise BrokerConfigError("no listener: keep the plain one or give TLS files")
    return Template(TEMPLATE.read_text()).substitute(
        plugin=plugin, dynsec_file=dynsec_file, listeners="\n".join(listeners),
        data_dir=data_dir.rstrip("/"), autosave_interval=autosave_interval,
        max_queued_messages=max_queued_messages, max_inflight_messages=MAX_INFLIGHT_MESSAGES,
        max_packet_bytes=MAX_PACKET_BYTES)


def production() -> str:
    """``deploy/mosquitto/production.conf``: the rendering for the container
    image, with the operator's certificate mounted under /mosquitto/tls."""
    return render(bind="0.0.0.0", port=MQTT_PORT, data_dir="/mosquitto/data",  # noqa: S104
                  dynsec_file="/mosquitto/data/dynamic-security.json",
                  plugin="/usr/lib/mosquitto_dynamic_security.so",
                  tls=TlsFiles(Path("/mosquitto/tls/ca.crt"), Path("/mosquitto/tls/server.crt"),
                               Path("/mosquitto/tls/server.key")))
