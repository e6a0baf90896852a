# shellcheck shell=bash
# Shared helpers for the local PostgreSQL and NATS services used by
# scripts/test.sh and scripts/run-local.sh. Source this file; do not run it.
#
# Targets a Debian 12 host (or container): missing servers are installed with
# apt-get, stopped ones are started without systemd.

PG_HOST=127.0.0.1
PG_PORT=5432
NATS_HOST=127.0.0.1
NATS_PORT=4222
NATS_STORE_DIR=${NATS_STORE_DIR:-/var/lib/nats-server}
NATS_LOG_FILE=${NATS_LOG_FILE:-/var/log/nats-server.log}

step() { printf '==> %s\n' "$*"; }
warn() { printf '==> warning: %s\n' "$*" >&2; }
die() {
  printf '==> error: %s\n' "$*" >&2
  exit 1
}

# Runs a command as root (directly, or through sudo when available).
as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    die "root privileges are needed for: $*"
  fi
}

# Installs Debian packages; refreshes the package index only if the first
# attempt fails.
apt_install() {
  step "installing $* (apt-get)"
  if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y "$@"; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y "$@"
  fi
}

# True when the URL points at this machine (127.0.0.1, localhost or ::1).
is_local_url() {
  local rest=${1#*://}
  rest=${rest##*@}
  case "$rest" in
    127.0.0.1 | 127.0.0.1[:/?]* | localhost | localhost[:/?]* | \[::1\]*) return 0 ;;
    *) return 1 ;;
  esac
}

