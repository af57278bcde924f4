#!/usr/bin/env bash
# Runs every cargo-fuzz target (fuzz/fuzz_targets: the platform adapters, the signature verifiers,
# the SOAP parser, deterministic healing) for SENTINEL_FUZZ_SECS seconds each (default 20), from
# the committed seeds plus the corpus kept in .sentinel/fuzz. A crash fails the run and leaves its
# input in .sentinel/fuzz/artifacts/<target>/; reproduce it with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir fuzz <target> <that file>
# and turn it into a regression test beside the code it broke.
#
#   scripts/fuzz.sh [target...]        SENTINEL_FUZZ_SECS=600 scripts/fuzz.sh heal
#
# cargo-fuzz needs nightly features; RUSTC_BOOTSTRAP=1 unlocks them on the stable toolchain.
# Inputs go up to 1 MiB (-max_len), and every target runs each input on a thread with the 2 MiB
# stack of tokio's threads (fuzz_targets/production_stack.rs), so an input that would overflow a
# production stack crashes the target here.
# SENTINEL_FUZZ_SANITIZER picks the sanitizer (default none: the code under test is safe Rust, and
# without ASan the bounded runs cover several times more inputs; address is the longer-run choice).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

CARGO_FUZZ_VERSION=0.13.2
SECS="${SENTINEL_FUZZ_SECS:-20}"
SANITIZER="${SENTINEL_FUZZ_SANITIZER:-none}"
export RUSTC_BOOTSTRAP=1 SQLX_OFFLINE=true SQLX_OFFLINE_DIR="$ROOT/.sqlx"

require_cargo
if ! cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
  say "Installing cargo-fuzz $CARGO_FUZZ_VERSION"
  cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi

targets=("$@")
[ "${#targets[@]}" -gt 0 ] || targets=(adapters signatures soap heal)
say "Building the fuzz targets (sanitizer: $SANITIZER)"
cargo fuzz build --fuzz-dir fuzz -s "$SANITIZER" --release >&2

echo "| fuzz target | seconds | executions | corpus entries | crashes |"
echo "|---|---|---|---|---|"
for target in "${targets[@]}"; do
  corpus="$STATE_DIR/fuzz/corpus/$target"
  artifacts="$STATE_DIR/fuzz/artifacts/$target"
  mkdir -p "$corpus" "$artifacts"
  log="$STATE_DIR/fuzz/$target.log"
  if cargo fuzz run --fuzz-dir fuzz -s "$SANITIZER" --release "$target" "$corpus" "fuzz/seeds/$target" -- \
      -max_total_time="$SECS" -max_len=1048576 -artifact_prefix="$artifacts/" -print_final_stats=1 >"$log" 2>&1; then
    crashes=0
  else
    crashes=1
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  echo "| $target | $SECS | ${runs:-?} | $(find "$corpus" -type f | wc -l) | $crashes |"
  if [ "$crashes" != 0 ]; then
    grep -E -A1 "panicked" "$log" | head -n 8 >&2
    grep -E "ERROR|SUMMARY|Test unit written" "$log" | head -n 10 >&2
    # CI keeps only the output, so the input that crashed goes there too (first 4 KiB, base64).
    for crash in "$artifacts"/crash-*; do
      [ -f "$crash" ] && echo "crashing input ($(wc -c <"$crash") bytes, base64): $(head -c 4096 "$crash" | base64 -w0)" >&2
    done
    die "fuzz target $target crashed; the input is in $artifacts (log: $log)"
  fi
done
