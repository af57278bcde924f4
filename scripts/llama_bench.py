#!/usr/bin/env python3
"""llama.cpp (through llama-cpp-python) on the same GGUF and prompt as `sentinel-worker bench`.

Prints the same columns for one sequence: prompt tokens, prompt tok/s (prompt over time to the
first token), decode tok/s (tokens after the first over the time after it) and aggregate tok/s
(tokens out over the whole wall time, prompt included), once per round.

    python3 scripts/llama_bench.py MODEL.gguf [--tokens 128] [--rounds 3] [--cpu-threads N]

All layers go to the GPU when llama-cpp-python was built with GGML_CUDA=on
(scripts/llama-cpp-cuda.sh); flash attention is on.
"""

from __future__ import annotations

import argparse
import sys
import time

from llama_cpp import Llama

SYSTEM = (
    "You are the support agent of an online bakery. Answer politely, in two sentences, and never "
    "invent order numbers."
)


def user(variant: int) -> str:
    return (
        f"Hello, this is customer {variant}. I ordered a chocolate cake and two baguettes yesterday "
        "for delivery today, but nothing has arrived yet. Could you tell me what happened and when "
        "it will come?"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cpu-threads", type=int, default=None)
    args = parser.parse_args()

    llm = Llama(
        model_path=args.model,
        n_gpu_layers=-1,
        n_ctx=2048,
        flash_attn=True,
        n_threads=args.cpu_threads,
        verbose=False,
    )
    # Random weights rarely choose EOS, but a measurement must not depend on it.
    no_eos = {llm.token_eos(): -float("inf")}
    print(f"model: {args.model}")
    print("| engine | prompt tokens | prompt tok/s | decode tok/s | aggregate tok/s | wall s |")
    print("|---|---|---|---|---|---|")
    for variant in range(args.rounds + 1):
        messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user(variant)}]
        # The prompt's length as the engine counts it (one token out, not timed).
        prompt_tokens = llm.create_chat_completion(messages, max_tokens=1)["usage"]["prompt_tokens"]
        llm.reset()
        started = time.perf_counter()
        first = None
        pieces = 0
        for chunk in llm.create_chat_completion(
            messages, max_tokens=args.tokens, temperature=0.0, logit_bias=no_eos, stream=True
        ):
            if chunk["choices"][0]["delta"].get("content"):
                pieces += 1
                first = first or time.perf_counter()
        wall = time.perf_counter() - started
        llm.reset()
        if variant == 0 or first is None:
            continue  # warm-up: the first call pays for kernel loading and graph set-up
        to_first = first - started
        print(
            f"| llama.cpp | {prompt_tokens} | {prompt_tokens / to_first:.1f} | "
            f"{(pieces - 1) / max(wall - to_first, 1e-9):.1f} | {pieces / wall:.1f} | {wall:.2f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
