#!/usr/bin/env bash
# Process-level fault tests against the real binaries: sentinel-api, sentinel-worker and
# sentinel-loadgen, with each run's figures printed as tables and reconciled with the database.
#
#   scripts/faults.sh [gateway-kill|postgres-restart|all]     (default: all)
#
# gateway-kill      sentinel-loadgen sends signed webhooks for SENTINEL_FAULT_SECS (default 30);
#                   halfway through, the gateway gets kill -9 and is started again 2 s later.
#                   Every event id that got a 200 must be in `jobs`; then a worker drains the queue
#                   and no job may have succeeded twice.
# postgres-restart  the same load against a throwaway PostgreSQL cluster that is stopped
#                   (-m immediate, a crash) a third of the way through and started again 5 s later.
#                   While it is down the gateway must answer 503 within 3 s and never hang; after
#                   it is back the gateway recovers by itself, no acknowledged event is lost, and
#                   the worker (polling only every 10 minutes) still wakes on NOTIFY, proving its
#                   LISTEN connection came back.
#
# The load uses events that need no agent reply (--payload noreply), so the worker drains them
# through its deterministic lane; the model path under faults is covered by the worker's own
# kill and SIGTERM tests. Needs DATABASE_URL (or starts the private cluster, as scripts/test.sh
# does), the default model (fetched when missing) and, for postgres-restart, PostgreSQL's server
# binaries (initdb, pg_ctl).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

WHICH="${1:-all}"
SECS="${SENTINEL_FAULT_SECS:-30}"
ADMIN_TOKEN="fault-admin-token-$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')"
WORK=$(mktemp -d /tmp/sentinel-faults.XXXXXX)
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release"
pids=()
FAULT_PG_DATA=""
FAILED=0

cleanup() {
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "$FAULT_PG_DATA" ]; then
    as_pg_owner "$(find_pg_bin)/pg_ctl" -D "$FAULT_PG_DATA" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  stop_private_cluster
  rm -rf "$WORK"
}
trap cleanup EXIT

require_cargo
if [ -z "${SENTINEL_MODEL:-}" ]; then
  SENTINEL_MODEL=$(bash "$ROOT/scripts/fetch-model.sh")
fi
export SENTINEL_MODEL HF_HUB_OFFLINE=1
build_binaries sentinel-api sentinel-worker sentinel-loadgen

fail() {
  printf 'FAULT TEST FAILED: %s\n' "$*" >&2
  FAILED=1
}

# start_gateway URL PORT LOG: starts sentinel-api on 127.0.0.1:PORT and waits for /healthz.
start_gateway() {
  DATABASE_URL="$1" SENTINEL_LISTEN="127.0.0.1:$2" SENTINEL_ADMIN_TOKEN="$ADMIN_TOKEN" \
    SENTINEL_AUTO_MIGRATE=0 "$BIN/sentinel-api" serve >>"$3" 2>&1 &
  GATEWAY_PID=$!
  pids+=("$GATEWAY_PID")
  wait_healthy "$2" "$3"
}

