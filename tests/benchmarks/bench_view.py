"""Benchmark the view in headless chromium: redraw time, and keystroke-to-repaint through a kernel.

Usage: python tests/benchmarks/bench_view.py [--keystrokes 40] [--out results.json]

1. Redraw: the built ESM in a bare page with a fake anywidget model holding a full payload of
   13 × 256 and 48 × 1024 cells (synthetic statistics; drawing does not care where they came from).
   Each redraw is triggered through the widget's own statistic listener with animation frames run
   synchronously, and timed until a pixel read-back forces the canvas to finish.
2. Keystroke → repaint: JupyterLab on 127.0.0.1 with a LensWidget on a 12-layer model (Pythia-160m's
   shape, random weights) at 256 tokens. Each key is pressed for real; the latency runs from its
   keydown to the animation frame in which the widget has redrawn with the kernel's answer.

Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import nbformat
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
from browser_support import (  # noqa: E402
    CHROMIUM,
    CHROMIUM_ARGS,
    HARNESS,
    jupyter_lab,
    run_first_cell,
    serve_folder,
    trait_state,
)

from lens_widget.page import jsonable  # noqa: E402
from lens_widget.payload import GridBlock, encode_update, encode_vocabulary  # noqa: E402
from lens_widget.statistics import STATISTICS  # noqa: E402

BENCH_PAGE = HARNESS.replace(
    'import widget from "./widget.js";',
    'window.requestAnimationFrame = (cb) => { cb(performance.now()); return 0; };\nimport widget from "./widget.js";',
).replace(
    "window.fakeModel = model;",
    """window.fakeModel = model;
window.redraws = (n) => {
  const times = [];
  const canvas = document.querySelector(".lens-widget .lw-canvas");
  for (let i = 0; i < n; i++) {
    state.statistic = i % 2 ? "rank" : "entropy";
    const t0 = performance.now();
    for (const fn of listeners.get("change:statistic")) fn();
    canvas.getContext("2d").getImageData(0, 0, 1, 1);
    times.push(performance.now() - t0);
  }
  return times;
};""",
)


def synthetic_state(rows: int, cols: int, vocab: int = 50304, k: int = 10) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    stats = rng.uniform(0, 8, (len(STATISTICS), rows, cols)).astype(np.float32)
    probs = np.sort(rng.dirichlet(np.ones(k), (rows, cols)), axis=-1)[..., ::-1].astype(np.float32)
    grid = GridBlock("bench", stats, rng.integers(0, vocab, (rows, cols, k)), probs)
    layer_rows = [*range(rows - 1), rows - 1]
    payload = encode_update(
        kind="full",
        rows=layer_rows,
        row_labels=[*map(str, range(rows - 1)), "output"],
        num_layers=rows - 1,
        col_start=0,
        n_tokens=cols,
        total_tokens=cols,
        top_k=k,
        lens="logit",
        vocab_size=vocab,
        grids=[grid],
        token_ids=rng.integers(0, vocab, cols),
        token_spans=np.stack([np.arange(cols), np.arange(cols) + 1], 1),
    )
    words = ["the", " capital", " of", " France", " is", " Paris", ",", " and"]
    vocabulary = encode_vocabulary([words[i % len(words)] + str(i) for i in range(vocab)])
    return trait_state("x" * cols, payload, vocabulary)


def measure_redraws(browser: Any, rows: int, cols: int, repeats: int = 30) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name in ("widget.js", "widget.css"):
            shutil.copy(ROOT / "lens_widget" / "static" / name, folder / name)
        (folder / "state.json").write_text(json.dumps(jsonable(synthetic_state(rows, cols))))
        (folder / "index.html").write_text(BENCH_PAGE)
        with serve_folder(folder) as base:
            page = browser.new_page(viewport={"width": 1280, "height": 1400})
            page.goto(f"{base}/index.html")
            # Interval polling: this page runs animation frames synchronously, which Playwright's
            # default frame-based polling would recurse into.
            page.wait_for_function(
                "() => Number(document.querySelector('.lens-widget')?.dataset.nTokens) > 0", polling=50
            )
            assert int(page.locator(".lens-widget").get_attribute("data-rows") or 0) == rows
            page.evaluate("(n) => window.redraws(n)", 5)  # warm up
            times = page.evaluate("(n) => window.redraws(n)", repeats)
            page.close()
    return float(statistics.median(times))


KEYSTROKE_CELL = """
import sys
sys.path.insert(0, {tests!r})
import torch
from transformers import AutoConfig, AutoModelForCausalLM
from tiny_models import tiny_tokenizer
from lens_widget import LensWidget
torch.manual_seed(0)
tokenizer = tiny_tokenizer(1000)
config = AutoConfig.for_model("gpt_neox", vocab_size=50304, hidden_size=768, num_hidden_layers=12,
    num_attention_heads=12, intermediate_size=3072, rotary_pct=0.25, max_position_embeddings=2048,
    tie_word_embeddings=False)
