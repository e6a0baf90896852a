#!/usr/bin/env bash
# Drain throughput: MESSAGES accepted messages (default 50,000) delivered through the mock
# providers (Vonage wire format over real HTTP) with their events on the bus BUS (`nats`, the
# default: JetStream; `kafka`: a Kafka-protocol broker, tansu in memory, started for the run
# unless BENCH_KAFKA_BROKERS names one), by REPLICAS service processes on the one database
# (default 1); against pgbench running the outbox's own claim (as `outbox::store::claim` runs
# it) and complete-by-id statements alone on the same number of events. Prints messages/s,
# events/s, the ratio and the service's peak RSS (the largest of the replicas').
#
#   bash bench/drain.sh
#   REPLICAS=2 bash bench/drain.sh
#   BUS=kafka bash bench/drain.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib/services.sh
source scripts/lib/services.sh

MESSAGES=${MESSAGES:-50000}
REPLICAS=${REPLICAS:-1}
BUS=${BUS:-nats}
export REPLICAS BUS
PORT=${PORT:-18081}
MOCK_PORT=${MOCK_PORT:-19090}
ADMIN_URL=${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
NATS=${BENCH_NATS_URL:-nats://127.0.0.1:4222}
DB=cpaas_bench_drain
DB_URL=$(with_database "$ADMIN_URL" "$DB")
PG_PORT=$(url_port "$ADMIN_URL" 5432)
RUN=$(date +%s)
PGBENCH=$(command -v pgbench || ls /usr/lib/postgresql/*/bin/pgbench | tail -n 1)

ensure_postgres
ensure_pg_max_connections 500
NATS_PORT=$(url_port "$NATS" 4222)
ensure_nats
case "$BUS" in
  nats) bus_env=(EVENT_BUS=nats NATS_URL="$NATS" NATS_STREAM="BENCH_$RUN" NATS_SUBJECT_PREFIX="bench$RUN.") ;;
  kafka) ;;
  *) die "BUS is nats or kafka, not $BUS" ;;
esac

cpaas_binary
pg_url "$ADMIN_URL" -q -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

broker_pid=$(pgrep -x nats-server | head -n 1 || true)
if [ "$BUS" = kafka ]; then
  brokers=${BENCH_KAFKA_BROKERS:-}
  if [ -z "$brokers" ]; then
    ensure_tansu
    start_kafka_broker /tmp/cpaas-bench-kafka.log
    pids+=("$KAFKA_BROKER_PID")
    brokers=$KAFKA_BROKER_ADDR
    broker_pid=$KAFKA_BROKER_PID
  fi
  bus_env=(EVENT_BUS=kafka KAFKA_BROKERS="$brokers" KAFKA_TOPIC_PREFIX="bench$RUN.")
fi

"$BIN" mock-providers --listen "127.0.0.1:$MOCK_PORT" >/dev/null 2>&1 &
mock_pid=$!
pids+=("$mock_pid")

svcs=()
service() { # $1 = OUTBOX_ENABLED, $2 = port (default PORT)
  local port=${2:-$PORT}
  DATABASE_URL=$DB_URL LISTEN_ADDR=127.0.0.1:$port APP_ENV=development SEED_ON_START=true \
    DEV_KEYS_DIR=/tmp/cpaas-bench-keys DATABASE_POOL_SIZE=16 LOG_FORMAT=json RUST_LOG=warn \
    CONSUMERS_ENABLED=false RATE_LIMIT_OVERRIDES=professional.SMS=1000000000 \
    OUTBOX_ENABLED=$1 SCHEDULER_ENABLED=$1 env "${bus_env[@]}" \
    "$BIN" serve >/dev/null 2>&1 &
  svc=$!
  pids+=("$svc")
  svcs+=("$svc")
  for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$port/cpaas/v1/_internal/healthz" >/dev/null 2>&1 && return
    sleep 0.2
  done
  die "the service did not start"
}
login() {
  curl -fsS "http://127.0.0.1:$PORT/auth/v1/login" -H 'content-type: application/json' \
    -d "{\"email\":\"$1\",\"password\":\"Password123!\"}" | sed -E 's/.*"accessToken":"([^"]+)".*/\1/'
}

step "accepting $MESSAGES messages (outbox not drained yet)"
service false
ADMIN=$(login admin@eventzr.com)
DEV=$(login dev@eventzr.com)
curl -fsS "http://127.0.0.1:$PORT/cpaas/v1/providers" -H "authorization: Bearer $ADMIN" \
  -H 'content-type: application/json' -o /dev/null -d "{\"name\":\"vonage-mock\",\"kind\":\"VONAGE\",\"priority\":1,
  \"config\":{\"from\":\"Eventzr\",\"base_url\":\"http://127.0.0.1:$MOCK_PORT\"},
  \"credentials\":{\"api_key\":\"k\",\"api_secret\":\"s\",\"signature_secret\":\"x\"}}"
batch=$(python3 -c 'import json; print(json.dumps({"messages": [{"channel": "SMS", "recipient": "+14155552671", "message_body": "Your code is %06d" % i} for i in range(1000)]}))')
for _ in $(seq 1 $((MESSAGES / 1000))); do
  curl -fsS "http://127.0.0.1:$PORT/cpaas/v1/messages/bulk" -H "authorization: Bearer $DEV" \
    -H 'content-type: application/json' -o /dev/null -d "$batch"
done
kill "$svc"; wait "$svc" 2>/dev/null || true
svcs=()

# CPU time (clock ticks) of one process, and busy ticks of the whole machine.
proc_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
busy_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8}' /proc/stat; }
step "draining with the OutboxActor of $REPLICAS replica(s) (bus: $BUS)"
start=$(date +%s.%N)
busy0=$(busy_ticks); mock0=$(proc_ticks "$mock_pid"); nats0=$(proc_ticks "${broker_pid:-0}")
for r in $(seq 1 "$REPLICAS"); do service true $((PORT + r - 1)); done
# Progress is read from the mock's counter (one cheap HTTP call) until every send has reached
# it; only then is PostgreSQL asked whether the outbox is empty, so the measuring does not
# compete with the service for the CPU.
while :; do
  seen=$(curl -fsS "http://127.0.0.1:$MOCK_PORT/_mock/stats" | sed -E 's/.*"total":([0-9]+).*/\1/')
  if [ "$seen" -ge "$MESSAGES" ]; then
    left=$(pg_url "$DB_URL" -At -c "SELECT count(*) FROM outbox_events WHERE status = 'PENDING'")
    [ "$left" = 0 ] && break
  fi
  sleep 0.1
done
end=$(date +%s.%N)
svc_ticks=0
for p in "${svcs[@]}"; do svc_ticks=$(( svc_ticks + $(proc_ticks "$p") )); done
cpu_split="$(( $(busy_ticks) - busy0 )) $svc_ticks $(( $(proc_ticks "$mock_pid") - mock0 )) $(( $(proc_ticks "${broker_pid:-0}") - nats0 )) $(getconf CLK_TCK)"
dead=$(pg_url "$DB_URL" -At -c "SELECT count(*) FROM outbox_events WHERE status = 'DEAD'")
sent=$(pg_url "$DB_URL" -At -c "SELECT count(*) FROM messages WHERE status = 'SENT'")
[ "$dead" = 0 ] || die "$dead outbox events were dead-lettered"
[ "$sent" -ge "$MESSAGES" ] || die "only $sent of $MESSAGES messages are SENT"
rss_kb=0
for p in "${svcs[@]}"; do
  kb=$(awk '/VmHWM/ {print $2}' "/proc/$p/status"); [ "$kb" -gt "$rss_kb" ] && rss_kb=$kb
done
events=$(pg_url "$DB_URL" -At -c "SELECT count(*) FROM outbox_events")
mock_seen=$(curl -fsS "http://127.0.0.1:$MOCK_PORT/_mock/stats")
twice=$(curl -fsS "http://127.0.0.1:$MOCK_PORT/_mock/tally" | python3 -c 'import json,sys; print(sum(1 for m in json.load(sys.stdin)["messages"].values() if m["count"] > 1))')
[ "$twice" = 0 ] || die "$twice messages reached the provider more than once"
for p in "${svcs[@]}"; do kill "$p"; wait "$p" 2>/dev/null || true; done

step "baseline: pgbench, claim-and-complete alone over the same $events events"
pg_url "$DB_URL" -q -c "UPDATE outbox_events SET status = 'PENDING', completed_at = NULL, lease_owner = NULL, lease_until = NULL, destinations_done = '{}'"
cat >/tmp/cpaas_claim.sql <<'SQL'
WITH RECURSIVE heads AS (
  (SELECT e.lane, COALESCE(e.tenant_id, '00000000-0000-0000-0000-000000000000'::uuid) AS tk
   FROM outbox_events e WHERE e.status = 'PENDING' ORDER BY 1, 2 LIMIT 1)
  UNION ALL
  SELECT n.lane, n.tk FROM heads h CROSS JOIN LATERAL (
    SELECT e.lane, COALESCE(e.tenant_id, '00000000-0000-0000-0000-000000000000'::uuid) AS tk
    FROM outbox_events e
    WHERE e.status = 'PENDING'
      AND (e.lane, COALESCE(e.tenant_id, '00000000-0000-0000-0000-000000000000'::uuid)) > (h.lane, h.tk)
    ORDER BY 1, 2 LIMIT 1) n),
share AS (SELECT GREATEST(1, ceil(500::float8 / count(*)))::int8 AS n FROM heads),
picked AS (
  SELECT c.id, h.lane, c.seq, row_number() OVER (PARTITION BY h.lane, h.tk ORDER BY c.seq) AS turn
  FROM heads h CROSS JOIN LATERAL (
    SELECT e.id, e.seq FROM outbox_events e
    WHERE e.status = 'PENDING' AND e.lane = h.lane
      AND COALESCE(e.tenant_id, '00000000-0000-0000-0000-000000000000'::uuid) = h.tk
      AND e.next_attempt_at <= now() AND (e.lease_until IS NULL OR e.lease_until < now())
      AND NOT EXISTS (SELECT 1 FROM outbox_events o WHERE o.aggregate_id = e.aggregate_id
                      AND o.status = 'PENDING' AND o.seq < e.seq)
    ORDER BY e.seq LIMIT (SELECT n FROM share)
    FOR UPDATE OF e SKIP LOCKED) c),
chosen AS (SELECT id FROM picked ORDER BY lane, turn, seq LIMIT 500),
u AS (
  UPDATE outbox_events e SET lease_owner = 'bench-' || :client_id,
    lease_until = now() + make_interval(secs => 30)
  WHERE e.id = ANY(ARRAY(SELECT id FROM chosen))
  RETURNING e.id, e.seq, e.tenant_id, e.aggregate_id, e.topic, e.payload, e.attempts,
            e.destinations_done, e.lane)
SELECT coalesce(array_agg(id)::text, '{}') AS ids FROM u \gset
UPDATE outbox_events SET status = 'DONE', completed_at = now(), lease_owner = NULL,
  lease_until = NULL, last_error = NULL
WHERE id = ANY(':ids'::uuid[]) AND lease_owner = 'bench-' || :client_id;
SQL
tx=$(( (events + 499) / 500 ))
pg_start=$(date +%s.%N)
"$PGBENCH" -h 127.0.0.1 -p "$PG_PORT" -U postgres -n -c 2 -j 2 -t $(( (tx + 1) / 2 + 1 )) -f /tmp/cpaas_claim.sql "$DB" >/dev/null 2>&1
pg_end=$(date +%s.%N)

python3 - "$MESSAGES" "$events" "$start" "$end" "$pg_start" "$pg_end" "$rss_kb" "$mock_seen" $cpu_split <<'PY'
import json, os, sys
messages, events, start, end, pg_start, pg_end, rss, mock, busy, svc, mock_cpu, nats, hz = sys.argv[1:]
t = float(end) - float(start); pt = float(pg_end) - float(pg_start)
mps = int(messages) / t; eps = int(events) / t; base = int(events) / pt
print()
print(f"drain ({os.environ.get('REPLICAS', '1')} replica(s), {os.environ.get('BUS', 'nats'):5}): {t:6.1f} s   {mps:8.0f} messages/s   {eps:8.0f} events/s   (goal >= 3000 messages/s)")
print(f"pgbench claim+complete   : {pt:6.1f} s   {base:8.0f} events/s")
print(f"ratio events/s           : {eps / base:8.2f}")
print(f"service peak RSS         : {int(rss) / 1024:8.1f} MiB")
print(f"mock providers           : {mock}")
busy, svc, mock_cpu, nats, hz = (int(x) for x in (busy, svc, mock_cpu, nats, hz))
other = busy - svc - mock_cpu - nats
print(f"CPU during the drain     : {busy / hz / t:4.2f} of 2 cores busy; of that: service {svc / busy:.0%}, "
      f"PostgreSQL and the rest {other / busy:.0%}, mock providers {mock_cpu / busy:.0%}, the broker {nats / busy:.0%}")
PY
