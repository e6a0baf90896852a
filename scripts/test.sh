#!/usr/bin/env bash
# Runs the whole test suite against a real PostgreSQL, NATS (JetStream) and a
# Kafka-protocol broker (tansu).
#
#   bash scripts/test.sh [extra cargo test args]
#
# On a Debian 12 machine it installs and starts the local servers when they
# are missing, prepares a migrated template database, runs
# `cargo test --all-targets`, then sends generated requests to every operation
# of the OpenAPI document (scripts/api-fuzz.sh). Point TEST_DATABASE_URL / TEST_NATS_URL at other
# servers to skip the local service management. Unless TEST_KAFKA_BROKERS names
# a broker, tansu is installed when missing (cargo install) and started in
# memory on a free port for the run; TANSU_BIN names the binary the tests start
# brokers of their own with.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib/services.sh
source scripts/lib/services.sh

export TEST_DATABASE_URL=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
export TEST_NATS_URL=${TEST_NATS_URL:-nats://127.0.0.1:4222}
export TEST_TEMPLATE_DB=${TEST_TEMPLATE_DB:-cpaas_template}

if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
  # shellcheck source=/dev/null
  source "$HOME/.cargo/env"
fi
command -v cargo >/dev/null 2>&1 || die "cargo is not installed (see https://rustup.rs)"

if is_local_url "$TEST_DATABASE_URL"; then
  PG_PORT=$(url_port "$TEST_DATABASE_URL" 5432)
  ensure_postgres
  ensure_pg_max_connections 500
else
  step "using PostgreSQL at TEST_DATABASE_URL as is"
  ensure_psql
fi

if is_local_url "$TEST_NATS_URL"; then
  NATS_PORT=$(url_port "$TEST_NATS_URL" 4222)
  ensure_nats
else
  step "using NATS at TEST_NATS_URL as is"
fi

ensure_tansu
if [ -z "${TEST_KAFKA_BROKERS:-}" ]; then
  step "starting a Kafka-protocol broker (tansu, in memory)"
  KAFKA_LOG=$(mktemp -t cpaas-test-kafka.XXXXXX)
  start_kafka_broker "$KAFKA_LOG"
  trap 'kill "$KAFKA_BROKER_PID" 2>/dev/null || true' EXIT
  export TEST_KAFKA_BROKERS=$KAFKA_BROKER_ADDR
  step "Kafka broker at $TEST_KAFKA_BROKERS"
fi

step "dropping leftover cpaas_test_* databases"
pg_url "$TEST_DATABASE_URL" -At \
  -c "select datname from pg_database where datname like 'cpaas\_test\_%'" |
  while IFS= read -r db; do
    [ -n "$db" ] || continue
    pg_url "$TEST_DATABASE_URL" -c "drop database if exists \"$db\" with (force)" >/dev/null
  done

step "building cpaas"
cargo build --bin cpaas

step "preparing template database $TEST_TEMPLATE_DB"
# Rebuilt on every run so that edited migrations are always picked up.
if [ -n "$(pg_url "$TEST_DATABASE_URL" -At -c "select 1 from pg_database where datname = '$TEST_TEMPLATE_DB'")" ]; then
  pg_url "$TEST_DATABASE_URL" -c "alter database \"$TEST_TEMPLATE_DB\" is_template false" >/dev/null
  pg_url "$TEST_DATABASE_URL" -c "drop database \"$TEST_TEMPLATE_DB\" with (force)" >/dev/null
fi
pg_url "$TEST_DATABASE_URL" -c "create database \"$TEST_TEMPLATE_DB\"" >/dev/null
DATABASE_URL=$(with_database "$TEST_DATABASE_URL" "$TEST_TEMPLATE_DB") \
  "${CARGO_TARGET_DIR:-target}/debug/cpaas" migrate

step "cargo test --all-targets $*"
cargo test --all-targets "$@"

CPAAS_BIN="${CARGO_TARGET_DIR:-target}/debug/cpaas" bash scripts/api-fuzz.sh
