"""schemathesis against the real API's /openapi.json: generated requests
(valid, invalid, NUL bytes included) for every operation, as an admin and
as a farmer, find no server error and no response outside its schema."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from agri.api.accounts import add_user
from tests.fix_stack import api_server

CHECKS = "not_a_server_error,response_schema_conformance,content_type_conformance"


@pytest.fixture(scope="module")
def linked_api(platform):
    """The API as a site with LINE set up, so that the webhook's signature
    checks are fuzzed too (without it the webhook answers 503 by design)."""
    with api_server(platform, AGRI_LINE_CHANNEL_SECRET="fuzz-channel-secret") as base:
        yield base


@pytest.fixture(scope="module")
def farmer_token(platform) -> str:
    with psycopg.connect(platform.db_url) as conn:
        return add_user(conn, name="fuzz-farmer", role="farmer").token


def _run(api: str, token: str, tmp_path: Path, seed: int) -> subprocess.CompletedProcess:
    cli = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert cli, "schemathesis is a dev dependency"
    return subprocess.run(
        [cli, "run", f"{api}/openapi.json", "--checks", CHECKS,
         "--max-examples", "8", "--seed", str(seed), "--workers", "2",
         "--generation-allow-x00", "true", "--phases", "examples,coverage,fuzzing",
         "--request-timeout", "20", "-H", f"Authorization: Bearer {token}",
         # Uploads and imports write files: their hostile inputs have their own
         # tests. /healthz answers 503 by design while another test's ingest
         # worker is away (tests/test_health.py).
         "--exclude-path-regex", r"^/(healthz|api/v1/(flights|fields/import))$",
         "--report", "junit", "--report-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=900)


@pytest.mark.parametrize("who", ["admin", "farmer"])
def test_no_server_errors_and_no_schema_violations(linked_api, platform, farmer_token, who,
                                                   tmp_path):
    token = platform.admin_token if who == "admin" else farmer_token
    done = _run(linked_api, token, tmp_path, seed=8 if who == "admin" else 9)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
