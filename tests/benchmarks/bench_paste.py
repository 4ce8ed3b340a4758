"""Benchmark a long paste into the widget's text box against a bare <textarea>, in JupyterLab.

Usage: python tests/benchmarks/bench_paste.py [--chars 20000] [--repeats 3] [--window 3000]
       [--model demo|long] [--esm path/to/widget.js --esm other/widget.js] [--out results.json]

JupyterLab on 127.0.0.1 runs a copy of examples/quickstart.ipynb (Run All). A bare <textarea> is added
to the same page, under the widget, so both boxes pay what JupyterLab's page costs. Then, for each
repeat and each box (in alternating order): the box's text is reset (the widget's from Python), the
clipboard holds `--chars` characters of the demo's task lines, and Ctrl+V is pressed in the box, the
same keydown → paste → input path as a user's paste. For `--window` ms after the key:

- busy: the sum of the renderer main thread's tasks (CDP tracing, RunTask): everything the page did,
  JupyterLab's reaction to the kernel's messages, layout, paint and canvas drawing included;
- long tasks: the total and the longest of the tasks over 50 ms (PerformanceObserver "longtask"),
  the freeze a user feels;
- for the widget, when its picture first showed the pasted text (data-n-tokens changed) and when it
  was complete (no pending column, nothing in flight);
- the widget's own JavaScript, from a CPU profile of the same window, split by the outermost widget
  function on each sampled stack: the paste (the text box's input handler: the caret, the edit
  message), the kernel's answer (store.ts, receiver.ts, payload.ts: decoding and applying the
  update, the `text` trait's handler) and the render (the animation frame's redraw).

With `--model long` the paste goes to a widget on a random GPT-NeoX with a 2,048-token context
(tests/tiny_models.py) appended to the notebook, so that the pasted text fills 2,048 columns rather
than the demo model's 512. With several `--esm` bundles each is measured on its own page (a first
cell points LensWidget at it), so that the views of a change can be compared in one run.

Prints a table and one JSON line. The machine's load (2 cores shared by chromium, the Jupyter server
and the kernel) moves busy times by ±15 % from run to run; compare numbers of one run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
from browser_support import CHROMIUM, CHROMIUM_ARGS, jupyter_lab, open_notebook, run_all  # noqa: E402

from lens_widget import DEMO_TEXT  # noqa: E402

TRACE_CATEGORIES = "toplevel,devtools.timeline,disabled-by-default-devtools.timeline,v8.execute"
PROFILE_INTERVAL_US = 250

LONG_CELL = """
import sys
sys.path.insert(0, {tests!r})
from tiny_models import random_neox
from lens_widget import LensWidget
long_widget = LensWidget(*random_neox(layers=6, hidden=64), text=widget.text)
long_widget
"""

ESM_CELL = """
# bench_paste.py: this page's view bundle
import lens_widget.widget as _widget
_widget.LensWidget._esm = open({esm!r}).read()
"""

# Observers the page keeps for one paste: long tasks; the widget's data attributes (when its picture
# first shows a different number of tokens, and when it is complete and idle); and counts that do not
# depend on the machine's load: the widget's canvas paints (each asks its canvas for a context once),
# the DOM changes under the widget, and the comm messages to and from the kernel.
PROBE = """([index, isWidget]) => {
  const probe = (window.pasteProbe = { longtasks: [], t0: null, first: null, complete: null,
    paints: { heatmap: 0, legend: 0, panel: 0 }, mutations: 0, sent: 0, received: 0 });
  const observer = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) probe.longtasks.push([e.startTime, e.duration]);
  });
  observer.observe({ type: "longtask" });
  const cleanups = [() => observer.disconnect()];
  probe.stop = () => cleanups.forEach((fn) => fn());
  if (!isWidget) return;
  const root = document.querySelectorAll(".lens-widget")[index];
  const before = root.dataset.nTokens;
  const check = () => {
    if (probe.t0 === null) return;
    const now = performance.now();
    if (probe.first === null && root.dataset.nTokens !== before) probe.first = now;
    const idle = root.dataset.busy === "false" && root.dataset.pending === "0";
    if (probe.first !== null && probe.complete === null && idle) probe.complete = now;
  };
  new MutationObserver(check).observe(root, { attributes: true });
  const changes = new MutationObserver((records) => { if (probe.t0 !== null) probe.mutations += records.length; });
  changes.observe(root, { subtree: true, attributes: true, childList: true, characterData: true });
  cleanups.push(() => changes.disconnect());
  const canvases = { heatmap: root.querySelector(".lw-canvas"), legend: root.querySelector(".lw-legend"),
    panel: root.querySelector(".lw-panel-canvas") };
  const getContext = HTMLCanvasElement.prototype.getContext;
  HTMLCanvasElement.prototype.getContext = function (...args) {
    for (const [name, canvas] of Object.entries(canvases)) {
      if (this === canvas && probe.t0 !== null) probe.paints[name]++;
    }
    return getContext.apply(this, args);
  };
  cleanups.push(() => (HTMLCanvasElement.prototype.getContext = getContext));
  const kernel = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
  const onMessage = (_, { msg, direction }) => {
    if (probe.t0 === null || msg.header.msg_type !== "comm_msg") return;
    if (direction === "send") probe.sent++;
    else probe.received++;
  };
  kernel.anyMessage.connect(onMessage);
  cleanups.push(() => kernel.anyMessage.disconnect(onMessage));
}"""

# Runs code in the notebook's kernel without a cell (a cell would move the notebook's scroll position).
EXECUTE = """async (code) => {
  const kernel = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
  await kernel.requestExecute({ code, store_history: false }).done;
}"""

BARE_BOX = """(index) => {
  const widget = document.querySelectorAll(".lens-widget")[index];
  const box = document.createElement("textarea");
  box.className = "bench-bare";
  box.rows = 3;
  box.spellcheck = false;
  box.style.width = "100%";
  box.addEventListener("keydown", (e) => e.stopPropagation());  // as the widget's: keys are the box's
  widget.parentElement.appendChild(box);
}"""


def paste_text(chars: int) -> str:
    """`chars` characters of the demo's task lines: what a user might paste (lines, digits, symbols)."""
    return (DEMO_TEXT * (chars // len(DEMO_TEXT) + 1))[:chars]


def notebook(esm: Path | None, model: str) -> dict[str, Any]:
    nb = json.loads((ROOT / "examples" / "quickstart.ipynb").read_text())

    def cell(source: str) -> dict[str, Any]:
        return {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None, "source": source}

    if esm is not None:
        nb["cells"].insert(0, cell(ESM_CELL.format(esm=str(esm))))
    if model == "long":
        nb["cells"].append(cell(LONG_CELL.format(tests=str(ROOT / "tests"))))
    return nb


def main_thread_busy(events: list[dict[str, Any]], window_ms: float) -> tuple[float, float]:
    """(sum, longest) of the renderer main thread's top-level tasks, ms, from the task that handled
    the paste's keydown for `window_ms` (DevTools' own tasks before it, such as starting the profiler,
    are left out)."""
    names = {(e["pid"], e["tid"]): e["args"]["name"] for e in events if e.get("name") == "thread_name"}
    mains = {k for k, v in names.items() if v == "CrRendererMain"}
    ours = [e for e in events if e.get("ph") == "X" and (e["pid"], e["tid"]) in mains]
    keydowns = [
        e["ts"] for e in ours if e.get("name") == "EventDispatch" and e["args"]["data"].get("type") == "keydown"
    ]
    if not keydowns:
        raise RuntimeError("no keydown in the trace: the paste was not traced")
    tasks = sorted((e["ts"], e["ts"] + e.get("dur", 0)) for e in ours if e.get("name") == "RunTask")
    start = max(t for t, end in tasks if t <= min(keydowns))  # the task the keydown ran in
    stop = start + window_ms * 1000
    merged: list[list[float]] = []
    for begin, end in tasks:
        if begin < start or begin >= stop:
            continue
        if merged and begin <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([begin, end])
    lengths = [(end - begin) / 1000 for begin, end in merged]
    return sum(lengths), max(lengths, default=0.0)


# The outermost widget function on a sampled stack says what the widget was doing (names of js/*.ts,
# kept by esbuild, which does not minify).
RENDER = {"redraw"}
ANSWER = {"onMessage", "delta", "snapshot", "vocabulary", "adoptKernelText", "changed", "listener"}
PASTE = {"input", "typed", "flush", "keepWidgetKeys"}


def widget_js(profile: dict[str, Any]) -> dict[str, float]:
    """ms of the widget's JavaScript in a CPU profile, by what it was doing."""
    nodes = {n["id"]: n for n in profile["nodes"]}
    parent = {child: n["id"] for n in profile["nodes"] for child in n.get("children", [])}
    ours = ("redraw", "applyUpdate")  # the bundle's URL (a blob: URL in JupyterLab) is where these are
    urls = {n["callFrame"]["url"] for n in nodes.values() if n["callFrame"]["functionName"] in ours}
    out = {"paste": 0.0, "answer": 0.0, "render": 0.0, "other": 0.0}
    samples, deltas = profile["samples"], profile["timeDeltas"]
    for i, sample in enumerate(samples):
        dt = (deltas[i + 1] if i + 1 < len(deltas) else 0) / 1000
        stack = []
        node: int | None = sample
        while node is not None:
            stack.append(nodes[node]["callFrame"])
            node = parent.get(node)
        ours = [f["functionName"] for f in stack if f["url"] in urls]
        if not ours:
            continue
        names = set(ours)
        kind = "render" if names & RENDER else "answer" if names & ANSWER else "paste" if names & PASTE else "other"
        out[kind] += dt
    return out


class Recorder:
    """A CDP session's trace and CPU profile of one window."""

    def __init__(self, page: Any, cdp: Any) -> None:
        self.page, self.cdp = page, cdp
        self.events: list[dict[str, Any]] = []
        self.complete = False
        cdp.on("Tracing.dataCollected", lambda e: self.events.extend(e["value"]))
        cdp.on("Tracing.tracingComplete", lambda e: setattr(self, "complete", True))
        cdp.send("Profiler.enable")
        cdp.send("Profiler.setSamplingInterval", {"interval": PROFILE_INTERVAL_US})

    def start(self) -> None:
        self.events, self.complete = [], False
        self.cdp.send("Tracing.start", {"categories": TRACE_CATEGORIES, "transferMode": "ReportEvents"})
        self.cdp.send("Profiler.start")

    def stop(self) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        profile = self.cdp.send("Profiler.stop")["profile"]
        self.cdp.send("Tracing.end")
        deadline = time.monotonic() + 60
        while not self.complete and time.monotonic() < deadline:
            self.page.wait_for_timeout(100)
        return self.events, profile


def paste_once(
    page: Any, recorder: Recorder, box: Any, index: int, is_widget: bool, text: str, window_ms: float
) -> dict[str, Any]:
    """Paste `text` into `box` with Ctrl+V and measure the window after the key."""
    page.evaluate("(t) => navigator.clipboard.writeText(t)", text)
    box.click()
    page.keyboard.press("Control+End")
    page.wait_for_timeout(300)
    page.evaluate(PROBE, [index, is_widget])
    recorder.start()
    t0 = page.evaluate("() => (window.pasteProbe.t0 = performance.now())")
    page.keyboard.press("Control+V")
    page.wait_for_timeout(window_ms + 300)  # the window starts at the keydown, a little after t0
    events, profile = recorder.stop()
    probe = page.evaluate("() => (window.pasteProbe.stop(), window.pasteProbe)")
    busy, longest = main_thread_busy(events, window_ms)
    long = [d for start, d in probe["longtasks"] if t0 <= start <= t0 + window_ms]
    out: dict[str, Any] = {
        "busy_ms": round(busy, 1),
        "longest_task_ms": round(longest, 1),
        "long_tasks_ms": round(sum(long), 1),
        "long_tasks": len(long),
        "value_length": page.evaluate("(b) => b.value.length", box.element_handle()),
    }
    if is_widget:
        out["first_shown_ms"] = round(probe["first"] - t0, 1) if probe["first"] is not None else None
        out["complete_ms"] = round(probe["complete"] - t0, 1) if probe["complete"] is not None else None
        out["widget_js_ms"] = {k: round(v, 1) for k, v in widget_js(profile).items()}
        out.update(paints=probe["paints"], mutations=probe["mutations"], sent=probe["sent"], received=probe["received"])
        out["profile"] = profile
        out["tokens"] = int(page.evaluate("(i) => document.querySelectorAll('.lens-widget')[i].dataset.nTokens", index))
    return out


def measure(browser: Any, url: str, model: str, text: str, repeats: int, window_ms: float) -> dict[str, Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    page = context.new_page()
    open_notebook(page, url)
    run_all(page)
    index = 0 if model == "demo" else page.locator(".lens-widget").count() - 1
    name = "widget" if model == "demo" else "long_widget"
    widget = page.locator(".lens-widget").nth(index)
    widget.scroll_into_view_if_needed(timeout=120_000)  # a view draws once it is on screen
    page.wait_for_function("(w) => Number(w.dataset.nTokens) > 0", arg=widget.element_handle(), timeout=300_000)
    page.evaluate(BARE_BOX, index)
    bare = page.locator(".bench-bare")
    handle = widget.element_handle()
    page.wait_for_function("(w) => w.dataset.busy === 'false'", arg=handle, timeout=120_000)
    original = widget.locator("textarea").input_value()  # the kernel's text, once the view is idle
    recorder = Recorder(page, context.new_cdp_session(page))
    results: dict[str, list[dict[str, Any]]] = {"widget": [], "bare": []}

    def reset() -> None:
        # Straight to the kernel, not through a new cell, which would scroll the notebook away.
        page.evaluate(EXECUTE, f"{name}.text = {original!r}")
        page.evaluate("() => { const b = document.querySelector('.bench-bare'); b.value = ''; b.blur(); }")
        page.wait_for_function(
            "([w, t]) => w.dataset.busy === 'false' && w.querySelector('textarea').value === t",
            arg=[handle, original],
            timeout=60_000,
        )
        page.evaluate("(w) => w.scrollIntoView({ block: 'center' })", handle)
        page.wait_for_timeout(1500)  # the snapshot and the visible-range report settle

    boxes: dict[str, Callable[[], dict[str, Any]]] = {
        "widget": lambda: paste_once(page, recorder, widget.locator("textarea"), index, True, text, window_ms),
        "bare": lambda: paste_once(page, recorder, bare, index, False, text, window_ms),
    }
    for r in range(repeats):
        for which in ("widget", "bare") if r % 2 == 0 else ("bare", "widget"):
            reset()
            results[which].append(boxes[which]())
    context.close()
    return results


def median_of(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in runs if r.get(key) is not None]
    return round(statistics.median(values), 1) if values else None


def summarise(raw: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"tokens_after": raw["widget"][0]["tokens"]}
    for which in ("widget", "bare"):
        runs = raw[which]
        for key in ("busy_ms", "long_tasks_ms", "longest_task_ms", "first_shown_ms", "complete_ms"):
            value = median_of(runs, key)
            if value is not None:
                out[f"{which}_{key}"] = value
    parts = [r["widget_js_ms"] for r in raw["widget"]]
    for part in ("paste", "answer", "render", "other"):
        out[f"widget_js_{part}_ms"] = round(statistics.median(p[part] for p in parts), 1)
    for name in ("heatmap", "legend", "panel"):
        out[f"{name}_paints"] = statistics.median(r["paints"][name] for r in raw["widget"])
    for key in ("mutations", "sent", "received"):
        out[f"widget_{key}"] = statistics.median(r[key] for r in raw["widget"])
    out["extra_busy_ms"] = round(out["widget_busy_ms"] - out["bare_busy_ms"], 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chars", type=int, default=20_000, help="characters pasted")
    parser.add_argument("--repeats", type=int, default=3, help="pastes per box")
    parser.add_argument("--window", type=float, default=3000, help="ms measured after the key")
    parser.add_argument(
        "--model", choices=["demo", "long"], default="demo", help="the quick start's widget, or one of 2,048 tokens"
    )
    parser.add_argument(
        "--esm", type=Path, action="append", default=None, help="view bundle(s) to measure (default: the built one)"
    )
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON line here")
    parser.add_argument("--details", type=Path, default=None, help="write every paste's numbers here")
    parser.add_argument(
        "--profiles", type=Path, default=None, help="write each widget paste's CPU profile here (DevTools opens them)"
    )
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    bundles: list[Path | None] = [p.resolve() for p in args.esm] if args.esm else [None]
    if args.esm is None and not (ROOT / "lens_widget" / "static" / "widget.js").exists():
        raise SystemExit("build the view first: npm run build")
    labels = [str(b.relative_to(ROOT) if b.is_relative_to(ROOT) else b) if b else "built" for b in bundles]
    text = paste_text(args.chars)
    raw: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        root = Path(tmp)
        for i, bundle in enumerate(bundles):
            (root / f"paste{i}.ipynb").write_text(json.dumps(notebook(bundle, args.model)))
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        for i, label in enumerate(labels):
            with jupyter_lab(root, f"paste{i}.ipynb") as url:
                raw[label] = measure(browser, url, args.model, text, args.repeats, args.window)
        browser.close()
    result = {
        "chars": args.chars,
        "model": args.model,
        "window_ms": args.window,
        "views": {label: summarise(data) for label, data in raw.items()},
    }
    print_table(result)
    line = json.dumps(result)
    print(line)
    if args.out:
        args.out.write_text(line + "\n")
    if args.profiles:
        args.profiles.mkdir(parents=True, exist_ok=True)
        for v, data in enumerate(raw.values()):
            for r, run in enumerate(data["widget"]):
                (args.profiles / f"view{v}-paste{r}.cpuprofile").write_text(json.dumps(run["profile"]))
    for data in raw.values():
        for run in data["widget"]:
            del run["profile"]
    if args.details:
        args.details.write_text(json.dumps(raw))


def print_table(result: dict[str, Any]) -> None:
    print(
        f"Paste of {result['chars']:,} characters ({result['model']} model), JupyterLab, headless chromium; "
        f"medians over the {result['window_ms']:.0f} ms after Ctrl+V"
    )
    columns = [
        ("busy", "busy_ms"),
        ("long tasks", "long_tasks_ms"),
        ("longest", "longest_task_ms"),
        ("first shown", "first_shown_ms"),
        ("complete", "complete_ms"),
    ]
    print(f"{'box':<40}" + "".join(f"{c:>13}" for c, _ in columns))
    for label, row in result["views"].items():
        for which in ("widget", "bare"):
            name = f"{'LensWidget' if which == 'widget' else 'bare <textarea>'} ({label})"
            print(f"{name:<40}" + "".join(f"{row.get(f'{which}_{k}', '')!s:>13}" for _, k in columns))
        js = ", ".join(f"{part} {row[f'widget_js_{part}_ms']}" for part in ("paste", "answer", "render", "other"))
        extra, tokens = row["extra_busy_ms"], row["tokens_after"]
        print(f"  widget JS, ms: {js}; widget busy − bare busy: {extra} ms; {tokens} tokens")
        paints = ", ".join(f"{name} {row[f'{name}_paints']}" for name in ("heatmap", "legend", "panel"))
        print(
            f"  paints: {paints}; DOM changes under the widget: {row['widget_mutations']}; "
            f"comm messages: {row['widget_sent']} sent, {row['widget_received']} received"
        )


if __name__ == "__main__":
    main()