# reconcile NAME URL ACKED_FILE DRAINED: compares what the load generator saw with the database
# and prints the figures.
reconcile() {
  local name=$1 url=$2 acked_file=$3 drained=$4
  sql "$url" "CREATE TABLE fault_acked (key text PRIMARY KEY)"
  psql "$url" -v ON_ERROR_STOP=1 -q -c "\\copy fault_acked FROM '$acked_file'"
  local acked jobs lost unacked twice attempts
  acked=$(sql "$url" "SELECT count(*) FROM fault_acked")
  jobs=$(sql "$url" "SELECT count(*) FROM jobs WHERE kind = 'webhook.inbound'")
  lost=$(sql "$url" "SELECT count(*) FROM fault_acked a
                      WHERE NOT EXISTS (SELECT 1 FROM jobs j WHERE j.dedupe_key = a.key)")
  unacked=$(sql "$url" "SELECT count(*) FROM jobs j WHERE j.kind = 'webhook.inbound'
                         AND NOT EXISTS (SELECT 1 FROM fault_acked a WHERE a.key = j.dedupe_key)")
  twice=$(sql "$url" "SELECT count(*) FROM (SELECT job_id FROM job_attempts WHERE outcome = 'succeeded'
                       GROUP BY job_id HAVING count(*) > 1) t")
  attempts=$(sql "$url" "SELECT count(*) FROM job_attempts WHERE outcome <> 'handed_off'")
  echo
  echo "| fault | load | acked (200) | jobs | acked but missing (lost) | stored, answer lost in the fault | jobs succeeded twice | finishing attempts | drained after load |"
  echo "|---|---|---|---|---|---|---|---|---|"
  echo "| $name | ${SECS} s, 32 connections | $acked | $jobs | $lost | $unacked | $twice | $attempts | ${drained} s |"
  echo
  [ "$acked" -gt 0 ] || fail "$name: nothing was acknowledged"
  [ "$lost" = 0 ] || fail "$name: $lost acknowledged events are missing from jobs"
  [ "$twice" = 0 ] || fail "$name: $twice jobs succeeded twice"
  [ "$drained" != timeout ] || fail "$name: the queue did not drain"
}

loadgen() {
  "$BIN/sentinel-loadgen" acks --url "http://127.0.0.1:$1" --admin-token "$ADMIN_TOKEN" \
    --secs "$2" --concurrency 32 --payload noreply --record "$3" --timeline true
}

gateway_kill() {
  say "Fault: gateway killed with kill -9 halfway through ${SECS} s of load"
  ensure_postgres
  local url port log="$WORK/gateway-kill.log"
  url=$(new_database "$DATABASE_URL" "sentinel_fault_gw_$$")
  port=$(free_port 18480)
  start_gateway "$url" "$port" "$log"
  loadgen "$port" "$SECS" "$WORK/gw-acked.txt" >"$WORK/gw-load.md" &
  local load=$!
  sleep $((SECS / 2))
  kill -9 "$GATEWAY_PID"
  wait "$GATEWAY_PID" 2>/dev/null || true
  say "kill -9 gateway (pid $GATEWAY_PID) at $((SECS / 2)) s; restarting it in 2 s"
  sleep 2
  start_gateway "$url" "$port" "$log"
  wait "$load" || die "the load generator failed"
  sed -n '1,/^$/p' "$WORK/gw-load.md"
  sed -n '/| answer |/,/^$/p' "$WORK/gw-load.md"
  start_worker "$url" "$WORK/gw-worker.log"
  reconcile "gateway kill -9 at $((SECS / 2)) s" "$url" "$WORK/gw-acked.txt" "$(wait_drained "$url" 300)"
  sql "$DATABASE_URL" "SELECT 1" >/dev/null
}

postgres_restart() {
  say "Fault: PostgreSQL crashed (stop -m immediate) a third of the way through ${SECS} s of load, back 5 s later"
  local bin root port sock log url gwport
  bin=$(find_pg_bin) || die "postgres-restart needs PostgreSQL's server binaries (initdb, pg_ctl)"
  root="$WORK/pg"
  mkdir -p "$root"
  [ "$(id -u)" != 0 ] || chown postgres "$WORK" "$root"
  FAULT_PG_DATA="$root/data"
  sock="$root/run"
  log="$root/postgres.log"
  as_pg_owner mkdir -p "$sock"
  as_pg_owner "$bin/initdb" -D "$FAULT_PG_DATA" -U postgres -A trust -E UTF8 --no-sync >/dev/null
  # Below the kernel's ephemeral range (32768-60999 here): the load before this test opens tens of
  # thousands of client connections, and one of them may hold a port in that range, which the
  # server then cannot bind (this failed once as "port 55480 busy").
  port=$(free_port 25480)
  pg_start "$bin" "$FAULT_PG_DATA" "$port" "$sock" "$log"
  url=$(new_database "postgres://postgres@127.0.0.1:$port/postgres" "sentinel_fault_pg_$$")
  gwport=$(free_port 18580)
  start_gateway "$url" "$gwport" "$WORK/pg-gateway.log"
  # Polling only every 10 minutes: after the restart, only a NOTIFY on a reconnected LISTEN
  # wakes this worker in time.
  start_worker "$url" "$WORK/pg-worker.log" SENTINEL_POLL_INTERVAL_MS=600000
  loadgen "$gwport" "$SECS" "$WORK/pg-acked.txt" >"$WORK/pg-load.md" &
  local load=$!
  sleep $((SECS / 3))
  as_pg_owner "$bin/pg_ctl" -D "$FAULT_PG_DATA" -m immediate -w stop >/dev/null
  say "PostgreSQL stopped (immediate) at $((SECS / 3)) s; starting it again in 5 s"
  sleep 5
  pg_start "$bin" "$FAULT_PG_DATA" "$port" "$sock" "$log"
  wait "$load" || die "the load generator failed"
  sed -n '1,/^$/p' "$WORK/pg-load.md"
  sed -n '/| answer |/,/^$/p' "$WORK/pg-load.md"
  local drained
  drained=$(wait_drained "$url" 300)
  reconcile "PostgreSQL crash + restart at $((SECS / 3)) s" "$url" "$WORK/pg-acked.txt" "$drained"

  # While the database was down: only 503s (or acks), each answered within 3 s, none hanging.
  local slowest_503 no_answer acks_at_end last_second
  slowest_503=$(awk -F'|' '$2 ~ /HTTP 503/ {gsub(/[ ms]/, "", $4); print $4}' "$WORK/pg-load.md")
  no_answer=$(awk -F'|' '$2 ~ /no answer/ {gsub(/ /, "", $3); print $3}' "$WORK/pg-load.md")
  last_second=$((SECS - 1))
  acks_at_end=$(awk -F'|' -v from=$((SECS - 3)) '$3 ~ /HTTP 200/ {gsub(/ /, "", $2); gsub(/ /, "", $4);
                if ($2 + 0 >= from) n += $4} END {print n + 0}' "$WORK/pg-load.md")
  echo "| while down: 503 answers | slowest 503 | requests with no answer | acks in seconds $((SECS - 3))-$last_second (recovered) |"
  echo "|---|---|---|---|"
  echo "| $(awk -F'|' '$2 ~ /HTTP 503/ {gsub(/ /, "", $3); print $3}' "$WORK/pg-load.md") | ${slowest_503:-none} ms | ${no_answer:-0} | $acks_at_end |"
  echo
  [ -n "$slowest_503" ] || fail "postgres-restart: the gateway never answered 503 while the database was down"
  [ -z "$slowest_503" ] || [ "$slowest_503" -le 3000 ] || fail "postgres-restart: a 503 took ${slowest_503} ms (limit 3000)"
  [ -z "$no_answer" ] || fail "postgres-restart: $no_answer requests got no answer (hung or refused)"
  [ "$acks_at_end" -gt 0 ] || fail "postgres-restart: the gateway did not recover"

  # The worker's LISTEN came back: a new event is healed within 5 s without a poll.
  "$BIN/sentinel-loadgen" acks --url "http://127.0.0.1:$gwport" --admin-token "$ADMIN_TOKEN" \
    --secs 1 --concurrency 1 --payload noreply >/dev/null
  local woke
  woke=$(wait_drained "$url" 5)
  echo "| new events after the restart drained by a NOTIFY-woken worker in |"
  echo "|---|"
  echo "| ${woke} s |"
  [ "$woke" != timeout ] || fail "postgres-restart: the worker did not wake on NOTIFY after the restart (LISTEN not reconnected)"
}

case "$WHICH" in
  gateway-kill) gateway_kill ;;
  postgres-restart) postgres_restart ;;
  all) gateway_kill; postgres_restart ;;
  *) die "unknown fault '$WHICH': expected gateway-kill, postgres-restart or all" ;;
esac
[ "$FAILED" = 0 ] || die "fault tests failed (see above)"
say "Fault tests passed"
