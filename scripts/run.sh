#!/usr/bin/env bash
# Runs Sentinel on this machine: PostgreSQL (DATABASE_URL, or a private cluster), the migrations,
# the gateway and a worker. Ctrl-C stops them cleanly.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

require_cargo
ensure_postgres

say "Building sentinel-api and sentinel-worker (release)"
cargo build --release -q -p sentinel-api -p sentinel-worker
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release"

say "Migrating"
"$BIN/sentinel-api" migrate

export SENTINEL_LISTEN="${SENTINEL_LISTEN:-127.0.0.1:8080}"
pids=()
stop() {
  say "Stopping"
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait
  stop_private_cluster
}
trap stop INT TERM

"$BIN/sentinel-api" serve & pids+=($!)
"$BIN/sentinel-worker" run & pids+=($!)
say "Gateway on http://$SENTINEL_LISTEN (GET /healthz, /readyz); worker running. Ctrl-C stops both."
wait -n || true
stop
