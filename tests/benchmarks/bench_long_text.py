"""Benchmark a keystroke in a huge text: LensSession.set_text on 1.1M and 5M characters.

Usage: python tests/benchmarks/bench_long_text.py [--out results.json]

A random-weight GPT-NeoX (tests/tiny_models.random_neox: 6 layers, max_tokens 2048). For each size:
the paste (the first set_text), a keystroke at the end (beyond the analysed tokens: nothing to
recompute) and a keystroke inside the analysed region (recomputes from there). `full_tokenize_s` is
the reference measured in the same run: tokenizing the whole text once, which is what every keystroke
cost before the session learnt to tokenize only what max_tokens needs.

Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tiny_models import random_neox

from lens_widget.payload import payload_of
from lens_widget.session import LensSession

WORDS = (
    "the model reads each token and the lens shows what every layer would predict next while the researcher "
    "types a sentence about Paris France Berlin Germany numbers 3.14 and code def main 🙂\n"
).split(" ")


def text_of(chars: int) -> str:
    words, length, i = [], 0, 0
    while length < chars:
        word = WORDS[i % len(WORDS)] + " "
        words.append(word)
        length += len(word)
        i += 1
    return "".join(words)[:chars]


def seconds(step: Callable[[str], object], text: str) -> float:
    start = time.perf_counter()
    step(text)
    return time.perf_counter() - start


def measure(model: object, tokenizer: object, chars: int) -> dict[str, float | int | str]:
    text = text_of(chars)
    full = seconds(lambda t: tokenizer(t, return_offsets_mapping=True), text)  # type: ignore[operator]
    session = LensSession(model, tokenizer)  # type: ignore[arg-type]
    paste = seconds(session.set_text, text)
    at_end, inside = [], []
    for key in "abc":
        text += key
        at_end.append(seconds(session.set_text, text))
    for key in "xyz":
        text = text[:1000] + key + text[1000:]
        inside.append(seconds(session.set_text, text))
    return {
        "chars": chars,
        "full_tokenize_s": round(full, 4),
        "paste_s": round(paste, 4),
        "keystroke_end_s": round(statistics.median(at_end), 4),
        "keystroke_inside_s": round(statistics.median(inside), 4),
        "notice": payload_of(session.full_update())["header"]["notice"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(2)
    model, tokenizer = random_neox()
    rows = [measure(model, tokenizer, chars) for chars in (1_100_000, 5_000_000)]
    print("Keystroke in a huge text (random GPT-NeoX, 6 layers, max_tokens 2048, CPU)")
    print(f"{'chars':>10} {'full tokenize':>14} {'paste':>8} {'key at end':>11} {'key inside':>11}")
    for r in rows:
        print(
            f"{r['chars']:>10,} {r['full_tokenize_s']:>12.3f} s {r['paste_s']:>6.3f} s "
            f"{r['keystroke_end_s']:>9.3f} s {r['keystroke_inside_s']:>9.3f} s"
        )
    print(f"notice: {rows[-1]['notice']}")
    result = {"runs": rows}
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
