#!/usr/bin/env bash
# Sentinel past one process (issue 30), against the real binaries: sentinel-api, sentinel-worker,
# sentinel-loadgen, PgBouncer and PostgreSQL's server binaries.
#
#   scripts/cluster.sh [many|failover|all]            the tests (default: all; in the test command)
#   scripts/cluster.sh bench                           the figures in docs/BENCHMARKS.md (not a test)
#
# many      PgBouncer in transaction mode in front of one database; two gateways and two workers
#           through it (LISTEN on the direct URL). For SENTINEL_CLUSTER_SECS (default 15) the load
#           generator sends webhooks to both gateways in turn while scripts/cluster_check.py runs
#           a tenant through both: SSE streams open on each gateway, forwards capped at 2 in
#           flight, a kind capped at 2 running claimed through both gateways, a second tenant
#           beside it. Every acknowledged webhook must be one job, no job may succeed twice, both
#           streams must show every event, and the caps must hold across the processes.
# failover  a primary and a synchronous standby made with pg_basebackup (synchronous_commit = on);
#           two gateways and a worker on a URL naming both servers. Under load the primary is
#           killed with kill -9 (the postmaster and every backend) and the standby promoted. Every
#           webhook acknowledged before, during and after must be a job exactly once; the seconds
#           without an ack and the 503s are printed.
# bench     acks/s through one and two gateways with Postgres's CPU per 1,000 acks, the rows, index
#           entries and WAL an acknowledged webhook costs, and the rate limiter's overshoot with
#           1, 2 and 4 gateways.
#
# Needs DATABASE_URL (or starts the private cluster, as scripts/test.sh does), PostgreSQL's server
# binaries, pgbouncer (installed with apt-get when missing and running as root), python3 and the
# default model (fetched when missing).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

WHICH="${1:-all}"
SECS="${SENTINEL_CLUSTER_SECS:-15}"
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release"
scratch cluster
[ "$(id -u)" != 0 ] || chown postgres "$WORK"
FAILED=0
BOUNCER_PIDFILE=""
CLUSTER_DATA=()

cleanup() {
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "$BOUNCER_PIDFILE" ] && [ -f "$BOUNCER_PIDFILE" ]; then
    kill -9 "$(cat "$BOUNCER_PIDFILE")" 2>/dev/null || true
  fi
  for data in "${CLUSTER_DATA[@]}"; do
    as_pg_owner "$(find_pg_bin)/pg_ctl" -D "$data" -m immediate -w stop >/dev/null 2>&1 || true
  done
  stop_private_cluster
  rm -rf "$WORK"
}
trap cleanup EXIT

fail() {
  printf 'CLUSTER TEST FAILED: %s\n' "$*" >&2
  FAILED=1
}

require_cargo
if [ -z "${SENTINEL_MODEL:-}" ]; then
  SENTINEL_MODEL=$(bash "$ROOT/scripts/fetch-model.sh")
fi
export SENTINEL_MODEL HF_HUB_OFFLINE=1
build_binaries sentinel-api sentinel-worker sentinel-loadgen

find_pgbouncer() {
  command -v pgbouncer 2>/dev/null || { [ -x /usr/sbin/pgbouncer ] && echo /usr/sbin/pgbouncer; }
}

