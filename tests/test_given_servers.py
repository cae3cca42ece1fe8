"""The production path as an operator runs it, on servers the operator gives:
PostgreSQL with TimescaleDB and Mosquitto started here from the files in
deploy/ (not through `agri up`), the platform's processes pointed at them with
AGRI_DATABASE_URL and AGRI_MQTT_URL only. Also the deploy files themselves:
compose, Containerfile, .dockerignore and systemd units follow the same
steps."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson
import psycopg
import pytest
from psycopg import sql

from agri import mqtt
from agri.devices.topics import senml_topic, shared
from tests.fix_stack import api_answers, wait_for

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"


def _cli_has_broker_sync() -> bool:
    from agri.cli import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    return "broker" in commands


# ---------------------------------------------------------------------------------------
# The deploy files.

def parse_compose(text: str) -> dict:
    """The subset of YAML compose.yaml uses (block mappings and lists, flow
    mappings and lists, literal blocks, anchors and aliases of scalars)."""
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    anchors: dict[str, str] = {}

    def scalar(raw: str):
        raw = raw.strip()
        if raw.startswith("&"):
            name, _, value = raw[1:].partition(" ")
            anchors[name] = scalar(value)
            return anchors[name]
        if raw.startswith("*"):
            return anchors[raw[1:]]
        if raw.startswith("{") and raw.endswith("}"):
            return {k.strip(): scalar(v) for k, v in
                    (item.split(":", 1) for item in raw[1:-1].split(",") if item.strip())}
        if raw.startswith("[") and raw.endswith("]"):
            return [scalar(v) for v in raw[1:-1].split(",") if v.strip()]
        if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "\"'":
            return raw[1:-1]
        return raw

    def indent(line: str) -> int:
        return len(line) - len(line.lstrip(" "))

    def block(i: int, level: int):
        if lines[i].lstrip().startswith("- "):
            out_list = []
            while i < len(lines) and indent(lines[i]) == level and \
                    lines[i].lstrip().startswith("- "):
                item = lines[i].lstrip()[2:]
                if item.strip() == "|":
                    i, text_value = literal(i + 1, level)
                    out_list.append(text_value)
                else:
                    out_list.append(scalar(item))
                    i += 1
            return i, out_list
        out: dict = {}
        while i < len(lines) and indent(lines[i]) == level:
            key, _, rest = lines[i].strip().partition(":")
            rest = rest.strip()
            if rest and rest != "|":
                out[key] = scalar(rest)
                i += 1
            elif rest == "|":
                i, out[key] = literal(i + 1, level)
            elif i + 1 < len(lines) and indent(lines[i + 1]) > level:
                i, out[key] = block(i + 1, indent(lines[i + 1]))
            else:
                out[key] = None
                i += 1
        return i, out

    def literal(i: int, level: int):
        body = []
        while i < len(lines) and indent(lines[i]) > level:
            body.append(lines[i])
            i += 1
        margin = indent(body[0]) if body else 0
        return i, "\n".join(line[margin:] for line in body)

    return block(0, 0)[1]


@pytest.fixture(scope="module")
def compose() -> dict:
    return parse_compose((DEPLOY / "compose.yaml").read_text())


def test_compose_migrates_before_ingest_and_api(compose):
    services = compose["services"]
    assert services["migrate"]["command"] == ["agri", "db", "migrate"]
    workers = [name for name in services if name.startswith("ingest")]
    assert workers, "no ingest service"
    for name in [*workers, "api"]:
        depends = services[name]["depends_on"]
        assert depends["migrate"] == {"condition": "service_completed_successfully"}, name
    assert services["migrate"]["depends_on"]["db"] == {"condition": "service_healthy"}
    assert "healthcheck" in services["db"]
    assert services["broker"]["depends_on"]["broker-init"] == {
        "condition": "service_completed_successfully"}
    init = services["broker-init"]["command"][0]
    assert "mosquitto_ctrl dynsec init" in init and "exit 0" in init  # kept when present


def test_compose_broker_paths_are_those_of_the_production_config(compose):
    from agri.deploy import broker_config

    conf = dict(line.split(" ", 1) for line in broker_config.production().splitlines()
                if line and not line.startswith("#") and " " in line)
    init = compose["services"]["broker-init"]["command"][0]
    assert f"f={conf['plugin_opt_config_file']}" in init
    mounts = compose["services"]["broker"]["volumes"]
    assert "./mosquitto/production.conf:/mosquitto/config/mosquitto.conf:ro" in mounts
    assert "mosquitto-data:/mosquitto/data" in mounts
    assert any(m.endswith(":/mosquitto/tls:ro") for m in mounts)
    for key in ("cafile", "certfile", "keyfile"):
        assert conf[key].startswith("/mosquitto/tls/"), key
    assert conf["persistence_location"].rstrip("/") == "/mosquitto/data"


def test_compose_gives_each_service_its_own_least_privilege_login(compose):
    services = compose["services"]
    owner = services["migrate"]["environment"]["AGRI_DATABASE_URL"]
    assert owner.startswith("postgresql://agri:")
    ingest = services["ingest-1"]["environment"]["AGRI_DATABASE_URL"]
    api = services["api"]["environment"]["AGRI_DATABASE_URL"]
    assert ingest.startswith("postgresql://agri_ingest_login:")
    assert api.startswith("postgresql://agri_api_login:")
    # The API gets the broker's address for /healthz, never an account.
    assert "@" not in services["api"]["environment"]["AGRI_MQTT_URL"]
    logins = services["db-logins"]["command"][0]
    assert "IN ROLE %I" in logins and "NOSUPERUSER" in logins


def test_compose_publishes_ports_only_on_the_operator_address(compose):
    text = (DEPLOY / "compose.yaml").read_text()
    published = []
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            published.append(port)
            assert port.startswith("${AGRI_BIND:-127.0.0.1}:"), (name, port)
            assert port.count(":") >= 3, f"{name}: {port} must name host address and port"
    assert published
    # 0.0.0.0 only as the API's address inside its own container.
    for line in text.splitlines():
        if "0.0.0.0" in line and not line.lstrip().startswith("#"):
            assert line.strip() == 'AGRI_API_HOST: "0.0.0.0"', line
    for name in ("db", "migrate", "db-logins", "broker-init", "ingest-1"):
        assert "ports" not in compose["services"][name], name
    # No secret has a default.
    assert not re.search(r"PASSWORD:-", text)


def test_image_runs_unprivileged_and_copies_no_local_state():
    containerfile = (DEPLOY / "Containerfile").read_text()
    users = re.findall(r"^USER\s+(\S+)", containerfile, re.M)
    assert users and users[-1].split(":")[0] not in ("root", "0")
    ignore = {ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines()
              if ln.strip() and not ln.startswith("#")}
    for entry in (".agri/", ".venv/", ".git/", "**/__pycache__/", ".pytest_cache/",
                  ".ruff_cache/"):
        assert entry in ignore, entry
    assert "COPY . ." not in containerfile


def _unit(name: str) -> dict[str, list[str]]:
    entries: dict[str, list[str]] = {}
    for line in (DEPLOY / "systemd" / name).read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            entries.setdefault(key.strip(), []).append(value.strip())
    return entries


def test_systemd_units_migrate_first_and_keep_secrets_apart():
    migrate = _unit("agri-migrate.service")
    assert migrate["Type"] == ["oneshot"] and migrate["RemainAfterExit"] == ["yes"]
    assert migrate["ExecStart"][0].endswith("agri db migrate")
    env_files = set(migrate["EnvironmentFile"])
    for name in ("agri-ingest@.service", "agri-api.service"):
        unit = _unit(name)
        assert "agri-migrate.service" in " ".join(unit["Requires"]).split(), name
        assert "agri-migrate.service" in " ".join(unit["After"]).split(), name
        assert unit["DynamicUser"] == ["yes"], name
        assert len(unit["EnvironmentFile"]) == 1 and not env_files & set(unit["EnvironmentFile"])
        env_files |= set(unit["EnvironmentFile"])
        assert "--host" not in unit["ExecStart"][0] and "0.0.0.0" not in unit["ExecStart"][0]
    assert len(env_files) == 3


# ---------------------------------------------------------------------------------------
# Given servers, as an operator runs them.

@dataclass
class Given:
    base: Path
    owner_url: str
    ingest_url: str
    api_url: str
    admin_url: str
    tls_port: int
    ca: Path
    procs: list[subprocess.Popen] = field(default_factory=list)

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AGRI_")}
        env["AGRI_HOME"] = str(self.base / "no-embedded-stack")
        env.update(extra)
        return env

    def operator(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """`agri ...` as the operator runs it: the owner's database URL and the
        broker's admin account."""
        return subprocess.run([sys.executable, "-m", "agri.cli", *args],
                              env=self.env(AGRI_DATABASE_URL=self.owner_url,
                                           AGRI_MQTT_URL=self.admin_url),
                              capture_output=True, text=True, check=check, timeout=120)

    def start(self, name: str, args: list[str], **env: str) -> tuple[subprocess.Popen, Path]:
        log_path = self.base / f"{name}.log"
        with open(log_path, "ab") as log:
            proc = subprocess.Popen([sys.executable, "-m", "agri.cli", *args],
                                    env=self.env(**env), stdout=log, stderr=log)
        self.procs.append(proc)
        return proc, log_path


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _operator_certificate(folder: Path) -> tuple[Path, Path, Path]:
    """The operator's CA and server certificate (openssl, as an operator would)."""
    folder.mkdir()
    ca_key, ca, key, csr, cert = (folder / n for n in
                                  ("ca.key", "ca.crt", "server.key", "server.csr", "server.crt"))
    run = lambda *a: subprocess.run(["openssl", *a], check=True, capture_output=True)  # noqa: E731
    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", str(ca_key), "-out", str(ca), "-days", "2", "-subj", "/CN=operator CA")
    run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", str(key), "-out", str(csr), "-subj", "/CN=127.0.0.1")
    ext = folder / "ext.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
        "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(ext))
    return ca, cert, key


