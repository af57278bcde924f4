#!/usr/bin/env bash
# Builds a llama-cpp-python 0.3.36 wheel with GGML_CUDA=on from the project-local CUDA toolkit
# (scripts/cuda-toolkit.sh), for measuring llama.cpp beside the worker on the same GGUF and GPU.
# Needs no GPU. The wheel lands in .sentinel/wheels (SENTINEL_WHEEL_DIR); CUDA_COMPUTE_CAP picks
# the GPU generation (default 90, H100). On the GPU machine, install it with
# `pip install --no-deps .sentinel/wheels/llama_cpp_python-*.whl` beside numpy, typing-extensions,
# diskcache and jinja2, and put the toolkit's lib folder on LD_LIBRARY_PATH (cuBLAS, cudart).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

VERSION=0.3.36
OUT="${SENTINEL_WHEEL_DIR:-$STATE_DIR/wheels}"
mkdir -p "$OUT"
command -v cmake >/dev/null || pip install -q cmake ninja || die "cmake is needed (pip install cmake ninja)"
command -v g++ >/dev/null || die "g++ is needed as nvcc's host compiler (Debian: apt-get install g++)"

# shellcheck disable=SC2016
bash "$ROOT/scripts/cuda-toolkit.sh" bash -c '
  set -euo pipefail
  export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}"
  # The wheels have no static cudart and keep the driver stub outside lib64/stubs.
  export CMAKE_ARGS="-DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=$CUDA_COMPUTE_CAP \
    -DCMAKE_CUDA_COMPILER=$CUDA_ROOT/bin/nvcc -DCUDAToolkit_ROOT=$CUDA_ROOT \
    -DCMAKE_CUDA_RUNTIME_LIBRARY=Shared -DCUDA_cuda_driver_LIBRARY=$CUDA_ROOT/stubs/libcuda.so \
    -DLLAMA_BUILD_TESTS=off -DLLAMA_BUILD_EXAMPLES=off -DLLAMA_BUILD_TOOLS=off -DLLAMA_BUILD_SERVER=off"
  echo "CMAKE_ARGS=$CMAKE_ARGS"
  pip wheel --no-deps --no-binary llama-cpp-python -w "$1" "llama-cpp-python==$2"
' _ "$OUT" "$VERSION"
say "Built: $(ls "$OUT"/llama_cpp_python-"$VERSION"-*.whl)"
