#!/usr/bin/env bash
# POST /cpaas/v1/messages throughput and latency at CONNS connections for DURATION seconds
# (wrk, a real token from the login endpoint), against pgbench running the same transaction
# the handler commits (bench/send_tx.sql) with the same number of clients on the same database.
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

step "baseline: pgbench -c$CONNS -j2 -T$DURATION -M prepared -f bench/send_tx.sql"
pg_out=$("$PGBENCH" -h 127.0.0.1 -p "$PG_PORT" -U postgres -n -c "$CONNS" -j 2 -T "$DURATION" -M prepared \
  -f bench/send_tx.sql "$DB" 2>&1)
tps=$(grep -E '^tps' <<<"$pg_out" | sed -E 's/tps = ([0-9.]+).*/\1/' | head -n 1)
pg_lat=$(grep -E 'latency average' <<<"$pg_out" | sed -E 's/.*= ([0-9.]+) ms/\1/')

python3 - "$requests" "$duration_us" "$errors" "$(field p50_us)" "$(field p99_us)" "$(field max_us)" "$tps" "$pg_lat" "$rss_kb" "$accepted" <<'PY'
import sys
req, dur_us, errors, p50, p99, mx, tps, pg_lat, rss, accepted = sys.argv[1:]
rps = float(req) / (float(dur_us) / 1e6)
ratio = rps / float(tps)
print()
print(f"HTTP POST /cpaas/v1/messages : {rps:8.0f} req/s   p50 {float(p50)/1000:6.2f} ms   p99 {float(p99)/1000:6.2f} ms   max {float(mx)/1000:7.2f} ms   non-2xx/errors {errors}   rows {accepted}")
print(f"pgbench, same transaction    : {float(tps):8.0f} tx/s    mean latency {float(pg_lat):6.2f} ms")
print(f"ratio HTTP / pgbench         : {ratio:8.2f}   (goal >= 0.70)")
print(f"service peak RSS             : {int(rss)/1024:8.1f} MiB")
PY
