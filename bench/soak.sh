#!/usr/bin/env bash
# Soak: sends at a steady RATE per second (default 200) for DURATION seconds (default 1800)
# through the mock providers (Vonage wire format) with the drain running, and reports the
# service's RSS at the start and the end, the p99 from the 202 to the mock receiving the call
# per WINDOW seconds (default 300), and how many accepted messages the mock never took (lost) or
# took more than once (duplicated), counted with the mock's tally, which never rolls over.
#
#   bash bench/soak.sh                      # DURATION=300 WINDOW=60 for a short run
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib/services.sh
source scripts/lib/services.sh

PORT=${PORT:-18083}
MOCK_PORT=${MOCK_PORT:-19093}
ADMIN_URL=${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
NATS=${BENCH_NATS_URL:-nats://127.0.0.1:4222}
DB=cpaas_bench_soak
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
  if [ "${autovacuum_was:-on}" != on ]; then
    pg_url "$ADMIN_URL" -q -c "ALTER SYSTEM RESET autovacuum" -c "SELECT pg_reload_conf()" >/dev/null || true
  fi
}
trap cleanup EXIT

# A soak measures the service against a server that vacuums and analyses as production ones do.
# A test server may run with autovacuum off (it is on this project's CI machines); turn it on
# for the run and put the setting back afterwards.
autovacuum_was=$(pg_url "$ADMIN_URL" -At -c "show autovacuum")
if [ "$autovacuum_was" != on ]; then
  step "autovacuum is $autovacuum_was on this server: on for the soak, restored at the end"
  pg_url "$ADMIN_URL" -q -c "ALTER SYSTEM SET autovacuum = on" -c "SELECT pg_reload_conf()" >/dev/null
fi
"$BIN" mock-providers --listen "127.0.0.1:$MOCK_PORT" >/dev/null 2>&1 &
pids+=($!)
DATABASE_URL=$DB_URL LISTEN_ADDR=127.0.0.1:$PORT APP_ENV=development SEED_ON_START=true \
  DEV_KEYS_DIR=/tmp/cpaas-bench-keys DATABASE_POOL_SIZE=16 LOG_FORMAT=json RUST_LOG=warn \
  NATS_URL=$NATS NATS_STREAM=SOAK_$RUN NATS_SUBJECT_PREFIX=soak$RUN. CONSUMERS_ENABLED=false \
  RATE_LIMIT_OVERRIDES=professional.SMS=1000000000 ACCESS_TOKEN_TTL_SECS=86400 \
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
step "sending at ${RATE:-200}/s for ${DURATION:-1800}s, windows of ${WINDOW:-300}s"
python3 bench/soak.py "$PORT" "$MOCK_PORT" "$(login dev@eventzr.com)" "$svc"
