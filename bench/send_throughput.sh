#!/usr/bin/env bash
# POST /cpaas/v1/messages throughput and latency at CONNS connections for DURATION seconds
# (wrk, a real token from the login endpoint), against two pgbench baselines with the same
# number of clients on the same database: the floor of a send (bench/send_floor.sql: one
# statement writing the message and its outbox row) and the statements the handler runs
# (bench/send_tx.sql).
#
#   bash bench/send_throughput.sh            # DURATION=20 CONNS=64
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib/services.sh
source scripts/lib/services.sh

DURATION=${DURATION:-20}
CONNS=${CONNS:-64}
PORT=${PORT:-18080}
POOL=${POOL:-32}
ADMIN_URL=${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
DB=cpaas_bench
DB_URL=$(with_database "$ADMIN_URL" "$DB")
PG_PORT=$(url_port "$ADMIN_URL" 5432)

ensure_postgres
ensure_pg_max_connections 500
command -v wrk >/dev/null 2>&1 || apt_install wrk
PGBENCH=$(command -v pgbench || ls /usr/lib/postgresql/*/bin/pgbench | tail -n 1)

cpaas_binary

step "fresh database $DB"
pg_url "$ADMIN_URL" -q -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"

step "starting the service (pool $POOL)"
log=$(mktemp)
DATABASE_URL=$DB_URL LISTEN_ADDR=127.0.0.1:$PORT APP_ENV=development SEED_ON_START=true \
  DEV_KEYS_DIR=$(mktemp -d) DATABASE_POOL_SIZE=$POOL LOG_FORMAT=json RUST_LOG=warn \
  RATE_LIMIT_OVERRIDES=professional.SMS=1000000000 OUTBOX_ENABLED=false SCHEDULER_ENABLED=false \
  "$BIN" serve >"$log" 2>&1 &
svc=$!
trap 'kill $svc 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$PORT/cpaas/v1/_internal/healthz" >/dev/null 2>&1 && break
  sleep 0.2
done
TOKEN=$(curl -fsS "http://127.0.0.1:$PORT/auth/v1/login" -H 'content-type: application/json' \
  -d '{"email":"dev@eventzr.com","password":"Password123!"}' |
  sed -E 's/.*"accessToken":"([^"]+)".*/\1/')
export TOKEN

step "warming up"
wrk -t2 -c"$CONNS" -d3s -s bench/send.lua "http://127.0.0.1:$PORT" >/dev/null

step "HTTP: wrk -t2 -c$CONNS -d${DURATION}s POST /cpaas/v1/messages"
http=$(wrk -t2 -c"$CONNS" -d"${DURATION}s" -s bench/send.lua "http://127.0.0.1:$PORT" | grep '^RESULT')
echo "$http"
rss_kb=$(awk '/VmHWM/ {print $2}' "/proc/$svc/status")
kill $svc; wait $svc 2>/dev/null || true
trap - EXIT

field() { sed -E "s/.* $1=([0-9.]+).*/\1/" <<<"$http"; }
requests=$(field requests); duration_us=$(field duration_us)
errors=$(( $(field errors_status) + $(field errors_connect) + $(field errors_timeout) ))
accepted=$(pg_url "$DB_URL" -At -c "SELECT count(*) FROM messages WHERE created_at > now() - interval '$((DURATION + 5)) seconds'")

pgbench_tps() {
  step "baseline: pgbench -c$CONNS -j2 -T$DURATION -M prepared -f $1" >&2
  "$PGBENCH" -h 127.0.0.1 -p "$PG_PORT" -U postgres -n -c "$CONNS" -j 2 -T "$DURATION" -M prepared \
    -f "$1" "$DB" 2>&1 | grep -E '^tps' | sed -E 's/tps = ([0-9.]+).*/\1/' | head -n 1
}
floor_tps=$(pgbench_tps bench/send_floor.sql)
tx_tps=$(pgbench_tps bench/send_tx.sql)

python3 - "$requests" "$duration_us" "$errors" "$(field p50_us)" "$(field p99_us)" "$(field max_us)" "$floor_tps" "$tx_tps" "$rss_kb" "$accepted" <<'PY'
import sys
req, dur_us, errors, p50, p99, mx, floor_tps, tx_tps, rss, accepted = sys.argv[1:]
rps = float(req) / (float(dur_us) / 1e6)
print()
print(f"HTTP POST /cpaas/v1/messages : {rps:8.0f} req/s   p50 {float(p50)/1000:6.2f} ms   p99 {float(p99)/1000:6.2f} ms   max {float(mx)/1000:7.2f} ms   non-2xx/errors {errors}   rows {accepted}")
print(f"pgbench, one-statement floor : {float(floor_tps):8.0f} tx/s")
print(f"pgbench, the send's statements: {float(tx_tps):7.0f} tx/s")
print(f"ratio HTTP / floor           : {rps / float(floor_tps):8.2f}   (goal >= 0.60)")
print(f"ratio HTTP / same statements : {rps / float(tx_tps):8.2f}")
print(f"service peak RSS             : {int(rss)/1024:8.1f} MiB")
PY