model = AutoModelForCausalLM.from_config(config).eval()
words = "the model reads each token and the lens shows what every layer would predict next".split()
text = ""
while len(tokenizer(text).input_ids) < 256:
    text += " " + words[len(text) % len(words)]
widget = LensWidget(model, tokenizer, text=text)
widget
"""

KEY_PROBE = """() => {
  const root = document.querySelector('.lens-widget');
  window.latencies = [];
  let pending = null;
  root.querySelector('textarea').addEventListener('keydown', () => {
    pending = { t0: performance.now(), seq: root.dataset.seq };
    const poll = () => {
      if (pending && root.dataset.seq !== pending.seq && root.dataset.busy === 'false') {
        window.latencies.push(performance.now() - pending.t0);
        pending = null;
      } else if (pending) requestAnimationFrame(poll);
    };
    requestAnimationFrame(poll);
  });
}"""


def measure_keystrokes(browser: Any, keystrokes: int) -> list[float]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell(KEYSTROKE_CELL.format(tests=str(ROOT / "tests")))]
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, root / "bench.ipynb")
        with jupyter_lab(root, "bench.ipynb") as url:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(url)
            run_first_cell(page)
            page.wait_for_function(
                "() => Number(document.querySelector('.lens-widget')?.dataset.nTokens) >= 256", timeout=300_000
            )
            page.evaluate(KEY_PROBE)
            page.locator(".lens-widget textarea").click()
            page.keyboard.press("Control+End")
            for i in range(keystrokes):
                page.keyboard.press("abcdefgh "[i % 9] if i % 9 else "Space")
                page.wait_for_function(f"() => window.latencies.length > {i}", timeout=30_000)
                time.sleep(0.15)
            latencies = page.evaluate("() => window.latencies")
            page.close()
    return [float(x) for x in latencies]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keystrokes", type=int, default=40)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    if not (ROOT / "lens_widget" / "static" / "widget.js").exists():
        raise SystemExit("build the view first: npm run build")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        small = measure_redraws(browser, 13, 256)
        large = measure_redraws(browser, 48, 1024)
        latencies = measure_keystrokes(browser, args.keystrokes)
        browser.close()
    result = {
        "redraw_13x256_ms": round(small, 2),
        "redraw_48x1024_ms": round(large, 2),
        "keystroke_p50_ms": round(float(np.percentile(latencies, 50)), 1),
        "keystroke_p95_ms": round(float(np.percentile(latencies, 95)), 1),
        "keystrokes": len(latencies),
    }
    checks = [
        ("redraw 13x256 <= 16 ms", small <= 16),
        ("redraw 48x1024 <= 50 ms", large <= 50),
        ("keystroke p50 <= 150 ms", result["keystroke_p50_ms"] <= 150),
    ]
    print("View benchmark (headless chromium, software rendering)")
    for key, value in result.items():
        print(f"{key:<22}{value:>10}")
    for name, ok in checks:
        print(f"{'PASS' if ok else 'MISS'}  {name}")
    result["targets_met"] = all(ok for _, ok in checks)
    line = json.dumps(result)
    print(line)
    if args.out:
        args.out.write_text(line + "\n")


if __name__ == "__main__":
    main()
