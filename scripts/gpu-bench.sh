#!/usr/bin/env bash
# The issue-7 measurement on an NVIDIA GPU machine that has no Rust and no network (the lent
# device: CUDA 13 with nvcc, CMake, numpy, scikit-build-core and NVIDIA's cu13 wheels installed).
#
#   bash scripts/gpu-bench.sh pack      # here: fill .gpu/ (ignored by git, about 28 MB) with the
#                                       # worker's cuda build (xz), a tokenizer-only GGUF, the gguf
#                                       # and diskcache wheels and a slimmed llama-cpp-python sdist
#   bash scripts/gpu-bench.sh run       # there, with .gpu carried: generate the model, run
#                                       # `sentinel-worker bench` with and without a VRAM budget,
#                                       # build llama-cpp-python with GGML_CUDA=on and run
#                                       # scripts/llama_bench.py on the same file; tables into $OUT
#
# SHAPE (default llama-3.2-3b), BUDGETS (default "6144"), SEQS (default 1,4,8,16), TOKENS (128),
# CUDA_COMPUTE_CAP (90).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

PACK="$ROOT/.gpu"
SHAPE="${SHAPE:-llama-3.2-3b}"
BUDGETS="${BUDGETS:-6144}"
SEQS="${SEQS:-1,4,8,16}"
TOKENS="${TOKENS:-128}"
LLAMA_VERSION=0.3.36

pack() {
  local target="${CARGO_TARGET_DIR:-$ROOT/target}-cuda"
  mkdir -p "$PACK"
  say "Building the worker with --features cuda (CARGO_TARGET_DIR=$target)"
  CARGO_TARGET_DIR="$target" bash "$ROOT/scripts/cuda-toolkit.sh" \
    cargo build --release -p sentinel-worker --features cuda
  # Without its line tables the binary is 132 MB instead of 492 (20.6 MB with xz instead of 64).
  strip -o "$PACK/sentinel-worker" "$target/release/sentinel-worker"
  xz -T0 -6 -f "$PACK/sentinel-worker"
  mv "$PACK/sentinel-worker.xz" "$PACK/sentinel-worker-cuda.xz"
  bash "$ROOT/scripts/gen-gguf.sh" tokenizer "$PACK/tokenizer.gguf"
  pip download -q --no-deps -d "$PACK" gguf==0.19.0 diskcache==5.6.3 || die "pip download failed"
  local work
  work="$(mktemp -d)"
  pip download -q --no-deps --no-binary llama-cpp-python -d "$work" "llama-cpp-python==$LLAMA_VERSION" \
    || die "pip download of the llama-cpp-python sdist failed"
  tar -xzf "$work/llama_cpp_python-$LLAMA_VERSION.tar.gz" -C "$work"
  # The sdist carries llama.cpp's git history, model vocabularies, docs and web UI: not needed to
  # build the library, and together over the device's 64 MiB.
  local src="$work/llama_cpp_python-$LLAMA_VERSION"
  rm -rf "$src/.git" "$src"/vendor/llama.cpp/{models,docs,benches,media,tools/ui} "$src"/vendor/llama.cpp/tools/mtmd/test-*
  tar -cJf "$PACK/llama_cpp_python-$LLAMA_VERSION.tar.xz" -C "$work" "llama_cpp_python-$LLAMA_VERSION"
  rm -rf "$work"
  du -ch "$PACK"/* | tail -n 1
  ls -la "$PACK"
}

run() {
  local out="${OUT:-$ROOT/test-output/gpu}" work
  mkdir -p "$out"
  work="$(mktemp -d)"
  [ -f "$PACK/sentinel-worker-cuda.xz" ] || die "no $PACK: run 'bash scripts/gpu-bench.sh pack' first and carry .gpu"
  xz -dc "$PACK/sentinel-worker-cuda.xz" >"$work/sentinel-worker"
  chmod +x "$work/sentinel-worker"
  python3 -m pip install -q --no-deps --target "$work/py" "$PACK"/gguf-*.whl "$PACK"/diskcache-*.whl
  export PYTHONPATH="$work/py${PYTHONPATH:+:$PYTHONPATH}"
  # cuBLAS and friends from NVIDIA's wheels beside the machine's Python, found by the worker's
  # dlopen and by llama.cpp's loader.
  local libs
  libs="$(python3 - <<'PY'
import glob, os
try:
    import nvidia
    roots = list(nvidia.__path__)
except ImportError:
    roots = []
print(":".join(sorted({os.path.dirname(p) for r in roots for p in glob.glob(f"{r}/**/lib*.so*", recursive=True)})))
PY
)"
  export LD_LIBRARY_PATH="$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt" || say "no nvidia-smi here"

  local model="$work/$SHAPE.gguf"
  python3 "$ROOT/scripts/gen_gguf.py" --shape "$SHAPE" --tokenizer-from "$PACK/tokenizer.gguf" --out "$model"
  ls -la "$model" | tee -a "$out/gpu.txt"

  export HF_HUB_OFFLINE=1 SENTINEL_MODEL="$model" RUST_LOG=warn
  say "sentinel-worker bench, no budget (mistral.rs's default cache)"
  "$work/sentinel-worker" bench --seqs "$SEQS" --tokens "$TOKENS" --rounds 2 2>&1 | tee "$out/worker-nobudget.txt"
  for budget in $BUDGETS; do
    say "sentinel-worker bench, SENTINEL_VRAM_BUDGET_MB=$budget"
    SENTINEL_VRAM_BUDGET_MB="$budget" "$work/sentinel-worker" bench --seqs "$SEQS" --tokens "$TOKENS" --rounds 2 \
      2>&1 | tee "$out/worker-budget-$budget.txt"
  done

  say "llama-cpp-python $LLAMA_VERSION with GGML_CUDA=on (sm_${CUDA_COMPUTE_CAP:-90})"
  tar -xJf "$PACK/llama_cpp_python-$LLAMA_VERSION.tar.xz" -C "$work"
  CMAKE_ARGS="-DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=${CUDA_COMPUTE_CAP:-90} -DLLAVA_BUILD=off" \
    CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
    python3 -m pip wheel -q --no-deps --no-build-isolation -w "$work/wheels" "$work/llama_cpp_python-$LLAMA_VERSION" \
    2>&1 | tail -n 20 | tee "$out/llama-build.txt"
  python3 -m pip install -q --no-deps --target "$work/py" "$work"/wheels/llama_cpp_python-*.whl
  python3 "$ROOT/scripts/llama_bench.py" "$model" --tokens "$TOKENS" --rounds 3 2>&1 | tee "$out/llama.txt"
}

case "${1:-}" in
  pack) pack ;;
  run) run ;;
  *) die "usage: scripts/gpu-bench.sh pack|run" ;;
esac
