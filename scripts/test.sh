#!/usr/bin/env bash
# Runs every test against a real PostgreSQL and the real default model (fetched when missing):
# formatting, lints, the committed sqlx offline data, then the whole workspace's tests (each test
# gets a database of its own), then the process-level fault tests (scripts/faults.sh), the
# TypeScript client's and the dashboard's tests in a real browser (scripts/web.sh), the API
# contract check (scripts/contract.sh) and bounded fuzzing (scripts/fuzz.sh). Tests build in
# release mode: the model is unusably slow in a debug build, and the README's run command shares
# the same build.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

require_cargo
ensure_postgres
trap stop_private_cluster EXIT

SQLX_CLI_VERSION=0.8.6
if ! cargo sqlx --version 2>/dev/null | grep -q "$SQLX_CLI_VERSION"; then
  say "Installing sqlx-cli $SQLX_CLI_VERSION (checks the committed .sqlx query data)"
  cargo install sqlx-cli --version "$SQLX_CLI_VERSION" --locked --no-default-features --features postgres,rustls
fi

if [ -z "${SENTINEL_MODEL:-}" ]; then
  SENTINEL_MODEL=$(bash "$ROOT/scripts/fetch-model.sh")
fi
export SENTINEL_MODEL HF_HUB_OFFLINE=1
say "Model: $SENTINEL_MODEL"

say "Formatting"
cargo fmt --all -- --check 2>/dev/null || die "cargo fmt found unformatted code: run 'cargo fmt --all'"

bash "$ROOT/scripts/lint-containers.sh"

say "Migrating $DATABASE_URL"
cargo sqlx migrate run --source migrations

# `prepare --check` invalidates the crates that use query macros, so it runs before the one
# release build (the tests'), not after it.
say "Checking that .sqlx matches the queries and the schema"
SQLX_OFFLINE=false cargo sqlx prepare --workspace --check -- --all-targets

say "Clippy"
export SQLX_OFFLINE=true
cargo clippy --workspace --all-targets -q -- -D warnings

say "Building and running the tests offline from the committed .sqlx data"
cargo test --release --workspace --no-fail-fast "$@"

# The process-level faults (kill -9 of the gateway, a PostgreSQL crash) with a 10 s load each;
# docs/RELIABILITY.md has the 30 s runs.
say "Fault tests: real binaries, killed and restarted"
SENTINEL_FAULT_SECS="${SENTINEL_FAULT_SECS:-10}" bash "$ROOT/scripts/faults.sh" all

say "TypeScript client and dashboard: generated-client check, client tests, browser tests"
bash "$ROOT/scripts/web.sh"

say "API contract: schemathesis against a live gateway"
bash "$ROOT/scripts/contract.sh"

say "Fuzzing: adapters, signature verifiers, SOAP parser, healing"
bash "$ROOT/scripts/fuzz.sh"
