#!/usr/bin/env bash
# Runs every test against a real PostgreSQL and the real default model (fetched when missing):
# formatting, then one release build that also runs clippy and checks the committed sqlx offline
# data, then the whole workspace's tests (each test gets a database of its own), the process-level
# fault tests (scripts/faults.sh), many gateways and workers through PgBouncer and a failover
# (scripts/cluster.sh), the TypeScript client's and the dashboard's tests in a real
# browser (scripts/web.sh), the API contract check (scripts/contract.sh), the Python SDK against a
# live gateway (scripts/python-sdk.sh) and bounded fuzzing
# (scripts/fuzz.sh). Everything runs on that one build: the tests build in release mode because
# the model is unusably slow in a debug build.
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

if [ -z "${SENTINEL_MODEL:-}" ]; then
  SENTINEL_MODEL=$(bash "$ROOT/scripts/fetch-model.sh")
fi
export SENTINEL_MODEL HF_HUB_OFFLINE=1
say "Model: $SENTINEL_MODEL"

phase "Formatting"
cargo fmt --all -- --check 2>/dev/null || die "cargo fmt found unformatted code: run 'cargo fmt --all'"

phase "Linting the container files"
bash "$ROOT/scripts/lint-containers.sh"

# One release build serves every later phase; nothing after it compiles the workspace again.
# - Clippy runs inside it: cargo passes our own crates (not the dependencies) through
#   clippy-driver, which lints and then compiles them, so there is no separate check build of the
#   dependency tree (mistral.rs's included). -D warnings, on every target, as `cargo clippy
#   --workspace --all-targets -- -D warnings` would.
# - The query macros run live against a database migrated from migrations/ and write what they
#   describe into a fresh folder, which must then equal the committed .sqlx/ file for file: the
#   check `cargo sqlx prepare --check` makes, without its second, dev-profile build. Equal files
#   are what an offline build (scripts/run.sh, a Docker build) reads, so that build is covered.
phase "Building: release, clippy -D warnings, queries described against the migrated schema"
SCHEMA_URL=$(schema_database "$DATABASE_URL" "${PG_DB}_schema")
LIVE_SQLX=$(mktemp -d)
CLIPPY_DRIVER=$(rustup which clippy-driver 2>/dev/null || command -v clippy-driver) \
  || die "clippy-driver was not found: rustup component add clippy"
export RUSTC_WORKSPACE_WRAPPER="$CLIPPY_DRIVER" CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"
# Every workspace crate depends on sentinel-queue, so this recompiles each of them and every query
# macro runs again (a cached crate would write nothing).
touch queue/src/lib.rs
live_build() {
  SQLX_OFFLINE=false SQLX_OFFLINE_DIR="$LIVE_SQLX" DATABASE_URL="$SCHEMA_URL" cargo "$@" --release --workspace --locked
}
live_build test --no-run
# The benches, to lint them, and every binary: `cargo test` builds only the binaries its tests
# run, and the fault tests also need sentinel-loadgen.
live_build build --benches --bins
if ! diff -r -q "$ROOT/.sqlx" "$LIVE_SQLX" >&2; then
  die ".sqlx/ does not match the queries and the schema: run 'bash scripts/sqlx-prepare.sh' and commit .sqlx/"
fi
rm -rf "$LIVE_SQLX"
export SENTINEL_BUILT=1

phase "Running the tests"
cargo test --release --workspace --locked --no-fail-fast "$@"

# The process-level faults (kill -9 of the gateway, a PostgreSQL crash) with a 10 s load each;
# docs/RELIABILITY.md has the 30 s runs.
phase "Fault tests: real binaries, killed and restarted"
SENTINEL_FAULT_SECS="${SENTINEL_FAULT_SECS:-10}" bash "$ROOT/scripts/faults.sh" all

# Many processes on one Postgres: two gateways and two workers through PgBouncer in transaction
# mode, then a primary killed under load and its synchronous standby promoted (15 s of load each).
phase "Many processes: two gateways and two workers through PgBouncer; failover to a standby"
SENTINEL_CLUSTER_SECS="${SENTINEL_CLUSTER_SECS:-15}" bash "$ROOT/scripts/cluster.sh" all

phase "TypeScript client and dashboard: generated-client check, client tests, browser tests"
bash "$ROOT/scripts/web.sh"

phase "API contract: schemathesis against a live gateway"
bash "$ROOT/scripts/contract.sh"

phase "Python SDK: generated-client check, workers against a live gateway"
bash "$ROOT/scripts/python-sdk.sh"

phase "Fuzzing: adapters, signature verifiers, SOAP parser, healing"
bash "$ROOT/scripts/fuzz.sh"
