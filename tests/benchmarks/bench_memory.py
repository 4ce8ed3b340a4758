"""Benchmark the memory of a long input: 4,096 tokens on a 24-layer model, from scratch and after an edit.

Usage: python tests/benchmarks/bench_memory.py [--shape pythia-410m] [--tokens 4096] [--out results.json]

A Pythia-shaped GPT-NeoX with random weights and a 4,096-position context. The resident memory of the
process is sampled every 5 ms by a thread (/proc/self/statm), so each phase's peak is its own:
loading the model, the first full grid (forward pass and every cell), an edit in the middle, and
the same edit typed with 20 columns on screen. Beside the peaks: what the session keeps (hidden
states, key/value cache, cells), measured from its tensors, against the README's formula.

Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, AutoModelForCausalLM

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_session import SHAPES, emit, text_of
from tiny_models import tiny_tokenizer

from lens_widget.capacity import state_bytes
from lens_widget.session import LensSession

PAGE = os.sysconf("SC_PAGE_SIZE")
MB = 2**20


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


@contextmanager
def peak() -> Iterator[dict[str, float]]:
    """The largest resident size while the block runs (and how long it took)."""
    out = {"peak": rss(), "seconds": 0.0}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            out["peak"] = max(out["peak"], rss())
            time.sleep(0.005)

    thread = threading.Thread(target=sample, daemon=True)
    started = time.perf_counter()
    thread.start()
    try:
        yield out
    finally:
        stop.set()
        thread.join()
        out["seconds"] = time.perf_counter() - started
        out["peak"] = max(out["peak"], rss())


def measure(step: Callable[[], Any]) -> dict[str, float]:
    before = rss()
    with peak() as result:
        step()
    return {"seconds": result["seconds"], "before_mb": before / MB, "peak_mb": result["peak"] / MB}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shape", default="pythia-410m", choices=sorted(SHAPES))
    parser.add_argument("--tokens", type=int, default=4096)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    tokenizer = tiny_tokenizer(1000)
    n = args.tokens
    config = AutoConfig.for_model(
        model_type="gpt_neox",
        vocab_size=50304,
        rotary_pct=0.25,
        max_position_embeddings=n + 64,
        tie_word_embeddings=False,
        **SHAPES[args.shape],
    )
    text = text_of(tokenizer, n)
    start = rss()
    holder: dict[str, Any] = {}

    def load() -> None:
        torch.manual_seed(0)
        holder["model"] = AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()

    loading = measure(load)
    model = holder["model"]
    session = LensSession(model, tokenizer, max_tokens=n + 8)
    first = measure(lambda: session.set_text(text))
    assert len(session.tokens.ids) == n
    mid_start, mid_end = tokenizer(text, return_offsets_mapping=True)["offset_mapping"][n // 2]
    middle = text[:mid_start] + " Zanzibar" + text[mid_end:]
    edit = measure(lambda: session.set_text(middle))
    session.set_text(text)
    typed = measure(lambda: session.set_text(middle, visible=(n // 2 - 4, n // 2 + 16)))
    rest = measure(session.finish)
    kept = session.memory()
    layers, d = config.num_hidden_layers, config.hidden_size
    rows = layers + 1
    hidden, cache = state_bytes(n, layers, d, d, 4)
    formula = {"hidden": hidden, "cache": cache, "cells": rows * n * (5 * 4 + 10 * 12)}
    result = {
        "shape": args.shape,
        "tokens": n,
        "layers": layers,
        "d_model": d,
        "rss_start_mb": round(start / MB, 1),
        "model_mb": round((loading["peak_mb"] - loading["before_mb"]), 1),
        "first_full_s": round(first["seconds"], 2),
        "first_full_peak_mb": round(first["peak_mb"], 1),
        "first_full_peak_over_start_mb": round(first["peak_mb"] - first["before_mb"], 1),
        "middle_edit_s": round(edit["seconds"], 2),
        "middle_edit_peak_over_start_mb": round(edit["peak_mb"] - edit["before_mb"], 1),
        "typed_first_visible_s": round(typed["seconds"], 2),
        "typed_rest_s": round(rest["seconds"], 2),
        "kept_hidden_mb": round(kept["hidden_states"] / MB, 1),
        "kept_cache_mb": round(kept["cache"] / MB, 1),
        "kept_cells_mb": round(kept["cells"] / MB, 1),
        "formula_hidden_mb": round(formula["hidden"] / MB, 1),
        "formula_cache_mb": round(formula["cache"] / MB, 1),
        "formula_cells_mb": round(formula["cells"] / MB, 1),
        "largest_chunk_mb": round(kept["largest_chunk"] / MB, 1),
        "rss_end_mb": round(rss() / MB, 1),
    }
    print(f"Memory of a long input: {args.shape} shape ({layers} layers, d = {d}), {n} tokens, float32, CPU")
    for key, value in result.items():
        print(f"{key:<34}{value:>14}")
    emit(result, args.out)


if __name__ == "__main__":
    main()
