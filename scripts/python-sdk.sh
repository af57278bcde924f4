#!/usr/bin/env bash
# The Python SDK in clients/python/: checks that its generated API client (sentinel_client/) matches
# openapi/openapi.json, then runs its tests (clients/python/tests/, unittest) against a real gateway,
# a real worker and PostgreSQL: Python workers from the SDK, in this process and as separate
# processes killed with kill -9, and a forwarded agent whose requests the standardwebhooks package
# verifies. The tools (openapi-python-client, pinned) and the SDK go into a virtual environment
# under .sentinel/python-sdk.
#   bash scripts/python-sdk.sh            check, then test
#   bash scripts/python-sdk.sh generate   rewrite clients/python/sentinel_client/ from the spec
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

GENERATOR_VERSION=0.29.1
VENV="$STATE_DIR/python-sdk"
SDK="$ROOT/clients/python"
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release"

if ! "$VENV/bin/openapi-python-client" --version 2>/dev/null | grep -q "$GENERATOR_VERSION"; then
  say "Installing openapi-python-client $GENERATOR_VERSION into $VENV"
  python3 -m venv "$VENV" || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
  "$VENV/bin/pip" install -q "openapi-python-client==$GENERATOR_VERSION" \
    || die "pip install openapi-python-client failed"
fi

# generate_into DIR: the client generated from the committed spec, into DIR/sentinel_client.
# A schema the generator cannot read is left out with only a warning; here it fails, so every
# operation and model of the spec is in the client.
generate_into() {
  local out
  out=$(cd "$1" && "$VENV/bin/openapi-python-client" generate --path "$ROOT/openapi/openapi.json" \
    --meta none --config "$SDK/openapi-python-client.yml" --output-path sentinel_client 2>&1) \
    || { echo "$out" >&2; die "openapi-python-client could not generate the client"; }
  if grep -qiE "warning|unable to process" <<<"$out"; then
    echo "$out" >&2
    die "openapi-python-client left parts of openapi/openapi.json out of the client (above)"
  fi
}

if [ "${1:-}" = generate ]; then
  TMP=$(mktemp -d)
  generate_into "$TMP"
  rm -rf "$SDK/sentinel_client"
  mv "$TMP/sentinel_client" "$SDK/sentinel_client"
  rm -rf "$TMP"
  say "Wrote clients/python/sentinel_client/"
  exit 0
fi

scratch python-sdk
say "Python client: checking clients/python/sentinel_client/ against openapi/openapi.json"
generate_into "$WORK"
diff -r -q "$SDK/sentinel_client" "$WORK/sentinel_client" >&2 \
  || die "clients/python/sentinel_client/ is stale: run 'bash scripts/python-sdk.sh generate' and commit it"

say "Installing the SDK from the checkout into $VENV"
"$VENV/bin/pip" install -q "$SDK" || die "pip install clients/python failed"

require_cargo
ensure_postgres
build_binaries sentinel-api sentinel-worker
if [ -z "${SENTINEL_MODEL:-}" ]; then
  SENTINEL_MODEL=$(bash "$ROOT/scripts/fetch-model.sh")
fi
export SENTINEL_MODEL HF_HUB_OFFLINE=1
URL=$(new_database "$DATABASE_URL" "sentinel_python_$$")
PORT=$(free_port 18880)
TELEGRAM_PORT=$(free_port 18980)
start_gateway "$URL" "$PORT" "$WORK/gateway.log" SENTINEL_ADMIN_TOKEN="$ADMIN_TOKEN" \
  SENTINEL_RESCUE_INTERVAL_MS=200 SENTINEL_FORWARD_ALLOW=127.0.0.0/8
# The worker forwards to the tests' agents on loopback and sends replies to their fake Telegram.
start_worker "$URL" "$WORK/worker.log" SENTINEL_FORWARD_ALLOW=127.0.0.0/8 \
  SENTINEL_TELEGRAM_API_BASE="http://127.0.0.1:$TELEGRAM_PORT" SENTINEL_POLL_INTERVAL_MS=200

say "SDK tests against http://127.0.0.1:$PORT"
# From the tests' folder, so `import sentinel_sdk` finds the installed package, not the checkout.
if ! (cd "$SDK/tests" && SENTINEL_URL="http://127.0.0.1:$PORT" SENTINEL_ADMIN_TOKEN="$ADMIN_TOKEN" \
      SENTINEL_FAKE_TELEGRAM_PORT="$TELEGRAM_PORT" SENTINEL_PYTHON="$VENV/bin/python" \
      "$VENV/bin/python" -m unittest -v 2>&1); then
  echo "--- gateway log (tail)" >&2; tail -n 30 "$WORK/gateway.log" >&2
  echo "--- worker log (tail)" >&2; tail -n 30 "$WORK/worker.log" >&2
  die "the Python SDK tests failed (above)"
fi
say "Python SDK tests passed"
