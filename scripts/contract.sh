#!/usr/bin/env bash
# The API contract check: schemathesis (from PyPI, kept in .sentinel/schemathesis) generates
# requests from the committed openapi/openapi.json and sends them to a live sentinel-api with a
# tenant's API key. It fails on any 5xx answer and on any answer that violates the spec's schema
# for it. SENTINEL_CONTRACT_EXAMPLES bounds the examples per operation (default 10).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

SCHEMATHESIS_VERSION=4.32.5
EXAMPLES="${SENTINEL_CONTRACT_EXAMPLES:-10}"
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release"
scratch contract

require_cargo
ensure_postgres
VENV="$STATE_DIR/schemathesis"
if ! "$VENV/bin/st" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
  say "Installing schemathesis $SCHEMATHESIS_VERSION into $VENV"
  python3 -m venv "$VENV" || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
  "$VENV/bin/pip" install -q "schemathesis==$SCHEMATHESIS_VERSION" || die "pip install schemathesis failed"
fi
build_binaries sentinel-api

URL=$(new_database "$DATABASE_URL" "sentinel_contract_$$")
PORT=$(free_port 18680)
# Generated claims may ask to long-poll for up to 30 s each; 200 ms keeps the run short.
start_gateway "$URL" "$PORT" "$WORK/gateway.log" SENTINEL_ADMIN_TOKEN="$ADMIN_TOKEN" \
  SENTINEL_CLAIM_MAX_WAIT_MS=200
KEY=$(curl -fsS "http://127.0.0.1:$PORT/v1/admin/tenants" -H "Authorization: Bearer $ADMIN_TOKEN" \
  -H 'content-type: application/json' \
  -d '{"name": "contract", "rate_limit_per_sec": 1000000, "burst": 1000000}' \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["api_key"])')

# Data for the read operations to return: a source, and jobs that no worker runs (so their
# result, error and timestamps are null, the shape most likely to break a schema).
api() {
  curl -fsS "http://127.0.0.1:$PORT$1" -H "Authorization: Bearer $2" -H 'content-type: application/json' -d "$3" >/dev/null
}
api /v1/sources "$KEY" '{"platform": "telegram", "name": "contract", "secrets": {"secret_token": "contract-secret-0123456789"}}'
api /v1/jobs "$KEY" '{"kind": "payload.heal", "input": {"payload": "{\"update_id\": 1}", "platform": "telegram"}}'
api /v1/jobs "$KEY" '{"kind": "llm.generate", "input": {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}}'
# A job of a tenant-defined kind, claimed, and a capped kind, for the worker API and /v1/kinds.
api /v1/jobs "$KEY" '{"kind": "doc.summarise", "input": {"url": "s3://contract/a.pdf"}}'
api /v1/worker/claim "$KEY" '{"kinds": ["doc.summarise"], "worker_id": "contract"}'
curl -fsS -X PATCH "http://127.0.0.1:$PORT/v1/kinds/doc.summarise" -H "Authorization: Bearer $KEY" \
  -H 'content-type: application/json' -d '{"max_running": 4}' >/dev/null

say "schemathesis against http://127.0.0.1:$PORT ($EXAMPLES examples per operation)"
status=0
"$VENV/bin/st" run openapi/openapi.json --url "http://127.0.0.1:$PORT" \
  --header "Authorization: Bearer $KEY" \
  --checks not_a_server_error,response_schema_conformance \
  --max-examples "$EXAMPLES" --seed 1 --no-color \
  --report junit --report-dir "$WORK/report" || status=$?
say "schemathesis on the admin API, with the admin token"
"$VENV/bin/st" run openapi/openapi.json --url "http://127.0.0.1:$PORT" \
  --header "Authorization: Bearer $ADMIN_TOKEN" --include-path-regex '^/v1/admin' \
  --checks not_a_server_error,response_schema_conformance \
  --max-examples "$EXAMPLES" --seed 1 --no-color || status=$?
if grep -q "panicked" "$WORK/gateway.log"; then
  grep -m 5 "panicked" "$WORK/gateway.log" >&2
  die "the gateway panicked during the contract check"
fi
[ "$status" = 0 ] || die "schemathesis found contract violations (above)"
say "Contract check passed"