ensure_pgbouncer() {
  if [ -z "$(find_pgbouncer)" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      say "PgBouncer is not installed; installing it with apt-get"
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer >&2 \
        || { DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 \
             && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer >&2; } \
        || die "apt-get install pgbouncer failed"
    else
      die "pgbouncer was not found: install it (Debian/Ubuntu: sudo apt-get install pgbouncer)"
    fi
  fi
}

# start_pgbouncer SERVER_PORT DATABASE PORT: PgBouncer in transaction mode on 127.0.0.1:PORT in
# front of DATABASE on the server at SERVER_PORT, with 10 server connections for everything.
start_pgbouncer() {
  local dir="$WORK/pgbouncer"
  mkdir -p "$dir"
  cat >"$dir/pgbouncer.ini" <<EOF
[databases]
$2 = host=127.0.0.1 port=$1 dbname=$2 connect_query='SET statement_timeout = 30000; SET lock_timeout = 5000'

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $3
unix_socket_dir =
auth_type = trust
auth_file = $dir/users.txt
pool_mode = transaction
default_pool_size = 10
max_client_conn = 2000
; sqlx sends extra_float_digits when it connects; the planner settings are the database's
; (migrations/..._database_settings.sql) and the timeouts are set by connect_query above, as in
; docker/pgbouncer.ini.
ignore_startup_parameters = extra_float_digits
stats_users = postgres
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
EOF
  echo '"postgres" ""' >"$dir/users.txt"
  [ "$(id -u)" != 0 ] || chown -R postgres "$dir"
  # PgBouncer refuses to run as root.
  as_pg_owner "$(find_pgbouncer)" -d "$dir/pgbouncer.ini" || die "PgBouncer did not start (see $dir/pgbouncer.log)"
  BOUNCER_PIDFILE="$dir/pgbouncer.pid"
  for _ in $(seq 1 50); do
    psql "postgres://postgres@127.0.0.1:$3/$2" -Atqc "SELECT 1" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  die "PgBouncer did not answer on port $3"
}

# load URLS SECS RECORD OUT: webhooks that need no reply, to every gateway in turn.
load() {
  "$BIN/sentinel-loadgen" acks --url "$1" --admin-token "$ADMIN_TOKEN" --secs "$2" \
    --concurrency 16 --payload noreply --record "$3" --timeline true >"$4"
}

# reconcile NAME URL ACKED_FILE: every acknowledged webhook is one job, and no job succeeded twice.
reconcile() {
  local name=$1 url=$2 acked_file=$3
  sql "$url" "CREATE TABLE IF NOT EXISTS cluster_acked (key text PRIMARY KEY)"
  psql "$url" -v ON_ERROR_STOP=1 -q -c "\\copy cluster_acked FROM '$acked_file'"
  local acked lost twice_stored twice_run drained
  drained=$(wait_drained "$url" 300)
  acked=$(sql "$url" "SELECT count(*) FROM cluster_acked")
  lost=$(sql "$url" "SELECT count(*) FROM cluster_acked a
                      WHERE NOT EXISTS (SELECT 1 FROM jobs j WHERE j.dedupe_key = a.key)")
  twice_stored=$(sql "$url" "SELECT count(*) FROM (SELECT dedupe_key FROM jobs
                              WHERE kind = 'webhook.inbound' GROUP BY tenant_id, dedupe_key HAVING count(*) > 1) t")
  twice_run=$(sql "$url" "SELECT count(*) FROM (SELECT job_id FROM job_attempts WHERE outcome = 'succeeded'
                           GROUP BY job_id HAVING count(*) > 1) t")
  echo
  echo "| $name | acked (200) | acked but not stored | stored twice | succeeded twice | drained after load |"
  echo "|---|---|---|---|---|---|"
  echo "| $SECS s | $acked | $lost | $twice_stored | $twice_run | ${drained} s |"
  echo
  [ "$acked" -gt 0 ] || fail "$name: nothing was acknowledged"
  [ "$lost" = 0 ] || fail "$name: $lost acknowledged webhooks are not jobs"
  [ "$twice_stored" = 0 ] || fail "$name: $twice_stored webhooks were stored twice"
  [ "$twice_run" = 0 ] || fail "$name: $twice_run jobs succeeded twice"
  [ "$drained" != timeout ] || fail "$name: the queue did not drain"
}

many() {
  say "Many processes: two gateways and two workers through PgBouncer (transaction mode), ${SECS} s of load"
  ensure_postgres
  ensure_pgbouncer
  local db="sentinel_cluster_$$" direct pooled server_port bouncer_port agent_port g1 g2
  direct=$(new_database "$DATABASE_URL" "$db")
  server_port=$(echo "$DATABASE_URL" | sed -E 's|.*@[^:/]+:([0-9]+)/.*|\1|')
  bouncer_port=$(free_port 16432)
  start_pgbouncer "$server_port" "$db" "$bouncer_port"
  pooled="postgres://postgres@127.0.0.1:$bouncer_port/$db"
  local env=(SENTINEL_DB_POOLER=transaction SENTINEL_DATABASE_DIRECT_URL="$direct"
             SENTINEL_ADMIN_TOKEN="$ADMIN_TOKEN" SENTINEL_AUTO_MIGRATE=0 SENTINEL_FORWARD_ALLOW=127.0.0.1)
  agent_port=$(free_port 18880)
  python3 "$ROOT/scripts/cluster_check.py" agent --port "$agent_port" --delay 0.5 \
    --stats "$WORK/agent.json" >>"$WORK/agent.log" 2>&1 &
  pids+=($!)
  g1=$(free_port 18680)
  start_gateway "$pooled" "$g1" "$WORK/g1.log" "${env[@]}"
  g2=$(free_port $((g1 + 1)))
  start_gateway "$pooled" "$g2" "$WORK/g2.log" "${env[@]}"
  # Polling only every 10 minutes: the workers wake on NOTIFY over their direct LISTEN.
  start_worker "$pooled" "$WORK/w1.log" "${env[@]}" SENTINEL_WORKER_ID=cluster-w1 \
    SENTINEL_POLL_INTERVAL_MS=600000
  start_worker "$pooled" "$WORK/w2.log" "${env[@]}" SENTINEL_WORKER_ID=cluster-w2 \
    SENTINEL_POLL_INTERVAL_MS=600000
  local gateways="http://127.0.0.1:$g1,http://127.0.0.1:$g2"
  load "$gateways" "$SECS" "$WORK/many-acked.txt" "$WORK/many-load.md" &
  local loading=$!
  python3 "$ROOT/scripts/cluster_check.py" run --gateways "$gateways" --admin-token "$ADMIN_TOKEN" \
    --agent-url "http://127.0.0.1:$agent_port/agent" --agent-stats "$WORK/agent.json" --db "$direct" \
    || fail "many: the checks across gateways failed (above)"
  wait "$loading" || die "the load generator failed"
  sed -n '1,/^$/p' "$WORK/many-load.md"
  reconcile "two gateways + two workers through PgBouncer" "$direct" "$WORK/many-acked.txt"
  local by_worker
  by_worker=$(sql "$direct" "SELECT string_agg(worker_id || ': ' || n, ', ' ORDER BY worker_id)
                             FROM (SELECT worker_id, count(*) AS n FROM job_attempts
                                   WHERE worker_id LIKE 'cluster-w%' GROUP BY worker_id) t")
  echo "| attempts by worker | server connections open at the end (PgBouncer's pool: 10) |"
  echo "|---|---|"
  echo "| $by_worker | $(psql "postgres://postgres@127.0.0.1:$bouncer_port/pgbouncer" -Atqc 'SHOW SERVERS' 2>/dev/null | awk -F'|' -v db="$db" '$3 == db' | wc -l) |"
  echo
  [[ "$by_worker" == *cluster-w1* && "$by_worker" == *cluster-w2* ]] \
    || fail "many: both workers should have run jobs ($by_worker)"
  for log in "$WORK"/g1.log "$WORK"/g2.log "$WORK"/w1.log "$WORK"/w2.log; do
    if grep -q "prepared statement" "$log"; then
      fail "many: $(basename "$log") shows prepared-statement errors through PgBouncer"
      grep -m 3 "prepared statement" "$log" >&2
    fi
  done
}

# start_server DATA PORT LOG [-c setting=value...]
start_server() {
  local data=$1 port=$2 log=$3
  shift 3
  as_pg_owner "$(find_pg_bin)/pg_ctl" -D "$data" -l "$log" -w -t 60 \
    -o "-p $port -k $WORK -c listen_addresses=127.0.0.1 -c max_connections=300 $*" start >/dev/null \
    || { tail -n 20 "$log" >&2; die "PostgreSQL did not start on port $port"; }
  CLUSTER_DATA+=("$data")
}

failover() {
  say "Failover: primary killed with kill -9 under ${SECS} s of load, synchronous standby promoted"
  local bin primary standby p1 p2 db="sentinel_failover" url multi g1 g2
  bin=$(find_pg_bin) || die "failover needs PostgreSQL's server binaries (initdb, pg_ctl, pg_basebackup)"
  primary="$WORK/primary"
  standby="$WORK/standby"
  as_pg_owner "$bin/initdb" -D "$primary" -U postgres -A trust -E UTF8 --no-sync >/dev/null
  p1=$(free_port 25680)
  p2=$(free_port $((p1 + 1)))
  # synchronous_commit = on: a commit returns once the standby has flushed its WAL to disk, so
  # every acknowledged webhook survives the primary's loss. remote_apply would also wait for the
  # standby to replay it, which only matters to readers of the standby; Sentinel reads nothing
  # there.
  start_server "$primary" "$p1" "$WORK/primary.log" "-c synchronous_commit=on -c wal_level=replica"
  url=$(new_database "postgres://postgres@127.0.0.1:$p1/postgres" "$db")
  as_pg_owner "$bin/pg_basebackup" -h 127.0.0.1 -p "$p1" -U postgres -D "$standby" \
    -X stream --checkpoint=fast -R >/dev/null
  echo "primary_conninfo = 'host=127.0.0.1 port=$p1 user=postgres application_name=sentinel_standby'" \
    | as_pg_owner tee -a "$standby/postgresql.auto.conf" >/dev/null
  start_server "$standby" "$p2" "$WORK/standby.log" "-c hot_standby=on"
  # Synchronous only once the standby exists: until then every commit would wait for it.
  sql "$url" "ALTER SYSTEM SET synchronous_standby_names = 'sentinel_standby'" >/dev/null
  sql "$url" "SELECT pg_reload_conf()" >/dev/null
  for _ in $(seq 1 100); do
    [ "$(sql "$url" "SELECT sync_state FROM pg_stat_replication WHERE application_name = 'sentinel_standby'")" = sync ] && break
    sleep 0.1
  done
  [ "$(sql "$url" "SELECT sync_state FROM pg_stat_replication WHERE application_name = 'sentinel_standby'")" = sync ] \
    || die "the standby did not become synchronous"
  multi="postgres://postgres@127.0.0.1:$p1,127.0.0.1:$p2/$db"
  local env=(SENTINEL_ADMIN_TOKEN="$ADMIN_TOKEN" SENTINEL_AUTO_MIGRATE=0 SENTINEL_DB_ACQUIRE_TIMEOUT_MS=2000)
  g1=$(free_port 18780)
  start_gateway "$multi" "$g1" "$WORK/fg1.log" "${env[@]}"
  g2=$(free_port $((g1 + 1)))
  start_gateway "$multi" "$g2" "$WORK/fg2.log" "${env[@]}"
  start_worker "$multi" "$WORK/fw.log" "${env[@]}" SENTINEL_WORKER_ID=failover-w1
  load "http://127.0.0.1:$g1,http://127.0.0.1:$g2" "$SECS" "$WORK/failover-acked.txt" "$WORK/failover-load.md" &
  local loading=$!
  sleep $((SECS / 3))
  local postmaster killed_at promoted_at
  postmaster=$(head -n 1 "$primary/postmaster.pid")
  killed_at=$(date +%s.%N)
  kill -9 $(pgrep -P "$postmaster") "$postmaster" 2>/dev/null || true
  say "kill -9 the primary (postmaster $postmaster and its backends) at $((SECS / 3)) s; promoting the standby"
  as_pg_owner "$bin/pg_ctl" -D "$standby" -w promote >/dev/null || die "pg_ctl promote failed"
  promoted_at=$(date +%s.%N)
  wait "$loading" || die "the load generator failed"
  sed -n '1,/^$/p' "$WORK/failover-load.md"
  sed -n '/| answer |/,/^$/p' "$WORK/failover-load.md"
  local promoted="postgres://postgres@127.0.0.1:$p2/$db"
  reconcile "failover to the synchronous standby" "$promoted" "$WORK/failover-acked.txt"
  # The longest run of whole seconds without an ack, and the answers that were not acks.
  local gap unavailable no_answer
  gap=$(awk -F'|' -v secs="$SECS" '$3 ~ /HTTP 200/ {gsub(/ /, "", $2); acked[$2 + 0] = 1}
         END {longest = 0; run = 0; for (s = 0; s < secs; s++) { if (acked[s]) run = 0; else { run++; if (run > longest) longest = run } } print longest}' \
         "$WORK/failover-load.md")
  unavailable=$(awk -F'|' '$2 ~ /HTTP 503/ {gsub(/ /, "", $3); print $3}' "$WORK/failover-load.md")
  no_answer=$(awk -F'|' '$2 ~ /no answer/ {gsub(/ /, "", $3); print $3}' "$WORK/failover-load.md")
  echo "| promotion took | longest run of seconds without an ack | 503 answers | no answer | gateways that logged the new primary |"
  echo "|---|---|---|---|---|"
  echo "| $(awk -v a="$killed_at" -v b="$promoted_at" 'BEGIN {printf "%.2f s", b - a}') | ${gap} s | ${unavailable:-0} | ${no_answer:-0} | $(cat "$WORK/fg1.log" "$WORK/fg2.log" | grep -c "primary changed") of 2 |"
  echo
  local after
  after=$(awk -F'|' -v from=$((SECS - 3)) '$3 ~ /HTTP 200/ {gsub(/ /, "", $2); gsub(/ /, "", $4);
          if ($2 + 0 >= from) n += $4} END {print n + 0}' "$WORK/failover-load.md")
  [ "$after" -gt 0 ] || fail "failover: no ack in the last 3 s: the gateways did not move to the new primary"
  [ -z "$no_answer" ] || fail "failover: $no_answer requests got no answer (hung)"
}

# cpu_ticks POSTMASTER_PID: CPU ticks used by the server: the postmaster, its live children, and
# its reaped children (cutime, cstime).
cpu_ticks() {
  local total=0 pid
  for pid in "$1" $(pgrep -P "$1"); do
    total=$((total + $(awk '{print $14 + $15 + $16 + $17}' "/proc/$pid/stat" 2>/dev/null || echo 0)))
  done
  echo "$total"
}

bench() {
  say "Benchmarks: acks through one and two gateways, the database work of an ack, the limiter across gateways"
  local bin data port url g ports=() hz
  bin=$(find_pg_bin) || die "bench needs PostgreSQL's server binaries"
  data="$WORK/bench"
  as_pg_owner "$bin/initdb" -D "$data" -U postgres -A trust -E UTF8 --no-sync >/dev/null
  port=$(free_port 25880)
  start_server "$data" "$port" "$WORK/bench-pg.log" "-c shared_buffers=256MB"
  url=$(new_database "postgres://postgres@127.0.0.1:$port/postgres" sentinel_bench)
  for i in 1 2 3 4; do
    g=$(free_port $((18980 + i * 3)))
    start_gateway "$url" "$g" "$WORK/bg$i.log" SENTINEL_ADMIN_TOKEN="$ADMIN_TOKEN" SENTINEL_AUTO_MIGRATE=0
    ports+=("$g")
  done
  hz=$(getconf CLK_TCK)
  local postmaster
  postmaster=$(head -n 1 "$data/postmaster.pid")
  echo
  echo "| gateways | acks/s | p99 ms | Postgres CPU s per 1,000 acks |"
  echo "|---|---|---|---|"
  local n urls before after acked out
  for n in 1 2; do
    urls=$(for i in $(seq 0 $((n - 1))); do printf 'http://127.0.0.1:%s,' "${ports[$i]}"; done)
    before=$(cpu_ticks "$postmaster")
    out=$("$BIN/sentinel-loadgen" acks --url "${urls%,}" --admin-token "$ADMIN_TOKEN" --secs 10 \
      --concurrency 64 --payload noreply | sed -n 3p)
    after=$(cpu_ticks "$postmaster")
    acked=$(echo "$out" | awk -F'|' '{gsub(/ /, "", $3); print $3}')
    echo "| $n | $(echo "$out" | awk -F'|' '{gsub(/ /, "", $5); print $5}') | $(echo "$out" | awk -F'|' '{gsub(/ /, "", $7); print $7}') | $(awk -v t=$((after - before)) -v hz="$hz" -v a="$acked" 'BEGIN {printf "%.3f", t / hz / a * 1000}') |"
  done
  echo
  # The database work of one acknowledged webhook, from the ack to the worker's finish: the runs
  # above drained first, then counted from a reset.
  start_worker "$url" "$WORK/bench-worker.log" SENTINEL_WORKER_ID=bench-w1
  [ "$(wait_drained "$url" 600)" != timeout ] || die "the bench's queue did not drain"
  sleep 2
  sql "$url" "SELECT pg_stat_reset()" >/dev/null
  local wal_before wal_after
  wal_before=$(sql "$url" "SELECT pg_current_wal_lsn()")
  out=$("$BIN/sentinel-loadgen" acks --url "http://127.0.0.1:${ports[0]}" --admin-token "$ADMIN_TOKEN" \
    --secs 5 --concurrency 32 --payload noreply | sed -n 3p)
  acked=$(echo "$out" | awk -F'|' '{gsub(/ /, "", $3); print $3}')
  [ "$(wait_drained "$url" 300)" != timeout ] || die "the bench's queue did not drain"
  sleep 2
  wal_after=$(sql "$url" "SELECT pg_current_wal_lsn()")
  echo "| table | rows inserted per ack | updated (HOT) per ack | deleted per ack | indexes | index entries written per ack |"
  echo "|---|---|---|---|---|---|"
  # A busy backend flushes its table counters at most every 10 s once idle (PostgreSQL 15).
  sleep 12
  sql "$url" "SELECT s.relname, round(s.n_tup_ins::numeric / $acked, 2),
                     round(s.n_tup_upd::numeric / $acked, 2) || ' (' || round(s.n_tup_hot_upd::numeric / $acked, 2) || ')',
                     round(s.n_tup_del::numeric / $acked, 2),
                     (SELECT count(*) FROM pg_index i WHERE i.indrelid = s.relid),
                     round((s.n_tup_ins + s.n_tup_upd - s.n_tup_hot_upd)::numeric
                           * (SELECT count(*) FROM pg_index i WHERE i.indrelid = s.relid) / $acked, 2)
              FROM pg_stat_user_tables s
              WHERE s.n_tup_ins + s.n_tup_upd + s.n_tup_del > 0
              ORDER BY s.n_tup_ins + s.n_tup_upd DESC" | sed 's/^/| /; s/|/ | /g; s/$/ |/'
  echo
  echo "| acks | WAL per ack, ack to finish |"
  echo "|---|---|"
  echo "| $acked | $(sql "$url" "SELECT round(pg_wal_lsn_diff('$wal_after', '$wal_before') / $acked)") bytes |"
  echo
  # The limiter: one tenant at 100/s, burst 200, flooded through 1, 2 and 4 gateways.
  for n in 1 2 4; do
    urls=$(for i in $(seq 0 $((n - 1))); do printf 'http://127.0.0.1:%s,' "${ports[$i]}"; done)
    "$BIN/sentinel-loadgen" limit --url "${urls%,}" --admin-token "$ADMIN_TOKEN" --secs 10 \
      --tenant-rate 100 --tenant-burst 200 --concurrency 32 | { [ "$n" = 1 ] && cat || sed -n 3p; }
  done
  echo
}

case "$WHICH" in
  many) many ;;
  failover) failover ;;
  all) many; failover ;;
  bench) bench ;;
  *) die "unknown test '$WHICH': expected many, failover, all or bench" ;;
esac
[ "$FAILED" = 0 ] || die "cluster tests failed (see above)"
say "Cluster ${WHICH} passed"
