#!/usr/bin/env bash
# Installs what the platform needs on a Debian 12 machine; safe to run twice.
#
#   PostgreSQL 15, its server headers and cmake (from Debian), Mosquitto 2,
#   Chromium (browser tests), and the TimescaleDB extension built from the
#   `timescaledb` source package of Debian trixie (Apache-2 build).
#
# The trixie source is fetched through a private apt configuration under
# $AGRI_BUILD_DIR so that the machine's own package sources stay untouched.
# Nothing is started here: `agri up` and the tests run their own servers.
set -euo pipefail

BUILD_DIR=${AGRI_BUILD_DIR:-/var/tmp/agri-build}
PG_MAJOR=15
PG_CONFIG=/usr/lib/postgresql/$PG_MAJOR/bin/pg_config
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo

log() { printf '[install] %s\n' "$*"; }

need_pkgs=()
for p in postgresql-$PG_MAJOR postgresql-server-dev-$PG_MAJOR cmake gcc make dpkg-dev \
         libssl-dev mosquitto mosquitto-clients python3-venv chromium fonts-noto-cjk; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need_pkgs+=("$p")
done
if [ ${#need_pkgs[@]} -gt 0 ]; then
  log "installing Debian packages: ${need_pkgs[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}"
fi
# The platform starts its own servers; the packaged services are not needed.
for svc in mosquitto postgresql; do
  if command -v systemctl >/dev/null && systemctl is-active --quiet "$svc" 2>/dev/null; then
    log "note: the system $svc service is running; the platform does not use it"
  fi
done

ext_dir=$($PG_CONFIG --sharedir)/extension
if ls "$ext_dir"/timescaledb--*.sql >/dev/null 2>&1; then
  log "TimescaleDB already installed in $ext_dir"
  exit 0
fi

log "building TimescaleDB from Debian trixie's source package"
mkdir -p "$BUILD_DIR/apt/lists/partial" "$BUILD_DIR/src"
# Same mirror as the machine's own Debian sources, trixie suite, sources only.
mirror=$(grep -rhoE '^(URIs:|deb(-src)?)\s+\S+' /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list 2>/dev/null \
         | awk '{print $2}' | grep -E '/debian/?$' | head -n 1 || true)
[ -n "$mirror" ] || { echo "no Debian mirror found in /etc/apt sources" >&2; exit 1; }
printf 'deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] %s trixie main\n' "$mirror" \
  > "$BUILD_DIR/apt/sources.list"
apt_private=(-o "Dir::Etc::SourceList=$BUILD_DIR/apt/sources.list" -o "Dir::Etc::SourceParts=-"
             -o "Dir::State::Lists=$BUILD_DIR/apt/lists" -o "APT::Get::List-Cleanup=0")
apt-get "${apt_private[@]}" update -qq
(cd "$BUILD_DIR/src" && rm -rf timescaledb-* timescaledb_* && apt-get "${apt_private[@]}" source -qq timescaledb)
src=$(find "$BUILD_DIR/src" -maxdepth 1 -type d -name 'timescaledb-*' | head -n 1)
cd "$src"
./bootstrap -DAPACHE_ONLY=ON -DREGRESS_CHECKS=OFF -DTAP_CHECKS=OFF -DWARNINGS_AS_ERRORS=OFF \
  -DLINTER=OFF -DPG_CONFIG="$PG_CONFIG" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
make -C build -j"$(nproc)" >/dev/null
$SUDO make -C build install >/dev/null
log "TimescaleDB installed: $(ls "$ext_dir"/timescaledb--*.sql | tail -n 1)"
