#!/usr/bin/env bash
# End-to-end latency at a steady RATE sends/s (default 200) for DURATION seconds (default 30):
# from the 202 to the mock provider receiving the call, through the outbox (LISTEN/NOTIFY
# wake-up), JetStream and the Vonage adapter. Also the service's peak RSS.
#
#   bash bench/latency.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib/services.sh
source scripts/lib/services.sh
# shellcheck source=scripts/lib/bench.sh
source scripts/lib/bench.sh

PORT=${PORT:-18082}
MOCK_PORT=${MOCK_PORT:-19091}
ADMIN_URL=${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
NATS=${BENCH_NATS_URL:-nats://127.0.0.1:4222}
DB=cpaas_bench_latency
DB_URL=$(with_database "$ADMIN_URL" "$DB")
PG_PORT=$(url_port "$ADMIN_URL" 5432)
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
TAG=lat
# shellcheck disable=SC2119 # no extra settings
start_vonage_stack
step "sending at ${RATE:-200}/s for ${DURATION:-30}s"
python3 bench/latency.py "$PORT" "$MOCK_PORT" "$(bench_login dev@eventzr.com)"
echo "service peak RSS: $(awk '/VmHWM/ {printf "%.1f MiB", $2/1024}' "/proc/$svc/status")"
