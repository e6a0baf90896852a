#!/usr/bin/env bash
# Noisy neighbour: tenant A's 50,000 bulk messages and tenant B's `high` ones at 10 a second
# for 30 s, through the mock providers (Vonage wire format) with the drain running; B's latency
# from the 202 to the provider while A drains, and A's drain rate (bench/noisy_neighbour.py).
#
#   bash bench/noisy_neighbour.sh            # BULK=50000 RATE=10 DURATION=30
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib/services.sh
source scripts/lib/services.sh
# shellcheck source=scripts/lib/bench.sh
source scripts/lib/bench.sh

PORT=${PORT:-18084}
MOCK_PORT=${MOCK_PORT:-19094}
ADMIN_URL=${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
NATS=${BENCH_NATS_URL:-nats://127.0.0.1:4222}
DB=cpaas_bench_neighbour
DB_URL=$(with_database "$ADMIN_URL" "$DB")
RUN=$(date +%s)

ensure_postgres
NATS_PORT=$(url_port "$NATS" 4222)
ensure_nats
cpaas_binary
pg_url "$ADMIN_URL" -q -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"

pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
TAG=neighbour
# shellcheck disable=SC2119 # no extra settings
start_vonage_stack

step "tenant B: its own tenant, user and Vonage provider"
cli() { env DATABASE_URL="$DB_URL" APP_ENV=development DEV_KEYS_DIR=/tmp/cpaas-bench-keys RUST_LOG=warn "$BIN" "$@"; }
tenant_b=$(cli tenant add --name neighbour --plan-tier professional 2>/dev/null | tail -n 1)
CPAAS_USER_PASSWORD='Password123!' cli user add --tenant-id "$tenant_b" \
  --email neighbour@bench.test --roles admin,developer >/dev/null 2>&1
token_b=$(bench_login neighbour@bench.test)
add_vonage_provider "$token_b"

step "A posts ${BULK:-50000} bulk messages; B sends ${RATE:-10} high messages a second for ${DURATION:-30} s"
python3 bench/noisy_neighbour.py "$PORT" "$MOCK_PORT" "$(bench_login dev@eventzr.com)" "$token_b" "$DB_URL"
