#!/usr/bin/env bash
# The TypeScript client and the dashboard: installs their npm packages, checks that the committed
# client (openapi/client/src/schema.ts) matches openapi/openapi.json, type-checks both, builds the
# dashboard, then runs the client's tests and the dashboard's browser tests (Debian's Chromium,
# installed with apt when missing and run as root) against a real gateway serving the built
# dashboard, a worker with the default model, and PostgreSQL. Screenshots of every page go to
# test-output/dashboard/.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release"
scratch web

say "Client and dashboard: npm packages, generated client, type checks, build"
build_web
npm run check-generated --workspace openapi/client --silent
npm run check --workspaces --silent || die "the TypeScript type check failed (above)"

CHROMIUM="${CHROMIUM_PATH:-/usr/bin/chromium}"
if [ ! -x "$CHROMIUM" ]; then
  [ "$(id -u)" = 0 ] || die "the browser tests need Debian's chromium at $CHROMIUM: apt-get install chromium (or set CHROMIUM_PATH)"
  say "Installing chromium with apt (browser downloads do not work here)"
  (apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }) \
    || die "apt-get install chromium failed"
fi

require_cargo
ensure_postgres
if [ -z "${SENTINEL_MODEL:-}" ]; then
  SENTINEL_MODEL=$(bash "$ROOT/scripts/fetch-model.sh")
fi
export SENTINEL_MODEL HF_HUB_OFFLINE=1
build_binaries sentinel-api sentinel-worker

URL=$(new_database "$DATABASE_URL" "sentinel_web_$$")
PORT=$(free_port 18780)
# Forwards may reach the client tests' agent on loopback.
start_gateway "$URL" "$PORT" "$WORK/gateway.log" SENTINEL_ADMIN_TOKEN="$ADMIN_TOKEN" \
  SENTINEL_DASHBOARD_DIR="$ROOT/dashboard/dist" SENTINEL_FORWARD_ALLOW=127.0.0.0/8
start_worker "$URL" "$WORK/worker.log" SENTINEL_MAX_SEQS=2 SENTINEL_MAX_TOKENS=48 \
  SENTINEL_FORWARD_ALLOW=127.0.0.0/8

export SENTINEL_URL="http://127.0.0.1:$PORT" SENTINEL_ADMIN_TOKEN="$ADMIN_TOKEN" CHROMIUM_PATH="$CHROMIUM"
export SENTINEL_SCREENSHOTS="$ROOT/test-output/dashboard"
status=0
say "Client tests against $SENTINEL_URL"
npm test --workspace openapi/client --silent || status=1
say "Dashboard in Chromium against $SENTINEL_URL (screenshots: test-output/dashboard/)"
npm run test:browser --workspace dashboard --silent || status=1
if [ "$status" != 0 ]; then
  echo "--- gateway log (tail)" >&2; tail -n 30 "$WORK/gateway.log" >&2
  echo "--- worker log (tail)" >&2; tail -n 30 "$WORK/worker.log" >&2
  die "the client or dashboard tests failed (above)"
fi
say "Client and dashboard tests passed"
