#!/usr/bin/env python3
"""Writes a llama-architecture GGUF of a given shape with random, numerically tame Q4_K weights.

Real weights cannot be downloaded where Sentinel is benchmarked, but speed and memory depend on the
shape and the quantisation, not on what the weights say. The tokenizer metadata (vocabulary,
merges, special tokens, chat template) is copied from a real GGUF (the default model), so the
file loads and chats like any other.

Every Q4_K super-block gets the same d = dmin = 0.004 and packed scales (scale 1, min 8 for each
of its 8 sub-blocks), so a weight is 0.004 * (q - 8) for its random 4-bit q: within about ±0.03.
Random d and scales would make the logits overflow to NaN in bf16.

    python3 scripts/gen_gguf.py --shape llama-3.2-3b --tokenizer-from MODEL.gguf --out OUT.gguf

Needs the `gguf` and `numpy` packages (scripts/gen-gguf.sh installs them into a venv).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

import numpy as np
import gguf

Q4_K = gguf.GGMLQuantizationType.Q4_K
BLOCK_WEIGHTS, BLOCK_BYTES = gguf.GGML_QUANT_SIZES[Q4_K]  # 256 weights in 144 bytes

# d and dmin as f16, then the 12 packed 6-bit scales and mins (get_scale_min_k4 in ggml):
# bytes 0-3 hold the scales of sub-blocks 0-3, bytes 4-7 their mins, bytes 8-11 the low nibbles
# of sub-blocks 4-7's scale (low) and min (high); the top two bits stay zero.
TAME_HEADER = (
    np.array([0.004, 0.004], dtype=np.float16).tobytes()
    + bytes([1, 1, 1, 1, 8, 8, 8, 8, 0x81, 0x81, 0x81, 0x81])
)
assert len(TAME_HEADER) == BLOCK_BYTES - BLOCK_WEIGHTS // 2


@dataclass(frozen=True)
class Shape:
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    ffn: int
    context: int
    rope_theta: float


SHAPES = {
    # Llama-3.2-3B: about 1.76 GB at Q4_K with its own 128k vocabulary (less with the default
    # model's 49k one).
    "llama-3.2-3b": Shape(hidden=3072, layers=28, heads=24, kv_heads=8, ffn=8192, context=131072, rope_theta=500000.0),
    # Qwen2.5-3B's shape in llama form, the 6 GB profile's model: 36 layers, 2 KV heads.
    "qwen2.5-3b": Shape(hidden=2048, layers=36, heads=16, kv_heads=2, ffn=11008, context=32768, rope_theta=1000000.0),
    # Small enough to load on a CPU in seconds: for checking the generator and the loader.
    "tiny": Shape(hidden=512, layers=4, heads=8, kv_heads=4, ffn=1024, context=4096, rope_theta=10000.0),
}


def tame_q4k(rows: int, cols: int, rng: np.random.Generator) -> np.ndarray:
    """rows x cols weights as Q4_K bytes: shape (rows, cols / 256 * 144), uint8."""
    if cols % BLOCK_WEIGHTS:
        raise SystemExit(f"a Q4_K row needs a multiple of {BLOCK_WEIGHTS} weights, not {cols}")
    blocks = rows * cols // BLOCK_WEIGHTS
    data = np.empty((blocks, BLOCK_BYTES), dtype=np.uint8)
    data[:, : len(TAME_HEADER)] = np.frombuffer(TAME_HEADER, dtype=np.uint8)
    data[:, len(TAME_HEADER) :] = rng.integers(0, 256, size=(blocks, BLOCK_WEIGHTS // 2), dtype=np.uint8)
    return data.reshape(rows, cols // BLOCK_WEIGHTS * BLOCK_BYTES)


def copy_tokenizer(reader: gguf.GGUFReader, writer: gguf.GGUFWriter) -> int:
    """Copies every tokenizer.* key; returns the vocabulary size."""
    vocab = 0
    for field in reader.fields.values():
        if not field.name.startswith("tokenizer."):
            continue
        kind = field.types[0]
        if kind == gguf.GGUFValueType.ARRAY:
            values = [field.contents(i) for i in range(len(field.data))]
            writer.add_array(field.name, values)
            if field.name == "tokenizer.ggml.tokens":
                vocab = len(values)
        elif kind == gguf.GGUFValueType.STRING:
            writer.add_string(field.name, str(field.contents()))
        else:
            writer.add_key_value(field.name, field.contents(), kind)
    if not vocab:
        raise SystemExit("the tokenizer source has no tokenizer.ggml.tokens")
    return vocab


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--shape",
        choices=sorted(SHAPES) + ["tokenizer"],
        required=True,
        help="a model shape, or `tokenizer` for a file with the tokenizer metadata only (no tensors): "
        "a few MB to carry to a machine that cannot fetch the default model",
    )
    parser.add_argument("--tokenizer-from", required=True, help="a GGUF whose tokenizer metadata is copied")
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    if args.shape == "tokenizer":
        writer = gguf.GGUFWriter(args.out, "llama")
        writer.add_name("sentinel-tokenizer")
        vocab = copy_tokenizer(gguf.GGUFReader(args.tokenizer_from), writer)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        print(f"{args.out}: tokenizer only (vocabulary {vocab})", file=sys.stderr)
        return 0

    shape = SHAPES[args.shape]
    head_dim = shape.hidden // shape.heads
    kv_dim = shape.kv_heads * head_dim
    rng = np.random.default_rng(args.seed)

    writer = gguf.GGUFWriter(args.out, "llama")
    writer.add_name(f"sentinel-random-{args.shape}")
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_Q4_K_S)
    vocab = copy_tokenizer(gguf.GGUFReader(args.tokenizer_from), writer)
    writer.add_vocab_size(vocab)
    writer.add_context_length(shape.context)
    writer.add_embedding_length(shape.hidden)
    writer.add_block_count(shape.layers)
    writer.add_feed_forward_length(shape.ffn)
    writer.add_head_count(shape.heads)
    writer.add_head_count_kv(shape.kv_heads)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(shape.rope_theta)
    writer.add_layer_norm_rms_eps(1e-5)

    def matrix(name: str, rows: int, cols: int) -> None:
        writer.add_tensor(name, tame_q4k(rows, cols, rng), raw_dtype=Q4_K)

    def norm(name: str) -> None:
        writer.add_tensor(name, np.ones(shape.hidden, dtype=np.float32))

    matrix("token_embd.weight", vocab, shape.hidden)
    for layer in range(shape.layers):
        prefix = f"blk.{layer}"
        norm(f"{prefix}.attn_norm.weight")
        matrix(f"{prefix}.attn_q.weight", shape.hidden, shape.hidden)
        matrix(f"{prefix}.attn_k.weight", kv_dim, shape.hidden)
        matrix(f"{prefix}.attn_v.weight", kv_dim, shape.hidden)
        matrix(f"{prefix}.attn_output.weight", shape.hidden, shape.hidden)
        norm(f"{prefix}.ffn_norm.weight")
        matrix(f"{prefix}.ffn_gate.weight", shape.ffn, shape.hidden)
        matrix(f"{prefix}.ffn_up.weight", shape.ffn, shape.hidden)
        matrix(f"{prefix}.ffn_down.weight", shape.hidden, shape.ffn)
    norm("output_norm.weight")
    matrix("output.weight", vocab, shape.hidden)

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    print(
        f"{args.out}: {args.shape} (hidden {shape.hidden}, {shape.layers} layers, {shape.heads} heads, "
        f"{shape.kv_heads} KV heads, FFN {shape.ffn}, vocabulary {vocab}), Q4_K",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
