#!/usr/bin/env bash
# Regenerates .sqlx/, the query data the offline build reads, after a query or a migration changed:
# the query macros describe every query against a database migrated from migrations/, and what they
# write replaces .sqlx/. scripts/test.sh checks that the committed .sqlx/ equals what this writes.
# Needs PostgreSQL (DATABASE_URL, or the private cluster scripts/run.sh uses); no sqlx-cli.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
trap stop_private_cluster EXIT

require_cargo
ensure_postgres
SCHEMA_URL=$(schema_database "$DATABASE_URL" "${PG_DB}_schema")
LIVE_SQLX=$(mktemp -d)
# Every workspace crate depends on sentinel-queue: touching it expands every query macro again.
touch queue/src/lib.rs
say "Describing every query against $SCHEMA_URL"
SQLX_OFFLINE=false SQLX_OFFLINE_DIR="$LIVE_SQLX" DATABASE_URL="$SCHEMA_URL" \
  cargo check -q --workspace --all-targets --locked
rm -rf "$ROOT/.sqlx"
mv "$LIVE_SQLX" "$ROOT/.sqlx"
chmod 755 "$ROOT/.sqlx"
say "Wrote $(find "$ROOT/.sqlx" -name 'query-*.json' | wc -l) query files to .sqlx/"
