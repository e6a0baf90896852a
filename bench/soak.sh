#!/usr/bin/env bash
# Soak: sends at a steady RATE per second (default 200) for DURATION seconds (default 1800)
# through the mock providers (Vonage wire format) with the drain running, and reports the
# service's RSS at the start and the end, the p99 from the 202 to the mock receiving the call
# per WINDOW seconds (default 300), and how many accepted messages the mock never took (lost) or
# took more than once (duplicated), counted with the mock's tally, which never rolls over.
#
#   bash bench/soak.sh                      # DURATION=300 WINDOW=60 for a short run
#
# SERVICE_LOG=file keeps the service's log; ACTIVITY_LOG=file records every 5 s what the
# service's database sessions are doing (state and wait event, counted), how old its oldest
# open transaction is, and what the machine did meanwhile (CPU steal and iowait, disk writes,
# WAL written, checkpoints).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib/services.sh
source scripts/lib/services.sh
# shellcheck source=scripts/lib/bench.sh
source scripts/lib/bench.sh

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
TAG=soak
start_vonage_stack ACCESS_TOKEN_TTL_SECS=86400
step "sending at ${RATE:-200}/s for ${DURATION:-1800}s, windows of ${WINDOW:-300}s"
if [ -n "${ACTIVITY_LOG:-}" ]; then
  while :; do
    {
      date -u +%FT%TZ
      # The machine: CPU jiffies (user nice system idle iowait irq softirq steal), the busiest
      # disk's completed writes, sectors written and milliseconds spent on I/O, the WAL
      # written so far and the checkpoints (timed, requested).
      awk '/^cpu /{print "cpu", $2, $3, $4, $5, $6, $7, $8, $9}' /proc/stat
      sort -k10 -n -r /proc/diskstats | awk 'NR==1{print "disk", $3, $8, $10, $13}'
      pg_url "$ADMIN_URL" -At -F ' ' -c "SELECT 'wal', wal_bytes, wal_sync FROM pg_stat_wal" \
        -c "SELECT 'checkpoints', checkpoints_timed, checkpoints_req FROM pg_stat_bgwriter"
      pg_url "$ADMIN_URL" -At -c "SELECT state, coalesce(wait_event_type || ':' || wait_event, '-'), count(*), \
          round(extract(epoch FROM max(now() - xact_start))::numeric, 1) \
        FROM pg_stat_activity WHERE datname = '$DB' GROUP BY 1, 2 ORDER BY 3 DESC"
    } >>"$ACTIVITY_LOG" 2>&1 || true
    sleep 5
  done &
  pids+=($!)
fi
python3 bench/soak.py "$PORT" "$MOCK_PORT" "$(bench_login dev@eventzr.com)" "$svc"
