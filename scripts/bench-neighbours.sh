#!/usr/bin/env bash
# Noisy neighbours (docs/RELIABILITY.md): a release gateway with default settings on a database of
# its own (sentinel_neighbours), and `sentinel-loadgen neighbours`: a bystander tenant's acks and
# job reads on the idle stack, then while another tenant holds 800 long polls on a capped kind and
# a third submits 20 jobs/s, then a progress flood; then stalled event streams against the
# gateway's RSS (scripts/bench/sse_memory.py).
#   SENTINEL_BENCH_SECS (10)   seconds each scenario is measured
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
require_cargo
ensure_postgres
command -v psql >/dev/null || die "psql is needed to create the benchmark database"
trap 'kill $(jobs -p) 2>/dev/null || true; stop_private_cluster' EXIT

SECS="${SENTINEL_BENCH_SECS:-10}"
BASE_URL="${DATABASE_URL%/*}"
build_binaries sentinel-api sentinel-loadgen
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release"
psql -q "$BASE_URL/postgres" -c "DROP DATABASE IF EXISTS sentinel_neighbours WITH (FORCE)" -c "CREATE DATABASE sentinel_neighbours"
export DATABASE_URL="$BASE_URL/sentinel_neighbours"
"$BIN/sentinel-api" migrate >/dev/null
export SENTINEL_ADMIN_TOKEN="bench-admin-token-$(date +%s)"
export SENTINEL_LISTEN=127.0.0.1:18182
export RUST_LOG=warn
"$BIN/sentinel-api" serve & GATEWAY=$!
for _ in $(seq 50); do curl -sf "http://$SENTINEL_LISTEN/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
say "A bystander tenant, idle and beside noisy tenants (${SECS} s each)"
"$BIN/sentinel-loadgen" neighbours --url "http://$SENTINEL_LISTEN" --admin-token "$SENTINEL_ADMIN_TOKEN" --secs "$SECS"
kill -TERM "$GATEWAY"; wait "$GATEWAY" || true

say "Stalled event streams against the gateway's RSS"
DATABASE_URL="$BASE_URL/postgres" python3 "$ROOT/scripts/bench/sse_memory.py" "$BIN/sentinel-api" sentinel_sse_memory 18183
