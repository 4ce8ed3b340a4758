"""Benchmark a 1,024-token widget in VS Code's widget manager: what each update weighs on the way and
how long it takes to reach the screen.

Usage: python tests/benchmarks/bench_vscode.py [--tokens 1024] [--layers 12] [--hidden 128] [--repeats 5]
       [--no-direct] [--no-unaware] [--out results.json]

The page is tests/vscode_host/ (the stand-in for VS Code's notebook webview that tests/test_vscode.py
drives): @vscode/jupyter-ipywidgets8's WidgetManager on a @jupyterlab/services kernel connection to a
local Jupyter server, anywidget from the kernel environment's nbextensions folder. Every kernel message
crosses a simulated extension-host hop, as VS Code carries it: one JSON string with the binary buffers
as number arrays, parsed back into buffers before the manager gets it. For each message the page
records the websocket frame's bytes (the kernel's JSON parts and raw buffers) and that string's
characters, per buffer too, so the tables say which traits and buffers weigh most.

The model is a random-weight GPT-NeoX with 12 layers (13 rows, Pythia-160m's depth) and a small width,
so that the kernel's compute stays small beside the transport being measured; payload sizes depend on
rows, columns and top-k, not on the width. Cases, each repeated:
1. first render: the cell that shows the widget on a 1,024-token text ran while the output was out of
   view; the time runs from scrolling to it until the heatmap is drawn.
2. full update from Python: `widget.text = <another 1,024-token text>`; the time runs from the kernel's
   clock before the assignment to the first animation frame whose canvas differs (same machine, same
   clock), after the message carrying the cells arrived.
3. typed at the end / 4. typed in the middle: one key pressed in the text box of a 1,024-token text;
   from keydown to the first changed frame after the kernel's first answer (the delta carrying the
   edit's columns) arrived, and to the arrival of the last delta (a middle edit's later columns, off
   screen, change no pixels). Whatever the kernel sends until it has been quiet for 1.5 s counts
   with the edit: the snapshot it saved 0.5 s after typing paused crossed the hop too, though VS
   Code never replays it (vscode-jupyter #11117), until the view told it where it runs.
The cases run three times: in the page as it is; with VS Code's theme markers taken off the page, so
that the view does not tell the kernel it is in VS Code (the kernel then sends what it sent before it
knew: binary deltas, and the snapshot after each pause), for before and after in one run
(--no-unaware skips it); and without the hop, for the time the hop costs (--no-direct skips it).
Prints tables and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
from browser_support import (  # noqa: E402
    CHROMIUM,
    CHROMIUM_ARGS,
    bare_jupyter_server,
    build_vscode_host,
    host_run,
    open_vscode_host,
)

SETUP = """
import json, sys, time
sys.path.insert(0, {tests!r})
import torch
from tiny_models import random_neox
from lens_widget import LensWidget
torch.set_num_threads(2)
model, tokenizer = random_neox(layers={layers}, hidden={hidden})
WORDS = ("the model reads each token and the lens shows what every layer would predict next while the "
         "researcher types a sentence about Paris France Berlin Germany numbers 3.14 and code def main").split()

def text_of(n, shift):
    words = WORDS[shift:] + WORDS[:shift]
    while len(tokenizer(" ".join(words)).input_ids) <= n:
        words += words
    text = " ".join(words)
    return text[: tokenizer(text, return_offsets_mapping=True)["offset_mapping"][n - 1][1]]

