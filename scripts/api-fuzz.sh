#!/usr/bin/env bash
# Sends generated requests to every operation of the service's own OpenAPI document
# (schemathesis, from PyPI) and fails on any server error, on a status code the document does
# not list for the operation, and on a response whose body or content type does not match it.
#
#   bash scripts/api-fuzz.sh              # CPAAS_BIN=path/to/cpaas to use a built binary
#   API_FUZZ_EXAMPLES=200 bash scripts/api-fuzz.sh   # more cases per operation (default 30)
#
# It starts `cpaas serve` (development mode, seeded) on a fresh database and a free port, logs in
# as the seeded admin for a real access token and passes it with the internal key on every call.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib/services.sh
source scripts/lib/services.sh

SCHEMATHESIS_VERSION=4.32.5
ADMIN_URL=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
DB=cpaas_api_fuzz
PG_PORT=$(url_port "$ADMIN_URL" 5432)
EXAMPLES=${API_FUZZ_EXAMPLES:-30}
if is_local_url "$ADMIN_URL"; then ensure_postgres; else ensure_psql; fi
command -v curl >/dev/null 2>&1 || apt_install curl

VENV=${CARGO_TARGET_DIR:-target}/schemathesis-$SCHEMATHESIS_VERSION
if [ ! -x "$VENV/bin/st" ]; then
  step "installing schemathesis $SCHEMATHESIS_VERSION into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet "schemathesis==$SCHEMATHESIS_VERSION"
fi

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

work=$(mktemp -d)
pid=
cleanup() {
  [ -z "$pid" ] || kill "$pid" 2>/dev/null || true
  pg_url "$ADMIN_URL" -q -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

step "fresh database $DB"
pg_url "$ADMIN_URL" -q -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base=http://127.0.0.1:$port
key=api-fuzz-internal-key
step "starting cpaas serve on $base"
env APP_ENV=development DATABASE_URL="$(with_database "$ADMIN_URL" "$DB")" \
  LISTEN_ADDR="127.0.0.1:$port" PUBLIC_BASE_URL="$base" DEV_KEYS_DIR="$work/keys" \
  INTERNAL_API_KEY="$key" LOG_FORMAT=json RUST_LOG=warn \
  ACCESS_TOKEN_TTL_SECS=3600 \
  "$BIN" serve >"$work/serve.log" 2>&1 &
pid=$!
for _ in $(seq 1 120); do
  curl -fsS "$base/cpaas/v1/_internal/readyz" >/dev/null 2>&1 && break
  kill -0 "$pid" 2>/dev/null || { cat "$work/serve.log" >&2; die "cpaas serve exited"; }
  sleep 0.5
done
curl -fsS "$base/cpaas/v1/_internal/readyz" >/dev/null || die "cpaas serve did not become ready"

token=$(curl -fsS "$base/auth/v1/login" -H 'content-type: application/json' \
  -d '{"email":"admin@eventzr.com","password":"Password123!"}' |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["data"]["accessToken"])')
[ -n "$token" ] || die "could not log in as the seeded admin"

step "schemathesis: $EXAMPLES cases per operation"
status=0
"$VENV/bin/st" run "$base/cpaas/v1/openapi.json" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --header "Authorization: Bearer $token" \
  --header "x-internal-api-key: $key" \
  --max-examples "$EXAMPLES" \
  --seed "${API_FUZZ_SEED:-1}" \
  --workers 2 \
  --request-timeout 10 \
  --suppress-health-check all \
  --continue-on-failure \
  --no-color || status=$?
if [ "$status" -ne 0 ]; then
  step "server log (errors only)"
  grep -E '"level":"ERROR"' "$work/serve.log" | tail -n 40 >&2 || true
  kill -0 "$pid" 2>/dev/null || die "cpaas serve died during the run"
  die "schemathesis found responses the document does not describe (see above)"
fi
kill -0 "$pid" 2>/dev/null || die "cpaas serve died during the run"
step "no server error, every response as documented"
