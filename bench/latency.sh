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
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT
"$BIN" mock-providers --listen "127.0.0.1:$MOCK_PORT" >/dev/null 2>&1 &
pids+=($!)
DATABASE_URL=$DB_URL LISTEN_ADDR=127.0.0.1:$PORT APP_ENV=development SEED_ON_START=true \
  DEV_KEYS_DIR=/tmp/cpaas-bench-keys DATABASE_POOL_SIZE=16 LOG_FORMAT=json RUST_LOG=warn \
  NATS_URL=$NATS NATS_STREAM=LAT_$RUN NATS_SUBJECT_PREFIX=lat$RUN. CONSUMERS_ENABLED=false \
  RATE_LIMIT_OVERRIDES=professional.SMS=1000000000 \
  "$BIN" serve >/dev/null 2>&1 &
svc=$!
pids+=("$svc")
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$PORT/cpaas/v1/_internal/healthz" >/dev/null 2>&1 && break
  sleep 0.2
done
login() {
  curl -fsS "http://127.0.0.1:$PORT/auth/v1/login" -H 'content-type: application/json' \
    -d "{\"email\":\"$1\",\"password\":\"Password123!\"}" | sed -E 's/.*"accessToken":"([^"]+)".*/\1/'
}
ADMIN=$(login admin@eventzr.com)
curl -fsS "http://127.0.0.1:$PORT/cpaas/v1/providers" -H "authorization: Bearer $ADMIN" \
  -H 'content-type: application/json' -o /dev/null -d "{\"name\":\"vonage-mock\",\"kind\":\"VONAGE\",\"priority\":1,
  \"config\":{\"from\":\"Eventzr\",\"base_url\":\"http://127.0.0.1:$MOCK_PORT\"},
  \"credentials\":{\"api_key\":\"k\",\"api_secret\":\"s\",\"signature_secret\":\"x\"}}"
step "sending at ${RATE:-200}/s for ${DURATION:-30}s"
python3 bench/latency.py "$PORT" "$MOCK_PORT" "$(login dev@eventzr.com)"
echo "service peak RSS: $(awk '/VmHWM/ {printf "%.1f MiB", $2/1024}' "/proc/$svc/status")"