TEXTS = [text_of({tokens}, 0), text_of({tokens}, 5)]
widget = LensWidget(model, tokenizer, text=TEXTS[0])
widget
"""
SET_TEXT = """t0 = time.time() * 1e3
widget.text = TEXTS[{index}]
t1 = time.time() * 1e3
print(json.dumps([t0, t1, len(widget.session.tokens.ids)]))"""
PLACE_CARET = """(where) => {
  const box = document.querySelector('.lens-widget textarea');
  box.focus();
  const at = where === 'end' ? box.value.length : Math.floor(box.value.length / 2);
  box.setSelectionRange(at, at);
}"""
COMM = ("comm_open", "comm_msg")


def mark(page: Any) -> int:
    """Start a case: watch the canvas from now on (only while a case runs: it costs a core's share);
    returns where the case's messages start."""
    page.evaluate("() => { window.host.pictureChanges.length = 0; window.host.watchPictures(true); }")
    return int(page.evaluate("() => window.host.messages.length"))


def messages_since(page: Any, start: int) -> list[dict[str, Any]]:
    """End a case: stop watching; its messages."""
    page.evaluate("() => window.host.watchPictures(false)")
    return list(page.evaluate("(start) => window.host.messages.slice(start)", start))


QUIET_MS = 1500
"""An update is over when the view is idle and no kernel message came for this long: longer than the
kernel's wait before it saves the snapshot (SNAPSHOT_DELAY, 0.5 s), which a view that says it is in VS
Code no longer gets while typing."""


def wait_until_quiet(page: Any, start: int, timeout: float = 120.0) -> None:
    """Until the view is idle and the kernel has sent nothing for QUIET_MS, after at least one message."""
    deadline = time.monotonic() + timeout
    quiet = f"""(start) => {{
      const incoming = window.host.messages.slice(start).filter((m) => m.direction === 'in');
      const idle = document.querySelector('.lens-widget')?.dataset.busy === 'false';
      return idle && incoming.length > 0 && window.host.now() - incoming[incoming.length - 1].t > {QUIET_MS};
    }}"""
    while not page.evaluate(quiet, start):
        if time.monotonic() > deadline:
            raise TimeoutError("the kernel's update never ended")
        page.wait_for_timeout(50)


def drawn_after(page: Any, t: float) -> float | None:
    """The first frame at or after `t` (epoch ms) whose canvas had changed."""
    changes = [c for c in page.evaluate("() => window.host.pictureChanges") if c >= t]
    return min(changes) if changes else None


def account(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """Totals of the comm messages one update sent each way, and what they held: per kind of message
    (method and traits, or custom type) and per buffer."""
    incoming = [m for m in messages if m["direction"] == "in" and m["msgType"] in COMM]
    outgoing = [m for m in messages if m["direction"] == "out" and m["msgType"] in COMM]
    kinds: dict[str, dict[str, int]] = {}
    parts: dict[str, dict[str, int]] = {}
    for m in incoming + outgoing:
        arrow = "->" if m["direction"] == "in" else "<-"
        kind = kinds.setdefault(f"{arrow} {m['what']}", {"n": 0, "bytes": 0, "chars": 0})
        kind["n"] += 1
        kind["bytes"] += m["frameBytes"]
        kind["chars"] += m["chars"]
        json_part = parts.setdefault(f"{arrow} {m['what']}: JSON", {"bytes": 0, "chars": 0})
        json_part["bytes"] += m["frameBytes"] - sum(b["bytes"] for b in m["buffers"])
        json_part["chars"] += m["chars"] - sum(b["chars"] for b in m["buffers"])
        for b in m["buffers"]:
            part = parts.setdefault(f"{arrow} {b['name']}", {"bytes": 0, "chars": 0})
            part["bytes"] += b["bytes"]
            part["chars"] += b["chars"]
    return {
        "messages_in": len(incoming),
        "kernel_bytes": sum(m["frameBytes"] for m in incoming),
        "vscode_chars": sum(m["chars"] for m in incoming),
        "messages_out": len(outgoing),
        "view_bytes": sum(m["frameBytes"] for m in outgoing),
        "view_chars": sum(m["chars"] for m in outgoing),
        "hop_ms": round(sum(m["hopMs"] for m in messages), 1),
        "kinds": kinds,
        "parts": parts,
    }


def grid_arrivals(messages: list[dict[str, Any]]) -> list[float]:
    """When each incoming message carrying cells (a delta, binary or base64, or the snapshot) reached
    the page."""
    carries = [m["what"] == "custom update" or "snapshot" in m["what"] or m["buffers"] for m in messages]
    return [
        m["t"] for m, c in zip(messages, carries, strict=True) if m["direction"] == "in" and m["msgType"] in COMM and c
    ]


def first_render(page: Any, args: argparse.Namespace) -> dict[str, Any]:
    start = mark(page)
    host_run(page, SETUP.format(tests=str(ROOT / "tests"), layers=args.layers, hidden=args.hidden, tokens=args.tokens))
    t0 = page.evaluate("() => window.host.now()")
    page.locator(".vsc-output").first.scroll_into_view_if_needed()
    page.wait_for_function("() => Number(document.querySelector('.lens-widget')?.dataset.nTokens) > 0", timeout=120_000)
    page.locator(".lens-widget").scroll_into_view_if_needed()
    page.wait_for_timeout(500)
    messages = messages_since(page, start)
    drawn = drawn_after(page, t0)
    result = account(messages)
    result["answer_ms"] = None if drawn is None else round(drawn - t0, 1)
    return result


def full_update(page: Any, index: int) -> dict[str, Any]:
    start = mark(page)
    t0, t1, n_tokens = json.loads(host_run(page, SET_TEXT.format(index=index)))
    wait_until_quiet(page, start)
    messages = messages_since(page, start)
    arrived = grid_arrivals(messages)
    drawn = drawn_after(page, arrived[0]) if arrived else None
    result = account(messages)
    answer = None if drawn is None else round(drawn - t0, 1)
    after = None if drawn is None else round(drawn - t1, 1)
    result.update(n_tokens=n_tokens, kernel_ms=round(t1 - t0, 1), answer_ms=answer, after_kernel_ms=after)
    return result


def typed(page: Any, where: str, key: str) -> dict[str, Any]:
    page.evaluate(PLACE_CARET, where)
    page.wait_for_timeout(200)
    start = mark(page)
    page.keyboard.press(key)
    pressed = page.evaluate("() => window.host.lastKeydown")
    wait_until_quiet(page, start)
    messages = messages_since(page, start)
    arrived = [t for t in grid_arrivals(messages) if t >= pressed]
    deltas = [m["t"] for m in messages if m["what"] == "custom update" and m["t"] >= pressed]
    first = drawn_after(page, arrived[0]) if arrived else None
    result = account(messages)
    result.update(
        answer_ms=None if first is None else round(first - pressed, 1),
        last_delta_ms=round(deltas[-1] - pressed, 1) if deltas else None,
        deltas=len(deltas),
    )
    return result


Runs = dict[str, list[dict[str, Any]]]


def run_cases(browser: Any, server: tuple[str, str], args: argparse.Namespace, hop: bool, vscode: bool = True) -> Runs:
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    refused = open_vscode_host(page, server, hop=hop, vscode=vscode)
    cases: Runs = {"first render": [first_render(page, args)]}
    cases["full update from Python"] = [full_update(page, (i + 1) % 2) for i in range(args.repeats)]
    cases["typed at the end"] = [typed(page, "end", "e") for _ in range(args.repeats)]
    cases["typed in the middle"] = [typed(page, "middle", "e") for _ in range(args.repeats)]
    page.evaluate("() => window.host.shutdown()")  # the next run's kernel has the machine to itself
    page.close()
    if errors or refused:
        raise SystemExit(f"the page failed: {errors} {refused}")
    return cases


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over the repeats; the breakdown is the median run's (by characters carried)."""
    middle = sorted(runs, key=lambda r: r["vscode_chars"])[len(runs) // 2]
    out: dict[str, Any] = {"n": len(runs)}
    for key in ("messages_in", "kernel_bytes", "vscode_chars", "messages_out", "view_bytes", "view_chars"):
        out[key] = round(statistics.median(r[key] for r in runs))
    for key in ("answer_ms", "after_kernel_ms", "last_delta_ms", "kernel_ms", "deltas", "n_tokens", "hop_ms"):
        values = [r[key] for r in runs if r.get(key) is not None]
        if values:
            out[key] = round(statistics.median(values), 1)
    out["ratio"] = round(out["vscode_chars"] / out["kernel_bytes"], 2) if out["kernel_bytes"] else None
    out["kinds"] = middle["kinds"]
    out["parts"] = dict(sorted(middle["parts"].items(), key=lambda kv: (-kv[1]["chars"], -kv[1]["bytes"])))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=1024, help="tokens in the text")
    parser.add_argument("--layers", type=int, default=12, help="the model's layers (rows: one more)")
    parser.add_argument("--hidden", type=int, default=128, help="the model's width")
    parser.add_argument("--repeats", type=int, default=5, help="runs of each case")
    parser.add_argument("--no-direct", action="store_true", help="skip the run without the hop")
    parser.add_argument(
        "--no-unaware", action="store_true", help="skip the run where the view does not know it is in VS Code"
    )
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON line here")
    parser.add_argument("--details", type=Path, default=None, help="write every run's numbers here")
    args = parser.parse_args()
    if CHROMIUM is None:
        raise SystemExit("Debian's chromium is needed: apt-get install chromium")
    if not (ROOT / "lens_widget" / "static" / "widget.js").exists():
        raise SystemExit("build the view first: npm run build")
    from playwright.sync_api import sync_playwright

    result: dict[str, Any] = {"tokens": args.tokens, "layers": args.layers, "hidden": args.hidden}
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        folder = build_vscode_host(Path(tmp) / "host")
        (Path(tmp) / "root").mkdir()
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        with bare_jupyter_server(Path(tmp) / "root", folder) as server:
            hop = run_cases(browser, server, args, hop=True)
            unaware = None if args.no_unaware else run_cases(browser, server, args, hop=True, vscode=False)
            direct = None if args.no_direct else run_cases(browser, server, args, hop=False)
        browser.close()
    if args.details:
        args.details.write_text(json.dumps({"hop": hop, "unaware": unaware, "direct": direct}))
    result["cases"] = {name: summarise(runs) for name, runs in hop.items()}
    if unaware is not None:
        result["unaware"] = {name: summarise(runs) for name, runs in unaware.items()}
    if direct is not None:
        for name, runs in direct.items():
            plain = summarise(runs)
            for key in ("answer_ms", "after_kernel_ms", "last_delta_ms", "kernel_ms"):
                if key in plain:
                    result["cases"][name][f"direct_{key}"] = plain[key]
    print_tables(result)
    line = json.dumps(result)
    print(line)
    if args.out:
        args.out.write_text(line + "\n")


def print_tables(result: dict[str, Any]) -> None:
    cases = result["cases"]
    print(
        f"VS Code's widget manager (@vscode/jupyter-ipywidgets8), {result['tokens']} tokens, "
        f"{result['layers'] + 1} rows; medians"
    )
    tables = [("the view knows it is in VS Code (its ping says so)", cases)]
    if "unaware" in result:
        tables.append(
            ("the view does not know (VS Code's theme markers taken off: as before it looked)", result["unaware"])
        )
    for title, rows in tables:
        print(f"\nsizes, {title}: kernel -> view (bytes as the kernel sent them, characters through the hop),")
        print("view -> kernel")
        head = ["msgs", "bytes", "chars", "ratio", "hop ms", "drawn ms", "msgs back", "bytes back", "chars back"]
        print(f"{'case':<26}" + "".join(f"{h:>11}" for h in head))
        for name, row in rows.items():
            cells = [row["messages_in"], row["kernel_bytes"], row["vscode_chars"], row["ratio"], row.get("hop_ms")]
            cells += [row.get("answer_ms"), row["messages_out"], row["view_bytes"], row["view_chars"]]
            print(f"{name:<26}" + "".join(f"{'' if c is None else c:>11}" for c in cells))
    print("\ntimes, ms, with the hop / without it: to the first frame showing the answer; for text set from")
    print("Python also the kernel's assignment and the rest after it; for typing also the last delta's arrival")
    keys = [("answer_ms", "drawn"), ("kernel_ms", "kernel"), ("after_kernel_ms", "after kernel")]
    keys += [("last_delta_ms", "last delta")]
    print(f"{'case':<26}" + "".join(f"{label:>20}" for _, label in keys))
    for name, row in cases.items():
        cells = []
        for key, _ in keys:
            hop, direct = row.get(key), row.get(f"direct_{key}")
            cells.append("" if hop is None else f"{hop} / {'' if direct is None else direct}")
        print(f"{name:<26}" + "".join(f"{c:>20}" for c in cells))
    for name, row in cases.items():
        print(f"\n{name}: what the median run carried (bytes from the kernel -> characters through the hop)")
        for part, size in list(row["parts"].items())[:8]:
            print(f"  {part:<58}{size['bytes']:>10} B{size['chars']:>11} ch")


if __name__ == "__main__":
    main()
