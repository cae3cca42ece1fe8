#!/usr/bin/env bash
# Whole set-up on a Debian 12 machine, safe to run again: system packages and
# the TimescaleDB build (install-debian.sh), then the Python environment in
# .venv with the platform installed in it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/install-debian.sh
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
stamp=.venv/.agri-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[dev]'
  echo "$want" > "$stamp"
fi
echo "[setup] ready: .venv/bin/agri"
