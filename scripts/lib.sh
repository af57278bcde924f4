# Shared by scripts/run.sh and scripts/test.sh: find or start PostgreSQL and export DATABASE_URL.
# shellcheck shell=bash

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE_DIR="${SENTINEL_STATE_DIR:-$ROOT/.sentinel}"
PG_PORT="${SENTINEL_PG_PORT:-}"
PG_DB="${SENTINEL_PG_DB:-sentinel}"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

require_cargo() {
  command -v cargo >/dev/null 2>&1 || die "cargo was not found. Install Rust 1.85 or newer (https://rustup.rs), then run this again."
}

# Prints the directory holding initdb and pg_ctl, or nothing.
find_pg_bin() {
  if command -v pg_ctl >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1; then
    dirname "$(readlink -f "$(command -v pg_ctl)")"
    return
  fi
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$dir" ] && [ -x "$dir/pg_ctl" ] && echo "$dir"
}

install_postgres_if_root() {
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "PostgreSQL is not installed; installing it with apt-get"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2 \
      || die "apt-get install postgresql failed"
  else
    die "PostgreSQL binaries (initdb, pg_ctl) were not found. Install PostgreSQL 14 or newer
(Debian/Ubuntu: sudo apt-get install postgresql), or set DATABASE_URL to a server you have."
  fi
}

# Runs a PostgreSQL binary as the cluster's owner: initdb and postgres refuse to run as root.
as_pg_owner() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

# Starts (or reuses) a private cluster under $STATE_DIR/pg and exports DATABASE_URL.
start_private_cluster() {
  local bin pgroot
  bin=$(find_pg_bin) || true
  if [ -z "$bin" ]; then
    install_postgres_if_root
    bin=$(find_pg_bin) || die "PostgreSQL was installed but initdb/pg_ctl are still not found"
  fi
  pgroot="$STATE_DIR/pg"
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || die "running as root needs a 'postgres' user to own the private cluster (install the postgresql package)"
    mkdir -p "$pgroot"
    # The cluster's owner must be able to reach its directory; fall back to /tmp when it cannot.
    if ! runuser -u postgres -- test -x "$STATE_DIR" 2>/dev/null; then
      pgroot="/tmp/sentinel-pg-$(echo "$ROOT" | sha256sum | cut -c1-12)"
      mkdir -p "$pgroot"
    fi
    chown postgres "$pgroot"
  fi
  mkdir -p "$pgroot"
  local data="$pgroot/data" sock="$pgroot/run" log="$pgroot/postgres.log"
  as_pg_owner mkdir -p "$sock"
  if [ ! -f "$data/PG_VERSION" ]; then
    say "Creating a private PostgreSQL cluster in $data"
    as_pg_owner "$bin/initdb" -D "$data" -U postgres -A trust -E UTF8 --no-sync >/dev/null \
      || die "initdb failed for $data"
  fi
  if as_pg_owner "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    PG_PORT=$(sed -n 4p "$data/postmaster.pid")
  else
    if [ -z "$PG_PORT" ]; then
      PG_PORT=54329
      while port_busy "$PG_PORT"; do
        PG_PORT=$((PG_PORT + 1))
        [ "$PG_PORT" -lt 54400 ] || die "no free port in 54329-54399 for PostgreSQL; set SENTINEL_PG_PORT"
      done
    fi
    say "Starting PostgreSQL on 127.0.0.1:$PG_PORT (log: $log)"
    STARTED_PG_DATA="$data"
    STARTED_PG_BIN="$bin"
    pg_start "$bin" "$data" "$PG_PORT" "$sock" "$log"
  fi
  export DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/$PG_DB"
  if ! as_pg_owner "$bin/psql" -h "$sock" -p "$PG_PORT" -U postgres -d postgres -Atqc \
      "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'" | grep -q 1; then
    as_pg_owner "$bin/createdb" -h "$sock" -p "$PG_PORT" -U postgres "$PG_DB" || die "createdb $PG_DB failed"
  fi
}

# pg_start BIN DATA PORT SOCKET_DIR LOG: starts the cluster in DATA and waits until it is up.
pg_start() {
  as_pg_owner "$1/pg_ctl" -D "$2" -l "$5" -w -t 60 \
    -o "-p $3 -k $4 -c listen_addresses=127.0.0.1 -c max_connections=400 -c shared_buffers=256MB" \
    start >/dev/null || { tail -n 20 "$5" >&2; die "PostgreSQL did not start (port $3 busy? set SENTINEL_PG_PORT)"; }
}

# free_port FROM: prints the first free TCP port on 127.0.0.1 at or above FROM.
free_port() {
  local port=$1
  while port_busy "$port"; do port=$((port + 1)); done
  echo "$port"
}

# new_database SERVER_URL NAME: (re)creates database NAME on the server SERVER_URL points at, runs
# the migrations with the release sentinel-api in $BIN, and prints the new database's URL.
new_database() {
  PGOPTIONS="-c client_min_messages=warning" psql "$1" -v ON_ERROR_STOP=1 -Atqc "DROP DATABASE IF EXISTS $2" >/dev/null
  psql "$1" -v ON_ERROR_STOP=1 -Atqc "CREATE DATABASE $2"
  local url="${1%/*}/$2"
  DATABASE_URL="$url" "$BIN/sentinel-api" migrate >/dev/null 2>&1 || die "migrating $url failed"
  echo "$url"
}

