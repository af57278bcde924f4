#!/usr/bin/env bash
# Runs Sentinel on this machine: PostgreSQL (DATABASE_URL, or a private cluster), the migrations,
# the gateway and a worker. Ctrl-C (or SIGTERM) stops them cleanly, then the private cluster.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

pids=()
shutdown() {
  if [ "${#pids[@]}" -gt 0 ]; then
    say "Stopping"
    kill -TERM "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
  fi
  stop_private_cluster
}
trap shutdown EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

require_cargo
ensure_postgres

if [ -z "${SENTINEL_MODEL:-}" ]; then
  SENTINEL_MODEL=$(bash "$ROOT/scripts/fetch-model.sh")
fi
export SENTINEL_MODEL HF_HUB_OFFLINE=1

BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release"
# Only the two binaries it runs, offline from the committed .sqlx data (no tests, benches or tools).
build_binaries sentinel-api sentinel-worker

if command -v npm >/dev/null; then
  say "Building the dashboard (npm ci, vite build)"
  build_web
else
  say "npm not found: /dashboard/ stays unbuilt (install Node.js 20.19 or newer for it)"
fi
export SENTINEL_DASHBOARD_DIR="${SENTINEL_DASHBOARD_DIR:-$ROOT/dashboard/dist}"

say "Migrating"
"$BIN/sentinel-api" migrate

export SENTINEL_LISTEN="${SENTINEL_LISTEN:-127.0.0.1:8080}"
# The admin token creates tenants. Keep one per checkout unless the caller set their own.
if [ -z "${SENTINEL_ADMIN_TOKEN:-}" ]; then
  mkdir -p "$STATE_DIR"
  [ -s "$STATE_DIR/admin_token" ] || (umask 077; head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$STATE_DIR/admin_token")
  SENTINEL_ADMIN_TOKEN=$(cat "$STATE_DIR/admin_token")
  export SENTINEL_ADMIN_TOKEN
  say "Admin token (for /v1/admin/*) is in $STATE_DIR/admin_token"
fi

"$BIN/sentinel-api" serve & pids+=($!)
"$BIN/sentinel-worker" run & pids+=($!)
say "Gateway on http://$SENTINEL_LISTEN (dashboard at /dashboard/, API docs at /docs); worker running. Ctrl-C stops both."
# Returns when either process exits (or a signal arrives); the EXIT trap stops the rest.
wait -n "${pids[@]}"
