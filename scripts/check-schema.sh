#!/usr/bin/env bash
# Checks that src/db/schema.rs is exactly what `diesel print-schema` makes of
# the migrations.
#
#   bash scripts/check-schema.sh
#
# Runs every migration in a scratch database on TEST_DATABASE_URL's server
# (PostgreSQL is installed and started when the URL is local), prints the
# schema with the settings of diesel.toml and diffs it against the committed
# file. Installs the diesel CLI when it is missing. The scratch database is
# always dropped.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib/services.sh
source scripts/lib/services.sh

TEST_DATABASE_URL=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
DIESEL_CLI_VERSION='^2.3'
SCHEMA_FILE=src/db/schema.rs
SCRATCH_DB=cpaas_schema_check_$$

if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
  # shellcheck source=/dev/null
  source "$HOME/.cargo/env"
fi

# Puts the diesel CLI (postgres only) on PATH, building it when needed.
ensure_diesel() {
  if ! command -v diesel >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/diesel" ]; then
    PATH=$HOME/.cargo/bin:$PATH
  fi
  command -v diesel >/dev/null 2>&1 && return 0

  command -v cargo >/dev/null 2>&1 || die "cargo is not installed (see https://rustup.rs)"
  if ! { pkg-config --exists libpq 2>/dev/null || [ -f /usr/include/postgresql/libpq-fe.h ]; }; then
    apt_install libpq-dev
  fi
  step "installing diesel_cli $DIESEL_CLI_VERSION (cargo install)"
  cargo install diesel_cli --version "$DIESEL_CLI_VERSION" \
    --no-default-features --features postgres --locked
  PATH=$HOME/.cargo/bin:$PATH
  command -v diesel >/dev/null 2>&1 || die "diesel is not on PATH after installing diesel_cli"
}

if is_local_url "$TEST_DATABASE_URL"; then
  PG_PORT=$(url_port "$TEST_DATABASE_URL" 5432)
  ensure_postgres
else
  step "using PostgreSQL at TEST_DATABASE_URL as is"
  ensure_psql
fi

ensure_diesel
step "using diesel $(diesel --version | awk '$1 == "Version:" { print $2 }')"

scratch_dir=$(mktemp -d)
drop_scratch() {
  pg_url "$TEST_DATABASE_URL" -c "drop database if exists \"$SCRATCH_DB\" with (force)" >/dev/null || true
  rm -rf "$scratch_dir"
}
trap drop_scratch EXIT

step "running the migrations in scratch database $SCRATCH_DB"
pg_url "$TEST_DATABASE_URL" -c "create database \"$SCRATCH_DB\"" >/dev/null
scratch_url=$(with_database "$TEST_DATABASE_URL" "$SCRATCH_DB")
# `migration run` rewrites the print_schema file named in diesel.toml; an
# absent config file keeps it from touching src/db/schema.rs.
diesel migration run --database-url "$scratch_url" --migration-dir migrations \
  --config-file "$scratch_dir/none.toml"

step "diff -u $SCHEMA_FILE <(diesel print-schema)"
diesel print-schema --database-url "$scratch_url" >"$scratch_dir/schema.rs"
if ! diff -u --label "$SCHEMA_FILE" --label "diesel print-schema" \
  "$SCHEMA_FILE" "$scratch_dir/schema.rs"; then
  die "$SCHEMA_FILE does not match the migrations; run diesel print-schema > $SCHEMA_FILE"
fi
step "$SCHEMA_FILE matches the migrations"
