#!/usr/bin/env bash
# Runs cpaas on this machine without Docker, against a local PostgreSQL and
# NATS (JetStream), installing and starting them when needed (Debian 12).
#
#   bash scripts/run-local.sh            # builds and runs this checkout
#   CPAAS_BIN=target/release/cpaas bash scripts/run-local.sh   # runs a built binary
#
# In development the service applies migrations and seeds data at start-up.
# The defaults are docker-compose.yml's: development, the operator key
# dev-internal-key, local webhook receivers allowed, and the development keys
# kept in .cpaas/ of this checkout whatever the working directory.
# Any variable from .env.example can be set in the environment beforehand.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib/services.sh
source scripts/lib/services.sh

export DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/cpaas}
export NATS_URL=${NATS_URL:-nats://127.0.0.1:4222}
export INTERNAL_API_KEY=${INTERNAL_API_KEY:-dev-internal-key}
export APP_ENV=${APP_ENV:-development}
export LOG_FORMAT=${LOG_FORMAT:-pretty}
export PUBLIC_BASE_URL=${PUBLIC_BASE_URL:-http://localhost:8080}
export WEBHOOK_ALLOW_HTTP=${WEBHOOK_ALLOW_HTTP:-true}
export WEBHOOK_ALLOW_INTERNAL_HOSTS=${WEBHOOK_ALLOW_INTERNAL_HOSTS:-true}
export DEV_KEYS_DIR=${DEV_KEYS_DIR:-$PWD/.cpaas}

if [ -z "${CPAAS_BIN:-}" ]; then
  if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
    # shellcheck source=/dev/null
    source "$HOME/.cargo/env"
  fi
  command -v cargo >/dev/null 2>&1 || die "cargo is not installed (see https://rustup.rs)"
fi

if is_local_url "$DATABASE_URL"; then
  PG_PORT=$(url_port "$DATABASE_URL" 5432)
  ensure_postgres
else
  step "using PostgreSQL at DATABASE_URL as is"
  ensure_psql
fi

if is_local_url "$NATS_URL"; then
  NATS_PORT=$(url_port "$NATS_URL" 4222)
  ensure_nats
else
  step "using NATS at NATS_URL as is"
fi

db=${DATABASE_URL%%\?*}
db=${db##*/}
admin_url=$(with_database "$DATABASE_URL" postgres)
if [ -z "$(pg_url "$admin_url" -At -c "select 1 from pg_database where datname = '$db'")" ]; then
  step "creating database $db"
  pg_url "$admin_url" -c "create database \"$db\"" >/dev/null
fi

if [ -n "${CPAAS_BIN:-}" ]; then
  step "starting $CPAAS_BIN serve"
  exec "$CPAAS_BIN" serve
fi
step "starting cpaas (cargo run --release -- serve)"
exec cargo run --release -- serve
