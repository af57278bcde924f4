#!/usr/bin/env bash
# Gateway benchmark: durable acks/s flat out, ack latency open-loop at 5,000/s, the same flat-out
# load with one transaction per request, and 10,000 idle connections plus 1,000 SSE subscribers
# against the gateway's RSS. Uses a database of its own (sentinel_loadtest) on DATABASE_URL's
# server, or on the private cluster.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
require_cargo
ensure_postgres
command -v psql >/dev/null || die "psql is needed to create the benchmark database"
trap 'kill $(jobs -p) 2>/dev/null || true; stop_private_cluster' EXIT

SECS="${SENTINEL_BENCH_SECS:-10}"
BASE_URL="${DATABASE_URL%/*}"
psql -q "$BASE_URL/postgres" -c "DROP DATABASE IF EXISTS sentinel_loadtest WITH (FORCE)" -c "CREATE DATABASE sentinel_loadtest"
export DATABASE_URL="$BASE_URL/sentinel_loadtest"
cargo build --release -q -p sentinel-api -p sentinel-loadgen
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release"
"$BIN/sentinel-api" migrate >/dev/null

export SENTINEL_ADMIN_TOKEN="bench-admin-token-$(date +%s)"
export SENTINEL_LISTEN=127.0.0.1:18181
export RUST_LOG=warn
URL="http://$SENTINEL_LISTEN"

start_gateway() {
  "$BIN/sentinel-api" serve & GATEWAY=$!
  for _ in $(seq 50); do curl -sf "$URL/healthz" >/dev/null 2>&1 && return; sleep 0.1; done
  die "the gateway did not start"
}
stop_gateway() { kill -TERM "$GATEWAY"; wait "$GATEWAY" || true; }

say "Group commit, flat out"
start_gateway
"$BIN/sentinel-loadgen" acks --url "$URL" --admin-token "$SENTINEL_ADMIN_TOKEN" --secs "$SECS" --concurrency 64
say "Group commit, open loop at 5,000/s"
"$BIN/sentinel-loadgen" acks --url "$URL" --admin-token "$SENTINEL_ADMIN_TOKEN" --secs "$SECS" --rate 5000
say "10,000 idle keep-alive connections and 1,000 SSE subscribers"
"$BIN/sentinel-loadgen" hold --url "$URL" --admin-token "$SENTINEL_ADMIN_TOKEN" --pid "$GATEWAY" --idle 10000 --sse 1000
stop_gateway

say "One transaction per request, flat out"
SENTINEL_INGEST_BATCHING=0 start_gateway
"$BIN/sentinel-loadgen" acks --url "$URL" --admin-token "$SENTINEL_ADMIN_TOKEN" --secs "$SECS" --concurrency 64
say "One transaction per request, open loop at 5,000/s"
"$BIN/sentinel-loadgen" acks --url "$URL" --admin-token "$SENTINEL_ADMIN_TOKEN" --secs "$SECS" --rate 5000
stop_gateway
