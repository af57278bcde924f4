#!/usr/bin/env bash
# The worker API benchmark (docs/BENCHMARKS.md, "The worker API"): Python workers from the SDK
# against a live gateway (clients/python/bench/worker_api_bench.py), and graphile-worker 0.17.3 on
# the same PostgreSQL in the same run (scripts/bench/graphile_worker_bench.js), then the ratios.
# JOBS, PROCESSES, CONCURRENCY and SAMPLES size it.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release"
VENV="$STATE_DIR/python-sdk"
GRAPHILE="$STATE_DIR/graphile-worker"
scratch bench-worker-api
require_cargo
ensure_postgres
build_binaries sentinel-api
[ -x "$VENV/bin/python" ] || { python3 -m venv "$VENV" || die "python3 -m venv failed"; }
"$VENV/bin/pip" install -q "$ROOT/clients/python" || die "pip install clients/python failed"
if [ ! -d "$GRAPHILE/node_modules/graphile-worker" ]; then
  say "Installing graphile-worker 0.17.3 into $GRAPHILE"
  mkdir -p "$GRAPHILE"
  npm install --silent --prefix "$GRAPHILE" graphile-worker@0.17.3 >/dev/null || die "npm install graphile-worker failed"
fi

URL=$(new_database "$DATABASE_URL" "sentinel_bench_workers_$$")
PORT=$(free_port 18980)
start_gateway "$URL" "$PORT" "$WORK/gateway.log" SENTINEL_ADMIN_TOKEN="$ADMIN_TOKEN"
say "Sentinel's worker API with Python SDK workers"
SENTINEL_URL="http://127.0.0.1:$PORT" SENTINEL_ADMIN_TOKEN="$ADMIN_TOKEN" \
  "$VENV/bin/python" "$ROOT/clients/python/bench/worker_api_bench.py" | tee "$WORK/sentinel.md"

GRAPHILE_URL=$(new_database "$DATABASE_URL" "sentinel_bench_graphile_$$")
say "graphile-worker 0.17.3 on the same PostgreSQL"
GRAPHILE_DATABASE_URL="$GRAPHILE_URL" NODE_PATH="$GRAPHILE/node_modules" \
  node "$ROOT/scripts/bench/graphile_worker_bench.js" > "$WORK/graphile.json"
python3 - "$WORK/sentinel.md" "$WORK/graphile.json" <<'PY'
import json, re, sys
rows = open(sys.argv[1]).read().splitlines()[2:]
graphile = json.load(open(sys.argv[2]))
rate = float(re.search(r"\| ([\d,]+) jobs/s", rows[0]).group(1).replace(",", ""))
p50, p99 = map(float, re.search(r"p50 ([\d.-]+) ms, p99 ([\d.-]+) ms", rows[1]).groups())
print()
print("| measurement | Sentinel worker API (Python SDK) | graphile-worker 0.17.3 (in-process Node) | ratio |")
print("|---|---|---|---|")
print(f"| no-op jobs/s | {rate:,.0f} | {graphile['rate']:,.0f} | {rate / graphile['rate']:.2f} |")
print(f"| committed to handler start, p50 | {p50:.1f} ms | {graphile['p50']:.1f} ms | {p50 / graphile['p50']:.2f} |")
print(f"| committed to handler start, p99 | {p99:.1f} ms | {graphile['p99']:.1f} ms | {p99 / graphile['p99']:.2f} |")
PY
