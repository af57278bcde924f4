#!/usr/bin/env bash
# Runs every libFuzzer target (fuzz/fuzz_targets: the platform adapters, the signature verifiers,
# the SOAP parser, deterministic healing, the layer decoders) for SENTINEL_FUZZ_SECS seconds each (default 20), from
# the committed seeds plus the corpus kept in .sentinel/fuzz. A crash fails the run and leaves its
# input in .sentinel/fuzz/artifacts/<target>/; reproduce it by running the target's binary on that
# file (the path is printed), or with cargo-fuzz if you have it:
#   RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir fuzz <target> <that file>
# and turn it into a regression test beside the code it broke.
#
#   scripts/fuzz.sh [target...]        SENTINEL_FUZZ_SECS=600 scripts/fuzz.sh heal
#
# The targets are built with cargo itself, with the instrumentation flags cargo-fuzz 0.13 passes
# (its src/project.rs), so no tool has to be compiled first (cargo-fuzz took about 3 minutes to
# install on a cold machine). They link sentinel-queue without its `db` feature: the pure half
# (adapters, signatures, envelopes, healing) is what they exercise, and leaving out sqlx, tokio and
# rustls keeps the instrumented build short. --target keeps the flags off build scripts and
# proc macros, as cargo-fuzz does, and puts the build in its own directory.
# Inputs go up to 1 MiB (-max_len), and every target runs each input on a thread with the 2 MiB
# stack of tokio's threads (fuzz_targets/production_stack.rs), so an input that would overflow a
# production stack crashes the target here.
# SENTINEL_FUZZ_SANITIZER picks the sanitizer (default none: the code under test is safe Rust, and
# without ASan the bounded runs cover several times more inputs; address is the longer-run choice).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

SECS="${SENTINEL_FUZZ_SECS:-20}"
SANITIZER="${SENTINEL_FUZZ_SANITIZER:-none}"
TRIPLE="$(rustc -vV | sed -n 's/^host: //p')"
export SQLX_OFFLINE=true
# scripts/test.sh lints the workspace through clippy-driver; the fuzz crate is a workspace of its
# own and builds with plain rustc.
unset RUSTC_WORKSPACE_WRAPPER CLIPPY_ARGS

require_cargo
targets=("$@")
[ "${#targets[@]}" -gt 0 ] || targets=(adapters signatures soap heal decode)

flags="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4"
flags+=" -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table"
flags+=" -Cllvm-args=-sanitizer-coverage-trace-compares -Cllvm-args=-simplifycfg-branch-fold-threshold=0"
flags+=" -Cllvm-args=-sanitizer-coverage-stack-depth --cfg fuzzing -Clink-dead-code -Ccodegen-units=1"
flags+=" -Ctarget-cpu=x86-64-v3"
if [ "$SANITIZER" != none ]; then
  # Sanitizers are unstable flags; RUSTC_BOOTSTRAP=1 unlocks them on the stable toolchain.
  export RUSTC_BOOTSTRAP=1
  flags+=" -Zsanitizer=$SANITIZER"
fi
say "Building the fuzz targets (sanitizer: $SANITIZER)"
RUSTFLAGS="$flags" cargo build --manifest-path fuzz/Cargo.toml --locked --release --target "$TRIPLE" \
  --config profile.release.debug=true --bins
FUZZ_BIN="${CARGO_TARGET_DIR:-$ROOT/fuzz/target}/$TRIPLE/release"

echo "| fuzz target | seconds | executions | corpus entries | crashes |"
echo "|---|---|---|---|---|"
for target in "${targets[@]}"; do
  corpus="$STATE_DIR/fuzz/corpus/$target"
  artifacts="$STATE_DIR/fuzz/artifacts/$target"
  mkdir -p "$corpus" "$artifacts"
  log="$STATE_DIR/fuzz/$target.log"
  if "$FUZZ_BIN/$target" "$corpus" "fuzz/seeds/$target" -max_total_time="$SECS" -max_len=1048576 -artifact_prefix="$artifacts/" -print_final_stats=1 >"$log" 2>&1; then
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
