"""Benchmark LensSession against the naive recompute tuned-lens does on every change.

Usage:
    python tests/benchmarks/bench_session.py                       # CPU, Pythia-160m shape, 256 tokens
    python tests/benchmarks/bench_session.py --device cuda --shape pythia-1.4b --tokens 1024
    python tests/benchmarks/bench_session.py --device cuda --shape llama-3.1-8b --tokens 8192 --skip-naive --skip-ab

The model has Pythia's architecture and size with random weights (nothing is downloaded); the
tokenizer is a byte-level BPE trained on the spot. Prints a table and one JSON line. All timings
come from this one run, medians of several repeats, so their ratios are comparable.

A/B: a second model of the same shape (another random seed) is compared with the first, cell by
cell (LensSession(model_b=...)): `ab_full_s` and `ab_append_s` against one model's `full_s` and
`append_s`, timed alternately, repeat by repeat, so that a change in the machine's load between
them cannot pass for a cost of the diff.

Generation: seconds per greedy token, the widget's way (the choice from the session's last position and
an append with its column of every row) against the model's own decoding step alone (a forward with its
cache, then argmax), `--generate-steps` tokens per repeat, in turn: `generate_per_token_s`,
`model_step_s` and their ratio.

Rows after attention: a session with `sublayers` on (2L + 1 rows, the ℓ.attn rows recorded on the same
forward passes) against one without, timed alternately in the same way: `sublayers_full_s` and
`sublayers_append_s`, and its kept hidden states, cells and payload beside the plain session's.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, AutoModelForCausalLM

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tiny_models import tiny_tokenizer

from lens_widget import ModelAdapter
from lens_widget.capacity import chunk_bytes_for, supports_bfloat16
from lens_widget.controller import chunk_columns
from lens_widget.generate import Generation, Sampling
from lens_widget.grid import _block
from lens_widget.payload import payload_of, payload_size
from lens_widget.session import LensSession

SHAPES: dict[str, dict[str, Any]] = {
    "pythia-160m": {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072},
    "pythia-410m": {"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16, "intermediate_size": 4096},
    "pythia-1.4b": {"hidden_size": 2048, "num_hidden_layers": 24, "num_attention_heads": 16, "intermediate_size": 8192},
    "llama-3.1-8b": {
        "model_type": "llama",
        "vocab_size": 128256,
        "hidden_size": 4096,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "intermediate_size": 14336,
        "max_position_embeddings": 131072,
        "rope_theta": 500000.0,
    },
}
"""Each shape's config: GPT-NeoX (Pythia) unless it names another model_type."""

VISIBLE_COLUMNS = 20
"""Columns a widget shows at once (about 1,200 px of 58 px cells)."""

WORDS = (
    "the model reads each token and the lens shows what every layer would predict next while the "
    "researcher types a sentence about Paris France Berlin Germany numbers 3.14 and code def main"
).split()


def model_config(shape: str, tokens: int = 0) -> dict[str, Any]:
    """The shape's config, with a context of at least `tokens` (rotary positions extend to any length)."""
    pythia = {"model_type": "gpt_neox", "vocab_size": 50304, "rotary_pct": 0.25, "max_position_embeddings": 2048}
    config = {**pythia, "tie_word_embeddings": False, **SHAPES[shape]}
    config["max_position_embeddings"] = max(config["max_position_embeddings"], tokens + 16)
    return config


def build_model(shape: str, device: str, seed: int = 0, tokens: int = 0) -> torch.nn.Module:
    """Random weights, initialised on the device itself (an 8B model's init on the host takes minutes):
    float32 on a CPU; on a GPU bfloat16 where it has it, else float16."""
    config = AutoConfig.for_model(**model_config(shape, tokens))
    torch.manual_seed(seed)
    dtype = torch.float32
    if device != "cpu":
        dtype = torch.bfloat16 if supports_bfloat16(torch.device(device)) else torch.float16
    with torch.device(device):
        return AutoModelForCausalLM.from_config(config, dtype=dtype).eval()


def text_of(tokenizer: Any, n: int) -> str:
    """A text of exactly n tokens (the prefix of a long word salad, cut at a token boundary)."""
    words = list(WORDS)
    while len(tokenizer(" ".join(words)).input_ids) <= n:
        words += words
    text = " ".join(words)
    spans = tokenizer(text, return_offsets_mapping=True)["offset_mapping"]
    return text[: spans[n - 1][1]]