# schema_database SERVER_URL NAME: (re)creates database NAME and applies migrations/*.sql to it with
# psql, in order, each in one transaction unless it starts with `-- no-transaction` (as sqlx does).
# The query macros describe their queries against it while the workspace compiles, so neither
# sqlx-cli nor a built binary is needed first. Prints the database's URL.
schema_database() {
  PGOPTIONS="-c client_min_messages=warning" psql "$1" -v ON_ERROR_STOP=1 -Atqc "DROP DATABASE IF EXISTS $2" >/dev/null
  psql "$1" -v ON_ERROR_STOP=1 -Atqc "CREATE DATABASE $2"
  local url="${1%/*}/$2" file single
  for file in "$ROOT"/migrations/*.sql; do
    single=--single-transaction
    head -n 1 "$file" | grep -q -- '-- no-transaction' && single=
    PGOPTIONS="-c client_min_messages=warning" psql "$url" -v ON_ERROR_STOP=1 -q $single -f "$file" >/dev/null \
      || die "migration $(basename "$file") failed on $url"
  done
  echo "$url"
}

# build_binaries CRATE...: the release binaries a script runs, built offline from the committed
# .sqlx data; skipped when scripts/test.sh has already built the whole workspace in this run
# (SENTINEL_BUILT=1), so the phases of the test command share one build.
build_binaries() {
  [ "${SENTINEL_BUILT:-}" = 1 ] && return 0
  local args=() crate
  for crate in "$@"; do args+=(-p "$crate"); done
  say "Building $* (release)"
  SQLX_OFFLINE=true cargo build --release -q --locked "${args[@]}"
}

# wait_healthy PORT LOG: waits up to 10 s for a gateway's /healthz on 127.0.0.1:PORT.
wait_healthy() {
  for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$1/healthz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  tail -n 20 "$2" >&2
  die "the gateway did not start on port $1"
}

port_busy() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Stops the private cluster if this script started it.
stop_private_cluster() {
  if [ -n "${STARTED_PG_DATA:-}" ]; then
    say "Stopping the private PostgreSQL cluster"
    as_pg_owner "$STARTED_PG_BIN/pg_ctl" -D "$STARTED_PG_DATA" -m fast -w stop >/dev/null 2>&1 || true
  fi
}

# Uses DATABASE_URL when it is set; otherwise starts the private cluster.
ensure_postgres() {
  if [ -n "${DATABASE_URL:-}" ]; then
    say "Using DATABASE_URL from the environment"
  else
    start_private_cluster
  fi
}

# The callers of start_gateway and start_worker keep the pids in a `pids` array and stop them on
# exit. Both use the release binaries in $BIN.

# start_gateway URL PORT LOG [ENV=VALUE...]: starts sentinel-api on 127.0.0.1:PORT against the
# database URL and waits until it answers.
start_gateway() {
  local url=$1 port=$2 log=$3
  shift 3
  env DATABASE_URL="$url" SENTINEL_LISTEN="127.0.0.1:$port" "$@" "$BIN/sentinel-api" serve >>"$log" 2>&1 &
  pids+=($!)
  wait_healthy "$port" "$log"
}

# start_worker URL LOG [ENV=VALUE...]: starts one sentinel-worker (one model slot unless ENV says
# otherwise) and waits until it runs (the model loads first, which takes seconds).
start_worker() {
  local url=$1 log=$2 pid
  shift 2
  env DATABASE_URL="$url" SENTINEL_WORKER_ID="worker-$$" SENTINEL_MAX_SEQS=1 "$@" \
    "$BIN/sentinel-worker" run >>"$log" 2>&1 &
  pid=$!
  pids+=("$pid")
  for _ in $(seq 1 600); do
    grep -q "worker started" "$log" && return 0
    kill -0 "$pid" 2>/dev/null || { tail -n 20 "$log" >&2; die "the worker exited at start"; }
    sleep 0.2
  done
  die "the worker did not start within 120 s (log: $log)"
}

# build_web: installs the npm packages of the client and the dashboard (package-lock.json) and
# builds the dashboard into dashboard/dist, which sentinel-api serves at /dashboard/.
build_web() {
  command -v npm >/dev/null || die "npm is needed for the dashboard: install Node.js 20.19 or newer (Debian: apt-get install nodejs npm)"
  node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)' \
    || die "Node.js $(node --version) is too old for the dashboard's build: install 20.19 or newer"
  (cd "$ROOT" && npm ci --no-audit --no-fund --loglevel=error && npm run build --workspace dashboard --silent) \
    || die "building the dashboard failed (above)"
}

# scratch NAME: a temporary folder in $WORK, an empty `pids` array for start_gateway and
# start_worker, a random $ADMIN_TOKEN, and an exit trap that stops those processes, the private
# cluster if this script started one, and removes $WORK.
scratch() {
  WORK=$(mktemp -d "/tmp/sentinel-$1.XXXXXX")
  ADMIN_TOKEN="$1-admin-token-$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  pids=()
  trap scratch_cleanup EXIT
}

scratch_cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  stop_private_cluster
  rm -rf "$WORK"
}

# sql URL QUERY: one value (or rows, `|`-separated) from the database at URL.
sql() { psql "$1" -v ON_ERROR_STOP=1 -Atqc "$2"; }

# wait_drained URL TIMEOUT_SECS: waits until no job is queued or running; prints the seconds.
wait_drained() {
  local started=$SECONDS
  while [ "$(sql "$1" "SELECT count(*) FROM jobs WHERE status IN ('queued', 'running')")" != 0 ]; do
    if [ $((SECONDS - started)) -ge "$2" ]; then
      echo "timeout"
      return
    fi
    sleep 0.2
  done
  echo $((SECONDS - started))
}
