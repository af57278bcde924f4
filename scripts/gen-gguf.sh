#!/usr/bin/env bash
# gen-gguf.sh SHAPE OUT: writes a llama-architecture GGUF of SHAPE (llama-3.2-3b, qwen2.5-3b or
# tiny) with random, numerically tame Q4_K weights and the default model's tokenizer, for speed and
# memory measurements (scripts/gen_gguf.py says how). Installs gguf and numpy into
# .sentinel/gguf on first use and fetches the default model when it is missing.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

[ "$#" -eq 2 ] || die "usage: scripts/gen-gguf.sh SHAPE OUT (SHAPE: llama-3.2-3b, qwen2.5-3b, tiny)"
VENV="$STATE_DIR/gguf"
if ! "$VENV/bin/python" -c 'import gguf, numpy' 2>/dev/null; then
  say "Installing gguf 0.19.0 and numpy 2.4.6 into $VENV"
  python3 -m venv "$VENV" || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
  "$VENV/bin/pip" install -q gguf==0.19.0 numpy==2.4.6 || die "pip install gguf numpy failed"
fi
TOKENIZER="${SENTINEL_MODEL:-$(bash "$ROOT/scripts/fetch-model.sh")}"
"$VENV/bin/python" "$ROOT/scripts/gen_gguf.py" --shape "$1" --tokenizer-from "$TOKENIZER" --out "$2"
