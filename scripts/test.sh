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

# Each phase's wall time, printed as it ends and as a table at the end, so a slow phase shows up
# in every CI log.
PHASE_NAMES=()
PHASE_SECS=()
PHASE_STARTED=$SECONDS
PHASE_NAME="setup (PostgreSQL, tools, model)"
phase() {
  local took=$((SECONDS - PHASE_STARTED))
  PHASE_NAMES+=("$PHASE_NAME")
  PHASE_SECS+=("$took")
  printf '    (%s: %d s)\n' "$PHASE_NAME" "$took" >&2
  PHASE_NAME="$1"
  PHASE_STARTED=$SECONDS
  say "$1"
}
phase_table() {
  local took=$((SECONDS - PHASE_STARTED)) total=0 i
  PHASE_NAMES+=("$PHASE_NAME")
  PHASE_SECS+=("$took")
  echo "| phase | seconds |" >&2
  echo "|---|---|" >&2
  for i in "${!PHASE_NAMES[@]}"; do
    echo "| ${PHASE_NAMES[$i]} | ${PHASE_SECS[$i]} |" >&2
    total=$((total + PHASE_SECS[i]))
  done
  echo "| total | $total |" >&2
}

require_cargo
ensure_postgres
trap 'status=$?; phase_table; stop_private_cluster; exit $status' EXIT

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

phase "Formatting"
cargo fmt --all -- --check 2>/dev/null || die "cargo fmt found unformatted code: run 'cargo fmt --all'"

phase "Linting the container files"
bash "$ROOT/scripts/lint-containers.sh"

phase "Migrating $DATABASE_URL"
cargo sqlx migrate run --source migrations

# `prepare --check` invalidates the crates that use query macros, so it runs before the one
# release build (the tests'), not after it.
phase "Checking that .sqlx matches the queries and the schema"
SQLX_OFFLINE=false cargo sqlx prepare --workspace --check -- --all-targets

phase "Clippy"
export SQLX_OFFLINE=true
cargo clippy --workspace --all-targets -q -- -D warnings

phase "Building and running the tests offline from the committed .sqlx data"
cargo test --release --workspace --no-fail-fast "$@"

# The process-level faults (kill -9 of the gateway, a PostgreSQL crash) with a 10 s load each;
# docs/RELIABILITY.md has the 30 s runs.
phase "Fault tests: real binaries, killed and restarted"
SENTINEL_FAULT_SECS="${SENTINEL_FAULT_SECS:-10}" bash "$ROOT/scripts/faults.sh" all

phase "TypeScript client and dashboard: generated-client check, client tests, browser tests"
bash "$ROOT/scripts/web.sh"

phase "API contract: schemathesis against a live gateway"
bash "$ROOT/scripts/contract.sh"

phase "Fuzzing: adapters, signature verifiers, SOAP parser, healing"
bash "$ROOT/scripts/fuzz.sh"