@pytest.fixture(scope="module")
def given() -> Iterator[Given]:
    from agri.deploy import broker_config
    from agri.deploy.servers import Postgres, as_service, free_port, give_to_service

    base = Path(tempfile.mkdtemp(prefix="agri-given-"))
    base.chmod(0o755)
    owner_pw, ingest_pw, api_pw, admin_pw = (os.urandom(12).hex() for _ in range(4))
    pg = Postgres(base / "pg", free_port(), owner_pw, base / "pg-conf")
    broker_proc = None
    state = None
    try:
        # 1. PostgreSQL with TimescaleDB preloaded (initdb as the service user).
        pg.init()
        pg.start()
        # 2. The broker: the operator's certificate, the dynamic security
        # plugin's file with an admin account, the production template
        # rendered for this machine's paths.
        ca, cert, key = _operator_certificate(base / "tls")
        give_to_service(key, mode=0o600)
        broker_dir = base / "broker"
        broker_dir.mkdir()
        give_to_service(broker_dir, mode=0o700)
        subprocess.run(as_service(["mkdir", "-m", "700", str(broker_dir / "data")]), check=True)
        dynsec = broker_dir / "dynamic-security.json"
        subprocess.run(as_service(["mosquitto_ctrl", "dynsec", "init", str(dynsec), "operator",
                                   admin_pw]), check=True, capture_output=True)
        port, tls_port = free_port(), free_port()
        conf = base / "mosquitto.conf"
        conf.write_text(broker_config.render(
            bind="127.0.0.1", port=port, data_dir=str(broker_dir / "data"),
            dynsec_file=str(dynsec), plugin=broker_config.plugin_path(),
            tls=broker_config.TlsFiles(ca, cert, key), tls_port=tls_port))
        with open(base / "mosquitto.log", "ab") as log:
            broker_proc = subprocess.Popen(as_service(["mosquitto", "-c", str(conf)]),
                                           stdout=log, stderr=log)
        wait_for(lambda: _port_open(port) or broker_proc.poll() is not None,
                 what="Mosquitto to listen")
        assert broker_proc.poll() is None, (base / "mosquitto.log").read_text()
        owner = pg.url
        state = Given(base, owner, owner.replace(f"agri:{owner_pw}@", f"given_ingest:{ingest_pw}@"),
                      owner.replace(f"agri:{owner_pw}@", f"given_api:{api_pw}@"),
                      f"mqtt://operator:{admin_pw}@127.0.0.1:{port}", tls_port, ca)
        yield state
    finally:
        for proc in (state.procs if state else []):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        if broker_proc is not None and broker_proc.poll() is None:
            broker_proc.terminate()
            broker_proc.wait(30)
        pg.stop()
        if not os.environ.get("AGRI_TEST_KEEP"):
            shutil.rmtree(base, ignore_errors=True)


