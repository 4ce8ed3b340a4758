"""Benchmark a model placed by accelerate against the same model in memory, and an nnsight trace.

Usage: python tests/benchmarks/bench_offload.py [--shape pythia-160m] [--tokens 256] [--repeats 3] [--out r.json]

One Pythia-shaped GPT-NeoX with random weights, four ways, timed in turn repeat by repeat so that
their ratios hold under a changing load: in memory; `accelerate.cpu_offload` (every weight brought
in from CPU memory at each call: here CPU to CPU, so this measures the hooks' bookkeeping, not a
transfer to a GPU); `dispatch_model` with every
block, the final norm and the head offloaded to disk (memory-mapped, as `device_map="auto"` with
`offload_folder` does); and, when nnsight is installed, `trace_grid` on the in-memory model, plain
and in nnsight's dry run of a remote request (the
whole grid inside one trace, as a remote run would: no cache, every edit a full trace). Per way:
the first full view, an append (the cache continued through accelerate's hooks) and an edit in the
middle. The grids of the placed models (statistics, top-k ids and probabilities) are checked equal
to the in-memory one's before timing.

Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_session import SHAPES, build_model, emit, text_of
from tiny_models import tiny_tokenizer

from lens_widget import LensSession


def offloaded_to_disk(model: torch.nn.Module, folder: str) -> torch.nn.Module:
    from accelerate import dispatch_model

    placement = {"gpt_neox.embed_in": "cpu", "gpt_neox.emb_dropout": "cpu", "gpt_neox.rotary_emb": "cpu"}
    placement |= {f"gpt_neox.layers.{i}": "disk" for i in range(model.config.num_hidden_layers)}
    placement |= {"gpt_neox.final_layer_norm": "disk", "lm_head": "disk"}
    return dispatch_model(copy.deepcopy(model), device_map=placement, offload_dir=folder, main_device="cpu")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shape", default="pythia-160m", choices=sorted(SHAPES))
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    from accelerate import cpu_offload

    tokenizer = tiny_tokenizer(1000)
    n = args.tokens
    model = build_model(args.shape, "cpu", tokens=n)
    base = text_of(tokenizer, n)
    appended = next(base + w for w in (" the", " a", ".", "s") if len(tokenizer(base + w).input_ids) == n + 1)
    mid_start, mid_end = tokenizer(base, return_offsets_mapping=True)["offset_mapping"][n // 2]
    middle = base[:mid_start] + " Zanzibar" + base[mid_end:]
    folder = tempfile.mkdtemp(prefix="lens-offload-")
    models = {
        "in memory": model,
        "cpu_offload": cpu_offload(copy.deepcopy(model), execution_device="cpu"),
        "disk offload": offloaded_to_disk(model, folder),
    }
    sessions = {name: LensSession(m, tokenizer, max_tokens=n + 8) for name, m in models.items()}
    reference = sessions["in memory"]
    reference.set_text(base)
    for name, session in sessions.items():  # equal grids first: a fast wrong answer is no answer
        session.set_text(base)
        for ours, theirs in zip(session.grid_arrays(), reference.grid_arrays(), strict=True):
            if not np.array_equal(ours, theirs, equal_nan=True):
                raise SystemExit(f"{name}: its grid differs from the in-memory model's")

    def timed(fn: Callable[[], Any], setup: Callable[[], Any]) -> float:
        setup()
        started = time.perf_counter()
        fn()
        return time.perf_counter() - started

    runs: dict[str, dict[str, list[float]]] = {name: {"full": [], "append": [], "middle": []} for name in sessions}
    trace: list[float] = []
    dry_run: list[float] = []
    lm = None
    try:
        import nnsight

        from lens_widget.nnsight_trace import trace_grid

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # LanguageModel's deprecation notice: the name users know
            lm = nnsight.LanguageModel(model, tokenizer=copy.deepcopy(tokenizer))
        ids = reference.tokens.ids
        trace_grid(lm, ids)  # the adapter's discovery, once
    except ImportError:
        pass
    for _ in range(args.repeats):
        for name, s in sessions.items():
            runs[name]["full"].append(timed(lambda s=s: s.set_text(base), s.reset))
            runs[name]["append"].append(timed(lambda s=s: s.set_text(appended), lambda s=s: s.set_text(base)))
            runs[name]["middle"].append(timed(lambda s=s: s.set_text(middle), lambda s=s: s.set_text(base)))
        if lm is not None:
            trace.append(timed(lambda: trace_grid(lm, ids), lambda: None))
            dry_run.append(timed(lambda: trace_grid(lm, ids, remote="local"), lambda: None))
    medians = {name: {k: statistics.median(v) for k, v in r.items()} for name, r in runs.items()}
    plain = medians["in memory"]
    result: dict[str, Any] = {"shape": args.shape, "tokens": n, "repeats": args.repeats, "device": "cpu"}
    print(f"Placed models: {args.shape} shape, random weights, {n} tokens, CPU, medians of {args.repeats}")
    print(f"{'way':<16}{'full s':>9}{'append s':>10}{'middle s':>10}{'full ×':>8}{'append ×':>10}")
    for name, m in medians.items():
        key = name.replace(" ", "_")
        result |= {f"{key}_{k}_s": round(v, 4) for k, v in m.items()}
        print(f"{name:<16}{m['full']:>9.3f}{m['append']:>10.4f}{m['middle']:>10.3f}"
              f"{m['full'] / plain['full']:>8.2f}{m['append'] / plain['append']:>10.2f}")
    if trace:
        result["nnsight_trace_full_s"] = round(statistics.median(trace), 4)
        print(f"{'nnsight trace':<16}{statistics.median(trace):>9.3f}{'':>10}{'':>10}"
              f"{statistics.median(trace) / plain['full']:>8.2f}  (every edit is a whole trace)")
        result["nnsight_dry_run_full_s"] = round(statistics.median(dry_run), 4)
        print(f"{'nnsight dry run':<16}{statistics.median(dry_run):>9.3f}{'':>10}{'':>10}"
              f"{statistics.median(dry_run) / plain['full']:>8.2f}  (remote='local': serialised as for NDIF)")
    emit(result, args.out)


if __name__ == "__main__":
    main()