# Prints the port of a URL, or $2 when the URL names none.
url_port() {
  local rest=${1#*://} port
  rest=${rest##*@}
  rest=${rest%%[/?]*}
  port=${rest##*:}
  case "$port" in
    '' | *[!0-9]*) printf '%s\n' "$2" ;;
    *) printf '%s\n' "$port" ;;
  esac
}

# Replaces the database name of a postgres URL, keeping any query string.
with_database() {
  local url=$1 db=$2 base query=""
  base=${url%%\?*}
  if [ "$base" != "$url" ]; then
    query="?${url#*\?}"
  fi
  printf '%s/%s%s\n' "${base%/*}" "$db" "$query"
}

# psql against the local server as user postgres, never prompting for a
# password.
pg_local() {
  PGCONNECT_TIMEOUT=5 psql -X -q -w -v ON_ERROR_STOP=1 \
    -h "$PG_HOST" -p "$PG_PORT" -U postgres "$@"
}

# psql against an explicit connection URL.
pg_url() {
  local url=$1
  shift
  PGCONNECT_TIMEOUT=5 psql -X -q -w -v ON_ERROR_STOP=1 "$@" -d "$url"
}

pg_server_installed() {
  command -v pg_ctlcluster >/dev/null 2>&1 &&
    command -v pg_lsclusters >/dev/null 2>&1 &&
    compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null
}

# Prints "<version> <name> <status>" of the cluster on $PG_PORT (or of the
# first cluster when none uses that port).
pg_cluster() {
  local line
  line=$(pg_lsclusters -h 2>/dev/null | awk -v port="$PG_PORT" '$3 == port { print $1, $2, $4; exit }')
  if [ -z "$line" ]; then
    line=$(pg_lsclusters -h 2>/dev/null | awk 'NR == 1 { print $1, $2, $4 }')
  fi
  printf '%s\n' "$line"
}

pg_ctl_cluster() {
  local ver=$1 name=$2 action=$3
  as_root pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" "$action"
}

wait_pg_ready() {
  local timeout=${1:-60} i
  for ((i = 0; i < timeout; i++)); do
    if pg_isready -q -h "$PG_HOST" -p "$PG_PORT" -t 1; then
      return 0
    fi
    sleep 1
  done
  return 1
}

# Makes pg_hba.conf trust TCP connections from 127.0.0.1/32 and ::1/128.
pg_trust_localhost() {
  local ver=$1 name=$2 hba
  hba=/etc/postgresql/$ver/$name/pg_hba.conf
  [ -f "$hba" ] || die "cannot find $hba"
  step "setting trust authentication for local TCP connections in $hba"
  as_root cp -p "$hba" "$hba.bak"
  as_root sed -i -E \
    's#^([[:space:]]*host[[:space:]]+[^[:space:]]+[[:space:]]+[^[:space:]]+[[:space:]]+(127\.0\.0\.1/32|::1/128)[[:space:]]+)[^[:space:]]+.*$#\1trust#' \
    "$hba"
  local cidr tmp
  for cidr in 127.0.0.1/32 ::1/128; do
    if ! as_root grep -Eq "^[[:space:]]*host[[:space:]]+all[[:space:]]+all[[:space:]]+${cidr//./\\.}[[:space:]]+trust" "$hba"; then
      # pg_hba.conf is first-match-wins, so new lines go on top.
      tmp=$(mktemp)
      { printf 'host all all %s trust\n' "$cidr"; as_root cat "$hba"; } >"$tmp"
      as_root cp "$tmp" "$hba"
      rm -f "$tmp"
    fi
  done
  pg_ctl_cluster "$ver" "$name" reload
}

# Installs, starts and opens up the local PostgreSQL cluster on
# 127.0.0.1:5432 so that user postgres connects over TCP without a password.
ensure_postgres() {
  step "checking PostgreSQL on $PG_HOST:$PG_PORT"
  if ! pg_server_installed; then
    apt_install postgresql
  fi

  local ver name status
  read -r ver name status <<<"$(pg_cluster)" || true
  if [ -z "${ver:-}" ]; then
    ver=$(compgen -G '/usr/lib/postgresql/*/bin/postgres' | sort -V | tail -n 1)
    ver=${ver#/usr/lib/postgresql/}
    ver=${ver%%/*}
    name=main
    step "creating PostgreSQL cluster $ver/$name"
    as_root pg_createcluster -p "$PG_PORT" "$ver" "$name"
    status=down
  fi

  if [[ "$status" != online* ]]; then
    step "starting PostgreSQL cluster $ver/$name"
    pg_ctl_cluster "$ver" "$name" start
  fi
  wait_pg_ready 60 || die "PostgreSQL did not become ready on $PG_HOST:$PG_PORT (see /var/log/postgresql/)"

  if ! pg_local -d postgres -c 'select 1' >/dev/null 2>&1; then
    pg_trust_localhost "$ver" "$name"
    local i
    for ((i = 0; i < 20; i++)); do
      pg_local -d postgres -c 'select 1' >/dev/null 2>&1 && break
      sleep 0.5
    done
    pg_local -d postgres -c 'select 1' >/dev/null ||
      die "cannot connect to PostgreSQL as postgres@$PG_HOST:$PG_PORT without a password"
  fi
  PG_CLUSTER_VERSION=$ver
  PG_CLUSTER_NAME=$name
}

# Raises max_connections on the local cluster to at least $1 (restarts it).
ensure_pg_max_connections() {
  local want=$1 have
  have=$(pg_local -d postgres -Atc 'show max_connections')
  if [ "$have" -ge "$want" ]; then
    return 0
  fi
  step "raising PostgreSQL max_connections from $have to $want"
  pg_local -d postgres -c "alter system set max_connections = $want" >/dev/null
  local ver=${PG_CLUSTER_VERSION:-} name=${PG_CLUSTER_NAME:-}
  if [ -z "$ver" ]; then
    read -r ver name _ <<<"$(pg_cluster)" || true
  fi
  [ -n "$ver" ] || die "cannot find the PostgreSQL cluster to restart"
  pg_ctl_cluster "$ver" "$name" restart
  wait_pg_ready 60 || die "PostgreSQL did not come back after the restart"
  have=$(pg_local -d postgres -Atc 'show max_connections')
  [ "$have" -ge "$want" ] || die "max_connections is still $have after the restart"
}

# Makes sure the PostgreSQL client tools exist (for a remote server).
ensure_psql() {
  if ! command -v psql >/dev/null 2>&1 || ! command -v pg_isready >/dev/null 2>&1; then
    apt_install postgresql-client
  fi
}

# True when something accepts TCP connections on host:port.
port_open() {
  local host=$1 port=$2
  if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then
    return 0
  fi
  if command -v nc >/dev/null 2>&1; then
    nc -z -w 1 "$host" "$port" >/dev/null 2>&1 && return 0
  fi
  return 1
}

# Prints the INFO line a NATS server sends on connect.
nats_info() {
  (
    exec 3<>"/dev/tcp/$NATS_HOST/$NATS_PORT" || exit 0
    line=""
    read -r -t 3 line <&3 || true
    printf '%s\n' "$line"
  ) 2>/dev/null || true
}

nats_binary() {
  command -v nats-server 2>/dev/null ||
    { [ -x /usr/sbin/nats-server ] && echo /usr/sbin/nats-server; } ||
    true
}

# Installs and starts nats-server with JetStream on 127.0.0.1:4222.
ensure_nats() {
  step "checking NATS on $NATS_HOST:$NATS_PORT"
  if ! port_open "$NATS_HOST" "$NATS_PORT"; then
    local bin
    bin=$(nats_binary)
    if [ -z "$bin" ]; then
      apt_install nats-server
      bin=$(nats_binary)
      [ -n "$bin" ] || die "nats-server is not available after installing it"
    fi
    step "starting nats-server with JetStream"
    as_root mkdir -p "$NATS_STORE_DIR"
    as_root start-stop-daemon --start --oknodo --background \
      --pidfile /run/nats-server-cpaas.pid --make-pidfile \
      --exec "$bin" -- \
      -a "$NATS_HOST" -p "$NATS_PORT" -js -sd "$NATS_STORE_DIR" -l "$NATS_LOG_FILE"
    local i
    for ((i = 0; i < 60; i++)); do
      port_open "$NATS_HOST" "$NATS_PORT" && break
      sleep 0.5
    done
    port_open "$NATS_HOST" "$NATS_PORT" ||
      die "nats-server did not start listening on $NATS_HOST:$NATS_PORT (see $NATS_LOG_FILE)"
  fi
  case "$(nats_info)" in
    *'"jetstream":true'*) ;;
    *) warn "the NATS server on $NATS_HOST:$NATS_PORT does not report JetStream; start it with -js" ;;
  esac
}

# Sets BIN to the cpaas binary a benchmark runs: CPAAS_BIN when set (two builds compared in one
# session), otherwise this checkout's release build, built now.
cpaas_binary() {
  if [ -n "${CPAAS_BIN:-}" ]; then
    BIN=$CPAAS_BIN
  else
    step "building the release binary"
    cargo build --release --quiet --bin cpaas
    BIN=target/release/cpaas
  fi
}

# The Kafka-protocol broker of the tests: tansu (crates.io, Apache-2.0), built with cargo.
TANSU_VERSION=${TANSU_VERSION:-0.6.0}

# Sets TANSU_BIN to a tansu binary, installing it with cargo when there is none (a build of
# about 11 minutes on 2 cores).
ensure_tansu() {
  if [ -n "${TANSU_BIN:-}" ] && [ -x "$TANSU_BIN" ]; then
    return 0
  fi
  local found
  found=$(command -v tansu 2>/dev/null || true)
  if [ -z "$found" ] && [ -x "${CARGO_HOME:-$HOME/.cargo}/bin/tansu" ]; then
    found=${CARGO_HOME:-$HOME/.cargo}/bin/tansu
  fi
  if [ -z "$found" ]; then
    step "installing tansu $TANSU_VERSION (cargo install; about 11 minutes)"
    cargo install tansu --version "$TANSU_VERSION" --features dynostore --locked
    found=${CARGO_HOME:-$HOME/.cargo}/bin/tansu
    [ -x "$found" ] || die "tansu is not available after installing it"
  fi
  TANSU_BIN=$found
  export TANSU_BIN
}

# Prints a TCP port on 127.0.0.1 that nothing listens on.
free_local_port() {
  local port
  while :; do
    port=$((30000 + RANDOM % 10000))
    port_open 127.0.0.1 "$port" || break
  done
  printf '%s\n' "$port"
}

# Starts a tansu broker (in memory) on a free port; sets KAFKA_BROKER_ADDR (host:port) and
# KAFKA_BROKER_PID. The caller stops it (kill "$KAFKA_BROKER_PID").
start_kafka_broker() {
  local log=$1 port
  port=$(free_local_port)
  "$TANSU_BIN" broker --storage-engine memory://tansu/ \
    --listener-url "tcp://127.0.0.1:$port" \
    --advertised-listener-url "tcp://127.0.0.1:$port" >"$log" 2>&1 &
  KAFKA_BROKER_PID=$!
  local i
  for ((i = 0; i < 60; i++)); do
    port_open 127.0.0.1 "$port" && break
    sleep 0.25
  done
  port_open 127.0.0.1 "$port" || die "the Kafka broker did not start (see $log)"
  KAFKA_BROKER_ADDR=127.0.0.1:$port
}