def _create_logins(given: Given) -> None:
    """The service logins, as docs/operations.md has the operator create them."""
    with psycopg.connect(given.owner_url, autocommit=True) as conn:
        for url, group in ((given.ingest_url, "agri_ingest"), (given.api_url, "agri_api")):
            login, password = url.split("//", 1)[1].split("@", 1)[0].split(":", 1)
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {} IN ROLE {}").format(
                sql.Identifier(login), sql.Literal(password), sql.Identifier(group)))


class Device:
    """A device's MQTT connection over TLS with the operator's CA, client id = its id."""

    def __init__(self, given: Given, device_id: str, password: str, *,
                 client_id: str | None = None) -> None:
        self.connected = threading.Event()
        self.refused = threading.Event()
        self.disconnected = threading.Event()
        self.subacks: list[list[int]] = []
        url = f"mqtt://{device_id}:{password}@127.0.0.1:{given.tls_port}"
        self.client = mqtt.make_client(url, client_id=device_id if client_id is None
                                       else client_id)
        self.client.tls_set(ca_certs=str(given.ca))
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *_: self.disconnected.set()
        self.client.on_subscribe = lambda c, u, mid, reasons, p: self.subacks.append(
            [r.value for r in reasons])
        self.client.reconnect_delay_set(30, 60)
        mqtt.connect(self.client)
        self.client.loop_start()

    def _on_connect(self, client, userdata, flags, reason, properties) -> None:
        (self.refused if reason.is_failure else self.connected).set()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _readings(given: Given, device_id: str) -> int:
    with psycopg.connect(given.owner_url) as conn:
        return conn.execute("SELECT count(*) FROM readings WHERE device_id = %s",
                            (device_id,)).fetchone()[0]


