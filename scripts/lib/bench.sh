# shellcheck shell=bash
# The stack the latency and soak benchmarks share: the mock providers on MOCK_PORT and
# `cpaas serve` on PORT (seeded, on DB_URL, events on NATS under a stream named after TAG),
# with a Vonage provider pointing at the mock. Needs BIN, PORT, MOCK_PORT, DB_URL, NATS, TAG;
# extra `NAME=value` arguments are added to the service's environment; the service's log goes
# to SERVICE_LOG (default: nowhere). Sets `svc` to the service's pid and appends both pids to
# `pids`.

# Prints the access token of a seeded user.
bench_login() {
  curl -fsS "http://127.0.0.1:$PORT/auth/v1/login" -H 'content-type: application/json' \
    -d "{\"email\":\"$1\",\"password\":\"Password123!\"}" | sed -E 's/.*"accessToken":"([^"]+)".*/\1/'
}

start_vonage_stack() {
  "$BIN" mock-providers --listen "127.0.0.1:$MOCK_PORT" >/dev/null 2>&1 &
  pids+=($!)
  env DATABASE_URL="$DB_URL" LISTEN_ADDR="127.0.0.1:$PORT" APP_ENV=development SEED_ON_START=true \
    DEV_KEYS_DIR=/tmp/cpaas-bench-keys DATABASE_POOL_SIZE=16 LOG_FORMAT=json RUST_LOG=warn \
    NATS_URL="$NATS" NATS_STREAM="${TAG^^}_$RUN" NATS_SUBJECT_PREFIX="$TAG$RUN." CONSUMERS_ENABLED=false \
    RATE_LIMIT_OVERRIDES=professional.SMS=1000000000 "$@" \
    "$BIN" serve >"${SERVICE_LOG:-/dev/null}" 2>&1 &
  svc=$!
  pids+=("$svc")
  for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$PORT/cpaas/v1/_internal/healthz" >/dev/null 2>&1 && break
    sleep 0.2
  done
  add_vonage_provider "$(bench_login admin@eventzr.com)"
}

# Gives the tenant of the admin token $1 a Vonage provider pointing at the mock.
add_vonage_provider() {
  curl -fsS "http://127.0.0.1:$PORT/cpaas/v1/providers" -H "authorization: Bearer $1" \
    -H 'content-type: application/json' -o /dev/null -d "{\"name\":\"vonage-mock\",\"kind\":\"VONAGE\",\"priority\":1,
    \"config\":{\"from\":\"Eventzr\",\"base_url\":\"http://127.0.0.1:$MOCK_PORT\"},
    \"credentials\":{\"api_key\":\"k\",\"api_secret\":\"s\",\"signature_secret\":\"x\"}}"
}