def median_time(
    fn: Callable[[], Any], repeats: int, setup: Callable[[], Any] | None = None, sync: bool = False
) -> float:
    times = []
    for _ in range(repeats):
        if setup is not None:
            setup()
        if sync:
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if sync:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


class Peer:
    """tuned-lens 0.2.0 in its own environment (peer_tuned_lens.py): the same model, the same ids."""

    def __init__(self, python: str, shape: str, ids: list[int], model: torch.nn.Module) -> None:
        script = Path(__file__).with_name("peer_tuned_lens.py")
        self.process = subprocess.Popen([python, str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        job = {"config": model_config(shape, len(ids)), "seed": 0, "ids": ids, "threads": torch.get_num_threads()}
        ready = self.ask(json.dumps(job))
        ours = float(sum(p.double().sum() for p in model.parameters()))
        if not math.isclose(ready["checksum"], ours, rel_tol=1e-9):
            raise SystemExit(f"tuned-lens built other weights (checksum {ready['checksum']} vs {ours})")
        self.times: list[float] = []
        self.all_times: list[float] = []

    def ask(self, line: str) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline()
        if not answer:
            raise SystemExit("tuned-lens's process ended early (see its error above)")
        return json.loads(answer)

    def full_view(self) -> None:
        answer = self.ask("time")
        self.times.append(answer["seconds"])
        self.all_times.append(answer["all_seconds"])

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=60)


def alternate_medians(
    runs: list[tuple[Callable[[], Any], Callable[[], Any]]], repeats: int, sync: bool = False
) -> list[float]:
    """Median time of each (setup, fn) in `runs`, one repeat of each in turn: their ratios hold even
    when the machine's load changes during the run."""
    times: list[list[float]] = [[] for _ in runs]
    for _ in range(repeats):
        for (setup, fn), out in zip(runs, times, strict=True):
            out.append(median_time(fn, 1, setup=setup, sync=sync))
    return [statistics.median(t) for t in times]


@torch.inference_mode()
def naive_full(model: torch.nn.Module, adapter: ModelAdapter, ids: torch.Tensor, k: int) -> None:
    """What tuned-lens's PredictionTrajectory does: every layer's full-vocabulary log-softmax held at
    once, statistics from it, and the rank by sorting the vocabulary twice per cell."""
    out = model(input_ids=ids[None], output_hidden_states=True)
    L = adapter.num_layers
    rows = [adapter.unembed(out.hidden_states[i][0]) for i in range(L)] + [out.logits[0]]
    logp = torch.log_softmax(torch.stack(rows).float(), dim=-1)  # [L + 1, T, V]
    p = logp.exp()
    targets = torch.cat([ids[1:], ids[-1:]]).to(logp.device)
    entropy = -(p * logp).sum(-1)
    ce = -logp.gather(-1, targets.expand(L + 1, -1)[..., None])[..., 0]
    kl = (p[-1] * (logp[-1] - logp)).sum(-1)
    max_p = p.max(-1).values
    ranks = (-logp).argsort(-1).argsort(-1).gather(-1, targets.expand(L + 1, -1)[..., None])[..., 0] + 1
    top = logp.topk(k, dim=-1)
    for t in (entropy, ce, kl, max_p, ranks, top.values, top.indices):
        t.cpu()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--shape", default="pythia-160m", choices=sorted(SHAPES))
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--naive-repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON line here")
    parser.add_argument("--skip-naive", action="store_true", help="no naive recompute (it holds rows x T x V at once)")
    parser.add_argument("--skip-ab", action="store_true", help="no A/B session (a second model of the same shape)")
    parser.add_argument("--skip-sublayers", action="store_true", help="no session with the rows after attention")
    parser.add_argument("--generate-steps", type=int, default=16, help="tokens generated per repeat (0: none)")
    parser.add_argument(
        "--peer-python",
        default=None,
        help="python of an environment with tuned-lens 0.2.0: times its PredictionTrajectory as the baseline (CPU)",
    )
    args = parser.parse_args()
    sync = args.device == "cuda"
    if sync:
        torch.cuda.reset_peak_memory_stats()

    tokenizer = tiny_tokenizer(1000)
    model = build_model(args.shape, args.device, tokens=args.tokens)
    n = args.tokens
    base = text_of(tokenizer, n)
    appended = next(base + w for w in (" the", " a", ".", "s") if len(tokenizer(base + w).input_ids) == n + 1)
    ids = tokenizer(base).input_ids
    mid_start, mid_end = tokenizer(base, return_offsets_mapping=True)["offset_mapping"][n // 2]
    middle = base[:mid_start] + " Zanzibar" + base[mid_end:]
    assert len(ids) == n and len(tokenizer(appended).input_ids) == n + 1

    session = LensSession(model, tokenizer, top_k=args.top_k, max_tokens=max(2048, n + 8))
    ab = None
    if not args.skip_ab:
        model_b = build_model(args.shape, args.device, seed=1, tokens=args.tokens)
        ab = LensSession(model, tokenizer, model_b=model_b, top_k=args.top_k, max_tokens=max(2048, n + 8))
    sub = None if args.skip_sublayers else LensSession(model, tokenizer, top_k=args.top_k, max_tokens=max(2048, n + 8))
    if sub is not None:
        sub.set_sublayers(True)  # the rows after attention ("ℓ.attn"): 2L + 1 rows
    rows = session.num_layers + 1
    cells = rows * n

    # Our first full grid (fresh session state each repeat), one model and A/B in turn, and
    # tuned-lens's own full view of the same model and ids when its environment is given.
    runs = [(session.reset, lambda: session.set_text(base))]
    if ab is not None:
        runs.append((ab.reset, lambda: ab.set_text(base)))
    if sub is not None:
        runs.append((sub.reset, lambda: sub.set_text(base)))
    peer = Peer(args.peer_python, args.shape, ids, model) if args.peer_python and args.device == "cpu" else None
    if peer is not None:
        runs.append((lambda: None, peer.full_view))
    full_s, *rest = alternate_medians(runs, args.repeats, sync)
    ab_full_s = rest[0] if ab is not None else math.nan
    sub_full_s = rest[int(ab is not None)] if sub is not None else math.nan
    peer_full_s = statistics.median(peer.times) if peer is not None else None
    peer_all_s = statistics.median(peer.all_times) if peer is not None else None
    if peer is not None:
        peer.close()
    full_bytes = payload_size(payload_of(session.full_update()))
    ab_full_bytes = payload_size(payload_of(ab.full_update())) if ab is not None else 0
    sub_full_bytes = payload_size(payload_of(sub.full_update())) if sub is not None else 0
    sub_memory = sub.memory() if sub is not None else None
    plain_memory = session.memory()  # both at the same text

    # Append one token, and replace the token in the middle, each from the 256-token state. The
    # append starts from a session that reached that state by typing (its last step an append too),
    # as when a user types; `append_after_shrink_s` starts it right after deleting a token instead,
    # when the previous column's logits are not kept and cost one more column of lens work.
    before = text_of(tokenizer, n - 1)

    def typed_to_base(s: LensSession) -> Callable[[], None]:
        def setup() -> None:
            s.set_text(before)
            s.set_text(base)

        return setup

    append_update: dict[str, Any] = {}

    def append(s: LensSession, key: str) -> Callable[[], None]:
        return lambda: append_update.__setitem__(key, s.set_text(appended))

    appends = [(typed_to_base(session), append(session, "a"))]
    if ab is not None:
        appends.append((typed_to_base(ab), append(ab, "ab")))
    if sub is not None:
        appends.append((typed_to_base(sub), append(sub, "sub")))
    append_s, *rest = alternate_medians(appends, args.repeats, sync)
    ab_append_s = rest[0] if ab is not None else math.nan
    sub_append_s = rest[int(ab is not None)] if sub is not None else math.nan
    sub_append_bytes = payload_size(payload_of(append_update["sub"])) if sub is not None else 0
    append_after_shrink_s = median_time(
        lambda: session.set_text(appended), args.repeats, setup=lambda: session.set_text(base), sync=sync
    )
    append_bytes = payload_size(payload_of(append_update["a"]))
    ab_append_bytes = payload_size(payload_of(append_update["ab"])) if ab is not None else 0
    middle_update: list[Any] = []
    middle_s = median_time(
        lambda: middle_update.append(session.set_text(middle)),
        args.repeats,
        setup=lambda: session.set_text(base),
        sync=sync,
    )
    # The same edit typed in the widget, whose view shows VISIBLE_COLUMNS columns around it: the time
    # until the delta with the visible columns' cells is ready to send (the model still runs on the whole
    # suffix), then until the rest has followed as chunks.
    visible = (max(0, middle_update[-1].col_start - 4), max(0, middle_update[-1].col_start - 4) + VISIBLE_COLUMNS)
    middle_first_visible_s = median_time(
        lambda: session.set_text(middle, visible=visible), args.repeats, setup=lambda: session.set_text(base), sync=sync
    )

    def visible_then_rest() -> None:
        """As the widget does it: chunks of about CHUNK_SECONDS (controller.chunk_columns)."""
        session.set_text(middle, visible=visible)
        columns = 8
        while True:
            started = time.perf_counter()
            update = session.compute_pending(visible, max_columns=columns)
            if update is None:
                break
            columns = chunk_columns(time.perf_counter() - started, len(update.cell_columns))

    middle_visible_then_rest_s = median_time(
        visible_then_rest, args.repeats, setup=lambda: session.set_text(base), sync=sync
    )
    session_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    peak_gpu = torch.cuda.max_memory_allocated() / 2**20 if sync else None
    memory = session.memory()

    adapter = ModelAdapter(model)
    tensor_ids = torch.tensor(ids, device=args.device)
    naive_s = math.nan
    if not args.skip_naive:
        naive_s = median_time(lambda: naive_full(model, adapter, tensor_ids, args.top_k), args.naive_repeats, sync=sync)
    total_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    # What a full grid cannot go below: the model's forward pass, and the head GEMM of every row at
    # every position, in the grid's own chunks, timed alone (inputs final-normed beforehand).
    forward_s = median_time(lambda: adapter.run(tensor_ids), args.repeats, sync=sync)
    with torch.inference_mode():
        hidden = adapter.run(tensor_ids)[0]
        head_in = torch.cat([adapter.final_norm(hidden[:-1]), adapter.head_input(hidden[-1])[None]])
    # The grid's own blocks (one float32 per logit) into one reused buffer, as the grid runs it: the
    # fastest this GEMM goes here, so the ratio to it is not flattered by a slower baseline.
    block = _block(chunk_bytes_for(torch.device(args.device)), adapter.vocab_size * rows)
    buffer = torch.empty((min(block, n), rows, adapter.vocab_size), device=args.device)

    @torch.inference_mode()
    def head_gemm() -> None:
        for start in range(0, n, block):
            x = head_in[:, start : start + block].transpose(0, 1)
            adapter.decode(x, out=buffer[: x.shape[0]])

    head_gemm_s = median_time(head_gemm, args.repeats, sync=sync)
    generate_s, model_step_s = math.nan, math.nan
    if args.generate_steps > 0:
        generate_s, model_step_s = generation_times(model, tokenizer, base, args.generate_steps, args.repeats, sync)

    result = {
        "device": args.device,
        "shape": args.shape,
        "tokens": n,
        "rows": rows,
        "top_k": args.top_k,
        "naive_full_s": round(naive_s, 4),
        "full_s": round(full_s, 4),
        "tuned_lens_full_s": None if peer_full_s is None else round(peer_full_s, 4),
        "tuned_lens_all_statistics_s": None if peer_all_s is None else round(peer_all_s, 4),
        "forward_s": round(forward_s, 4),
        "head_gemm_s": round(head_gemm_s, 4),
        "full_over_head_gemm": round(full_s / head_gemm_s, 3),
        "statistics_share": round(max(0.0, full_s - forward_s - head_gemm_s) / full_s, 3),
        "append_s": round(append_s, 4),
        "append_after_shrink_s": round(append_after_shrink_s, 4),
        "middle_edit_s": round(middle_s, 4),
        "middle_edit_col_start": middle_update[-1].col_start,
        "middle_edit_first_visible_s": round(middle_first_visible_s, 4),
        "middle_edit_visible_then_rest_s": round(middle_visible_then_rest_s, 4),
        "visible_columns": VISIBLE_COLUMNS,
        "payload_full_bytes": full_bytes,
        "payload_append_bytes": append_bytes,
        "bytes_per_cell": round(full_bytes / cells, 2),
        "ab_full_s": round(ab_full_s, 4),
        "ab_append_s": round(ab_append_s, 4),
        "ab_full_ratio": round(ab_full_s / full_s, 3),
        "ab_append_ratio": round(ab_append_s / append_s, 3),
        "ab_payload_full_bytes": ab_full_bytes,
        "ab_payload_append_bytes": ab_append_bytes,
        "ab_bytes_per_cell": round(ab_full_bytes / cells, 2),
        "sublayers_full_s": round(sub_full_s, 4),
        "sublayers_append_s": round(sub_append_s, 4),
        "sublayers_full_ratio": round(sub_full_s / full_s, 3),
        "sublayers_append_ratio": round(sub_append_s / append_s, 3),
        "sublayers_payload_full_bytes": sub_full_bytes,
        "sublayers_payload_append_bytes": sub_append_bytes,
        "sublayers_hidden_bytes": None if sub_memory is None else sub_memory["hidden_states"],
        "sublayers_cells_bytes": None if sub_memory is None else sub_memory["cells"],
        "generate_per_token_s": round(generate_s, 4),
        "model_step_s": round(model_step_s, 4),
        "generate_over_model_step": round(generate_s / model_step_s, 3),
        "peak_rss_mb": round(session_rss, 1),
        "peak_gpu_mb": None if peak_gpu is None else round(peak_gpu, 1),
        "gpu": torch.cuda.get_device_name() if sync else None,
        "dtype": str(adapter.dtype).removeprefix("torch."),
        "session_memory": memory,
        "peak_rss_with_naive_mb": round(total_rss, 1),
    }
    targets: list[tuple[str, bool, str]] = [
        ("append_s <= naive_full_s / 40", append_s <= naive_s / 40, f"{naive_s / append_s:.1f}x faster"),
        ("middle_edit_s <= 0.6 naive_full_s", middle_s <= 0.6 * naive_s, f"{middle_s / naive_s:.2f} of naive"),
        ("full_s <= 0.6 naive_full_s", full_s <= 0.6 * naive_s, f"{full_s / naive_s:.2f} of naive"),
        (
            "payload_append <= payload_full / 100",
            append_bytes <= full_bytes / 100,
            f"1/{full_bytes / append_bytes:.0f}",
        ),
        ("bytes_per_cell <= 64", full_bytes / cells <= 64, f"{full_bytes / cells:.1f} B"),
        ("ab_append_s <= 2.2 append_s", ab_append_s <= 2.2 * append_s, f"{ab_append_s / append_s:.2f}x"),
        ("ab_full_s <= 2.2 full_s", ab_full_s <= 2.2 * full_s, f"{ab_full_s / full_s:.2f}x"),
        *gpu_targets(args.shape, n, full_s, append_s, sync),
        (
            "middle_edit_first_visible_s <= 0.25 full_s",
            middle_first_visible_s <= 0.25 * full_s,
            f"{middle_first_visible_s / full_s:.2f} of full",
        ),
        ("full_s <= 1.6 head_gemm_s", full_s <= 1.6 * head_gemm_s, f"{full_s / head_gemm_s:.2f}x the GEMM alone"),
        *(
            []
            if peer_full_s is None
            else [("full_s <= 0.6 tuned-lens full", full_s <= 0.6 * peer_full_s, f"{full_s / peer_full_s:.2f}x")]
        ),
    ]
    print(f"LensSession benchmark: {args.shape} shape, random weights, {n} tokens, {rows} rows, top-{args.top_k}")
    print(f"{'measure':<32}{'value':>14}")
    timings = (
        "naive_full_s",
        "full_s",
        "forward_s",
        "head_gemm_s",
        "append_s",
        "append_after_shrink_s",
        "middle_edit_s",
        "middle_edit_first_visible_s",
        "middle_edit_visible_then_rest_s",
        "ab_full_s",
        "ab_append_s",
        "sublayers_full_s",
        "sublayers_append_s",
        "generate_per_token_s",
        "model_step_s",
    )
    for key in timings:
        print(f"{key:<32}{result[key]:>14.4f}")  # nan: skipped
    if peer_full_s is not None and peer_all_s is not None:
        print(f"{'tuned_lens_full_s':<32}{peer_full_s:>14.4f}  (its trajectory + entropy, plot_lens's default view)")
        print(f"{'tuned_lens_all_stats_s':<32}{peer_all_s:>14.4f}  (+ the other four statistics the widget shows)")
    sizes = ("payload_full_bytes", "payload_append_bytes", "bytes_per_cell", "ab_payload_full_bytes")
    shares = ("full_over_head_gemm", "statistics_share")
    for key in (*shares, *sizes, "ab_payload_append_bytes", "ab_bytes_per_cell", "peak_rss_mb"):
        print(f"{key:<32}{result[key]:>14}")
    if args.generate_steps > 0:
        ratio = result["generate_over_model_step"]
        note = "(a token and its column of every row, against the model's step alone)"
        print(f"{'generate_over_model_step':<32}{ratio:>14}  {note}")
    if sub_memory is not None:
        plain = plain_memory
        print(f"{'sublayers_full_ratio':<32}{result['sublayers_full_ratio']:>14}  (2L + 1 rows against L + 1)")
        print(f"{'sublayers_append_ratio':<32}{result['sublayers_append_ratio']:>14}")
        for part in ("hidden_states", "cells"):
            mine, theirs = sub_memory[part], plain[part]  # type: ignore[literal-required]
            name = f"sublayers {part} MB"
            print(f"{name:<32}{mine / 1e6:>14.1f}  (without: {theirs / 1e6:.1f}, {mine / theirs:.2f}x)")
        print(f"{'sublayers_payload_full_bytes':<32}{sub_full_bytes:>14}  (without: {full_bytes})")
    print()
    measured = [t for t in targets if "nan" not in t[2]]  # a target on a skipped measure is not a miss
    for name, ok, detail in measured:
        print(f"{'PASS' if ok else 'MISS'}  {name:<40}{detail}")
    result["targets_met"] = all(ok for _, ok, _ in measured)
    emit({key: None if isinstance(v, float) and math.isnan(v) else v for key, v in result.items()}, args.out)


def generation_times(
    model: torch.nn.Module, tokenizer: Any, base: str, steps: int, repeats: int, sync: bool
) -> tuple[float, float]:
    """Median seconds per generated token, greedy, from `base`: the widget's way (generate.Generation's
    choice from the session's last position, then an append with its column of lens work on every
    row) against the model's own decoding step alone (one forward with its cache, then argmax),
    repeat by repeat in turn. The prompt's own forward is not timed on either side."""
    session = LensSession(model, tokenizer, max_tokens=max(2048, len(tokenizer(base).input_ids) + steps + 8))
    ids = tokenizer(base).input_ids
    ours, theirs = [], []
    for _ in range(repeats):
        session.set_text(base)
        writing = Generation(Sampling.of(0.0, None), (), steps, "a", None, frozenset(), tokenizer, ids[-8:])
        start = time.perf_counter()
        for _ in range(steps):
            token, added = writing.next(session)
            session.append_tokens([token], added)
        if sync:
            torch.cuda.synchronize()
        ours.append((time.perf_counter() - start) / steps)
        with torch.inference_mode():
            device = next(model.parameters()).device
            out = model(input_ids=torch.tensor([ids], device=device), use_cache=True)
            cache = getattr(out, "cache", None) or out.past_key_values
            token = int(out.logits[0, -1].argmax())
            start = time.perf_counter()
            for _ in range(steps):
                out = model(input_ids=torch.tensor([[token]], device=device), cache=cache, use_cache=True)
                cache = getattr(out, "cache", None) or out.past_key_values
                token = int(out.logits[0, -1].argmax())
            if sync:
                torch.cuda.synchronize()
            theirs.append((time.perf_counter() - start) / steps)
    return statistics.median(ours), statistics.median(theirs)


GPU_TARGETS = {("pythia-1.4b", 1024): (0.030, 0.010), ("llama-3.1-8b", 1024): (0.120, 0.015)}
"""(full view, append) seconds on an H100 for a shape at a length (issue 16)."""


def gpu_targets(shape: str, tokens: int, full_s: float, append_s: float, gpu: bool) -> list[tuple[str, bool, str]]:
    if not gpu or (shape, tokens) not in GPU_TARGETS:
        return []
    full, append = GPU_TARGETS[shape, tokens]
    return [
        (f"full_s <= {full * 1000:.0f} ms (H100)", full_s <= full, f"{full_s * 1000:.1f} ms"),
        (f"append_s <= {append * 1000:.0f} ms (H100)", append_s <= append, f"{append_s * 1000:.1f} ms"),
    ]


def emit(result: dict[str, Any], out: Path | None) -> None:
    """The result as one JSON line, printed and, when asked, written to `out`."""
    line = json.dumps(result)
    print(line)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(line + "\n")


if __name__ == "__main__":
    main()