@pytest.mark.skipif(not _cli_has_broker_sync(),
                    reason="waits on the broker accounts from the registry (agri broker sync)")
def test_operator_path_on_given_servers(given):
    # Migrate as the owner, then create the service logins.
    first = given.operator("db", "migrate").stdout
    assert "applied" in first and "006_mqtt_accounts.sql" in first
    _create_logins(given)
    # Ingest and the API as processes with their own least-privilege logins;
    # ingest is given the broker's admin account and makes its own from it.
    ingest, ingest_log = given.start("ingest", ["ingest", "--worker", "1"],
                                     AGRI_DATABASE_URL=given.ingest_url,
                                     AGRI_MQTT_URL=given.admin_url)
    wait_for(lambda: b"subscribed (" in ingest_log.read_bytes() or ingest.poll() is not None,
             what="ingest to subscribe")
    assert ingest.poll() is None, ingest_log.read_text()
    from agri.deploy.servers import free_port

    api_port = free_port()
    api, api_log = given.start("api", ["api", "--port", str(api_port)],
                               AGRI_DATABASE_URL=given.api_url)

    def api_up() -> bool:
        try:
            return api_answers(httpx.get(f"http://127.0.0.1:{api_port}/healthz", timeout=1))
        except httpx.HTTPError:
            return api.poll() is not None

    wait_for(api_up, what="the API to answer")
    assert api.poll() is None, api_log.read_text()

    added = orjson.loads(given.operator("devices", "add", "--id", "given-soil-1", "--profile",
                                        "soil", "--json").stdout)
    other = orjson.loads(given.operator("devices", "add", "--id", "given-soil-2", "--profile",
                                        "soil", "--json").stdout)
    device = Device(given, "given-soil-1", added["password"])
    try:
        wait_for(lambda: device.connected.is_set() or device.refused.is_set(),
                 what="the device to connect over TLS")
        assert device.connected.is_set()
        # Hostile: its own valid credentials cannot take ingest's share, and
        # another device's cannot take its client id or ingest's.
        device.client.subscribe([(shared("agri/v1/devices/+/+"), 1), ("#", 1)])
        wait_for(lambda: device.subacks, what="SUBACK")
        assert all(code >= 0x80 for code in device.subacks[0]), device.subacks
        for client_id in ("given-soil-1", "agri-ingest-1"):
            thief = Device(given, "given-soil-2", other["password"], client_id=client_id)
            wait_for(lambda t=thief: t.connected.is_set() or t.refused.is_set(),
                     what="the broker to answer a stolen client id")
            assert thief.refused.is_set() and not thief.connected.is_set(), client_id
            thief.close()
        assert not device.disconnected.is_set()
        now = int(time.time())
        for k in range(10):
            info = device.client.publish(senml_topic("given-soil-1"), orjson.dumps(
                [{"bt": now - 600 * k, "n": "soil_moisture", "u": "%", "v": 30 + k}]), qos=1)
            info.wait_for_publish(10)
        wait_for(lambda: _readings(given, "given-soil-1") == 10, what="10 readings stored")
        # Revoked: its live connection is ended and it cannot come back.
        out = given.operator("devices", "revoke", "given-soil-1").stdout
        assert "revoked" in out
        wait_for(device.disconnected.is_set, what="the revoked device to be disconnected")
    finally:
        device.close()
    again = Device(given, "given-soil-1", added["password"])
    try:
        wait_for(lambda: again.connected.is_set() or again.refused.is_set(),
                 what="the broker to answer a revoked device")
        assert again.refused.is_set() and not again.connected.is_set()
    finally:
        again.close()
    # The broker and the registry agree; sync says so and changes nothing.
    synced = json.loads(given.operator("broker", "sync", "--json").stdout)
    assert not any(synced.values()), synced
    assert _readings(given, "given-soil-1") == 10
    assert ingest.poll() is None and api.poll() is None

