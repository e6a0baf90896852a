#!/usr/bin/env bash
# Proves the local stack works as the README says: starts `cpaas serve` and
# `cpaas mock-providers` on this machine with the environment docker-compose.yml
# gives them (the compose host names postgres and nats become 127.0.0.1, and the
# database is a fresh one of this script), after validating docker-compose.yml
# with docker-compose, runs the README's quick-start code
# blocks as written, and exits non-zero unless the provider list shows the
# seeded SANDBOX provider and the sandbox SMS reaches DELIVERED.
#
#   bash scripts/local-stack.sh        # CPAAS_BIN=path/to/cpaas to use a built binary
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib/services.sh
source scripts/lib/services.sh

ADMIN_URL=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
DB=cpaas_local_stack
PG_PORT=$(url_port "$ADMIN_URL" 5432)
NATS_PORT=4222
ensure_postgres
ensure_nats
command -v curl >/dev/null 2>&1 || apt_install curl
python3 -c 'import yaml' 2>/dev/null || python3 -m pip install --quiet pyyaml

step "validating docker-compose.yml (docker-compose config)"
command -v docker-compose >/dev/null 2>&1 || apt_install --no-install-recommends docker-compose
docker-compose -f docker-compose.yml config -q

if [ -n "${CPAAS_BIN:-}" ]; then
  BIN=$CPAAS_BIN
else
  if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
    # shellcheck source=/dev/null
    source "$HOME/.cargo/env"
  fi
  step "building cpaas"
  cargo build --quiet --bin cpaas
  BIN=${CARGO_TARGET_DIR:-target}/debug/cpaas
fi

# The environment compose gives a service, one NAME=value per line.
compose_env() {
  python3 - "$1" <<'PY'
import os, re, sys, yaml
service = yaml.safe_load(open("docker-compose.yml"))["services"][sys.argv[1]]
env = service.get("environment") or {}
if isinstance(env, list):
    env = dict(item.split("=", 1) for item in env)
for name, value in env.items():
    # ${NAME:-default}, as compose interpolates it.
    value = re.sub(r"\$\{(\w+):-([^}]*)\}", lambda m: os.environ.get(m[1]) or m[2], str(value))
    value = value.replace("@postgres:", "@127.0.0.1:").replace("//nats:", "//127.0.0.1:")
    print(f"{name}={value}")
PY
}

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  pg_url "$ADMIN_URL" -q -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

step "fresh database $DB"
pg_url "$ADMIN_URL" -q -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"

# Runs "$BIN $*" with the compose environment of service $1, logging to $work/$1.log.
start() {
  local service=$1
  shift
  local -a env=()
  while IFS= read -r line; do env+=("$line"); done < <(compose_env "$service")
  if [ "$service" = cpaas ]; then
    env+=("DATABASE_URL=$(with_database "$ADMIN_URL" "$DB")" "DEV_KEYS_DIR=$work/keys")
    env+=("NATS_STREAM=LOCAL_STACK_$$")
  fi
  step "starting $service: ${env[*]}"
  env "${env[@]}" "$BIN" "$@" >"$work/$service.log" 2>&1 &
  pids+=($!)
}
start mock-providers mock-providers
start cpaas serve

wait_for() { # $1 = URL
  for _ in $(seq 1 120); do
    curl -fsS "$1" >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  cat "$work"/*.log >&2
  die "$1 did not answer"
}
wait_for http://localhost:8080/cpaas/v1/_internal/readyz
wait_for http://localhost:9090/_mock/stats

# The README's quick-start blocks that talk to the service, as written.
python3 - README.md >"$work/quick-start.sh" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
start = text.index("## Quick start")
section = text[start:text.index("\n## ", start + 1)]
blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
print("set -euo pipefail")
for block in blocks:
    if "localhost:8080" in block:
        print(block)
PY
step "running the README's quick-start calls"
out=$(bash "$work/quick-start.sh")
printf '%s\n' "$out"

grep -q '"kind":"SANDBOX"' <<<"$out" || die "the provider list does not show the seeded SANDBOX provider"
id=$(grep -oE 'msg_[0-9a-f]{32}' <<<"$out" | head -n 1)
[ -n "$id" ] || die "the quick start did not accept a message"
if ! grep -q '"status":"DELIVERED"' <<<"$out"; then
  die "the sandbox SMS $id did not reach DELIVERED as the README says"
fi
step "the quick start works as written: $id is DELIVERED"
