"""Benchmark a long paste into the widget's text box against a bare <textarea> and a kernel round trip,
in JupyterLab.

Usage: python tests/benchmarks/bench_paste.py [--chars 20000] [--repeats 3] [--window 3000]
       [--model demo|long] [--esm path/to/widget.js --esm other/widget.js] [--out results.json]
       [--details runs.json] [--profiles folder/]

JupyterLab on 127.0.0.1 runs a copy of examples/quickstart.ipynb (Run All), with two more boxes on the
same page, so that all three pay what JupyterLab's page costs: a bare <textarea> under the widget, and
under its cell an echo widget (a text box whose text goes to the kernel as a message and
comes back to a canvas: the floor of any kernel-backed widget, kernel status and comm handling
included). For each repeat and each box (each first in turn): the texts are reset (the widget's from
the kernel), the clipboard holds `--chars` characters of the demo's task lines, and Ctrl+V is pressed
in the box, the keydown → paste → input path of a user's paste. For `--window` ms after the key:

- busy: the sum of the renderer main thread's tasks (CDP tracing, RunTask) from the keydown's:
  everything the page did, JupyterLab's handling of the kernel's messages and status, style, layout,
  paint and canvas drawing included;
- long tasks: their total and the longest task (PerformanceObserver "longtask"; a freeze a user
  feels is a task over 50 ms);
- for the widget: when its picture first showed the pasted text (data-n-tokens changed) and when it
  was complete (no pending column, nothing in flight); its own JavaScript from a CPU profile of the
  window, by the outermost widget function on each sampled stack: the paste (the text box's input
  handler: the caret, the edit message), the kernel's answer (store.ts, receiver.ts, payload.ts:
  decoding and applying updates, the `text` trait's handler) and the render (the frame's redraw);
  and counts that do not move with the machine's load: paints of the heatmap, its legend and the
  trajectory panel, DOM changes under the widget, comm messages sent and received.

With `--model long` the paste goes to a widget on a random GPT-NeoX with a 2,048-token context
(tests/tiny_models.py) appended to the notebook, so that the pasted text fills 2,048 columns rather
than the demo model's 512. With several `--esm` bundles each is measured on its own page (a first
cell points LensWidget at it), so that the views before and after a change compare in one run.

Prints a table and one JSON line. Busy times move by ±30 % from run to run on a shared 2-core machine
(chromium, the Jupyter server and the kernel share it); compare numbers of one run, and the counts.
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

BOXES = ["widget", "bare", "echo"]
"""LensWidget's text box; a bare <textarea>; the echo widget's, whose text goes to the kernel and back."""
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

# A text box whose text goes to the kernel as a message on each input, and comes back to a canvas.
ECHO_ESM = """
export default {
  render({ model, el }) {
    const root = Object.assign(document.createElement("div"), { className: "echo-widget" });
    const box = Object.assign(document.createElement("textarea"), { rows: 3, spellcheck: false });
    box.style.width = "100%";
    const canvas = Object.assign(document.createElement("canvas"), { width: 600, height: 24 });
    root.append(box, canvas);
    el.append(root);
    box.addEventListener("keydown", (e) => e.stopPropagation());
    box.addEventListener("input", () => model.send({ type: "echo", text: box.value }));
    const answer = (message) => {
      if (message?.type !== "echo") return;
      requestAnimationFrame(() => {
        const ctx = canvas.getContext("2d");
        ctx.clearRect(0, 0, canvas.width, canvas.height);
        ctx.font = "12px monospace";
        ctx.fillText(`${message.text.length} characters: ${message.text.slice(-60)}`, 4, 16);
      });
    };
    model.on("msg:custom", answer);
    return () => model.off("msg:custom", answer);
  },
};
"""

ECHO_CELL = """
# bench_paste.py: a text box whose text goes to the kernel and back, the floor of what a kernel round
# trip costs this page
import anywidget

class EchoWidget(anywidget.AnyWidget):
    _esm = {echo!r}

    def __init__(self):
        super().__init__()
        self.on_msg(self._echo)

    def _echo(self, widget, content, buffers):
        if isinstance(content, dict) and content.get("type") == "echo":
            self.send({{"type": "echo", "text": content["text"]}})

EchoWidget()
"""

# Observers the page keeps for one paste: long tasks; the widget's data attributes (when its picture
# first shows a different number of tokens, and when it is complete and idle); and counts that do not
# depend on the machine's load: the widget's canvas paints (each asks its canvas for a context once),
# the DOM changes under the widget, and the comm messages to and from the kernel.
PROBE = """([root, isWidget]) => {
  const probe = (window.pasteProbe = { longtasks: [], t0: null, first: null, complete: null,
    paints: { heatmap: 0, legend: 0, panel: 0 }, mutations: 0, sent: 0, received: 0 });
  const observer = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) probe.longtasks.push([e.startTime, e.duration]);
  });
  observer.observe({ type: "longtask" });
  const cleanups = [() => observer.disconnect()];
  probe.stop = () => cleanups.forEach((fn) => fn());
  if (!isWidget) return;
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

# Scrolls the notebook to a cell (JupyterLab may not lay out or render cells off screen) and returns
# the LensWidget it shows, once it has drawn.
SHOW_CELL = """async (i) => {
  const notebook = window.jupyterapp.shell.currentWidget.content;
  if (typeof notebook.scrollToItem === "function") await notebook.scrollToItem(i, "center");
  notebook.widgets[i].node.scrollIntoView({ block: "center" });
}"""

BARE_BOX = """(widget) => {
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


def notebook(esm: Path | None, model: str) -> tuple[dict[str, Any], int]:
    """The quick start, with the echo widget under the widget pasted into (and the long model's); and
    the index of the cell that shows the widget pasted into."""
    nb = json.loads((ROOT / "examples" / "quickstart.ipynb").read_text())

    def cell(source: str) -> dict[str, Any]:
        return {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None, "source": source}

    echo = cell(ECHO_CELL.format(echo=ECHO_ESM))
    if model == "long":
        nb["cells"] += [cell(LONG_CELL.format(tests=str(ROOT / "tests"))), echo]
    else:
        first = next(i for i, c in enumerate(nb["cells"]) if "lens_widget.demo()" in "".join(c["source"]))
        nb["cells"].insert(first + 1, echo)
    if esm is not None:
        nb["cells"].insert(0, cell(ESM_CELL.format(esm=str(esm))))
    return nb, nb["cells"].index(echo) - 1


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
    page: Any, recorder: Recorder, box: Any, widget: Any, is_widget: bool, text: str, window_ms: float
) -> dict[str, Any]:
    """Paste `text` into `box` with Ctrl+V and measure the window after the key."""
    page.evaluate("(t) => navigator.clipboard.writeText(t)", text)
    box.click()
    page.keyboard.press("Control+End")
    page.wait_for_timeout(300)
    page.evaluate(PROBE, [widget, is_widget])
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
        "value_length": len(box.input_value()),
    }
    if is_widget:
        out["first_shown_ms"] = round(probe["first"] - t0, 1) if probe["first"] is not None else None
        out["complete_ms"] = round(probe["complete"] - t0, 1) if probe["complete"] is not None else None
        out["widget_js_ms"] = {k: round(v, 1) for k, v in widget_js(profile).items()}
        out.update(paints=probe["paints"], mutations=probe["mutations"], sent=probe["sent"], received=probe["received"])
        out["profile"] = profile
        out["tokens"] = int(page.evaluate("(w) => w.dataset.nTokens", widget))
    return out


def show_widget(page: Any, cell: int) -> Any:
    """The LensWidget of notebook cell `cell`, scrolled to and drawn. JupyterLab renders a cell's output
    once it comes on screen, and may scroll elsewhere meanwhile (Run All ends at the last cell): scroll
    to it again until it draws."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    found = """(i) => {
      const w = window.jupyterapp.shell.currentWidget.content.widgets[i].node.querySelector('.lens-widget');
      return w && Number(w.dataset.nTokens) > 0 && w.dataset.busy === 'false' ? w : null;
    }"""
    for _ in range(30):
        page.evaluate(SHOW_CELL, cell)
        try:
            return page.wait_for_function(found, arg=cell, timeout=10_000).as_element()
        except PlaywrightTimeout:
            continue
    state = page.evaluate(
        """(i) => {
          const node = window.jupyterapp.shell.currentWidget.content.widgets[i].node;
          const w = node.querySelector('.lens-widget');
          return { widget: w ? { ...w.dataset } : null, text: node.innerText.slice(0, 600) };
        }""",
        cell,
    )
    raise RuntimeError(f"the widget of cell {cell} never drew: {state}")


def measure(browser: Any, url: str, model: str, cell: int, text: str, repeats: int, window_ms: float) -> dict[str, Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    page = context.new_page()
    open_notebook(page, url)
    run_all(page)
    name = "widget" if model == "demo" else "long_widget"
    handle = show_widget(page, cell)
    page.evaluate(BARE_BOX, handle)
    bare = page.query_selector(".bench-bare")
    echo = page.query_selector(".echo-widget textarea")
    box = handle.query_selector("textarea")
    assert box is not None and bare is not None and echo is not None
    original = box.input_value()  # the kernel's text, once the view is idle
    recorder = Recorder(page, context.new_cdp_session(page))
    results: dict[str, list[dict[str, Any]]] = {which: [] for which in BOXES}

    def reset() -> None:
        # Straight to the kernel, not through a new cell, which would scroll the notebook away.
        page.evaluate(EXECUTE, f"{name}.text = {original!r}")
        page.evaluate(
            "() => document.querySelectorAll('.bench-bare, .echo-widget textarea').forEach((b) => (b.value = ''))"
        )
        page.evaluate("() => document.activeElement?.blur()")
        page.wait_for_function(
            "([w, t]) => w.dataset.busy === 'false' && w.querySelector('textarea').value === t",
            arg=[handle, original],
            timeout=60_000,
        )
        page.evaluate("(w) => w.scrollIntoView({ block: 'center' })", handle)
        page.wait_for_timeout(1500)  # the snapshot and the visible-range report settle

    boxes: dict[str, Callable[[], dict[str, Any]]] = {
        "widget": lambda: paste_once(page, recorder, box, handle, True, text, window_ms),
        "bare": lambda: paste_once(page, recorder, bare, handle, False, text, window_ms),
        "echo": lambda: paste_once(page, recorder, echo, handle, False, text, window_ms),
    }
    for r in range(repeats):
        for which in BOXES[r % 3 :] + BOXES[: r % 3]:  # each box first, second and last in turn
            reset()
            results[which].append(boxes[which]())
    context.close()
    return results


def median_of(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in runs if r.get(key) is not None]
    return round(statistics.median(values), 1) if values else None


def summarise(raw: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"tokens_after": raw["widget"][0]["tokens"]}
    for which in BOXES:
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
    out["extra_over_echo_ms"] = round(out["widget_busy_ms"] - out["echo_busy_ms"], 1)
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
    cells: list[int] = []
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        root = Path(tmp)
        for i, bundle in enumerate(bundles):
            nb, cell = notebook(bundle, args.model)
            (root / f"paste{i}.ipynb").write_text(json.dumps(nb))
            cells.append(cell)
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        for i, label in enumerate(labels):
            with jupyter_lab(root, f"paste{i}.ipynb") as url:
                raw[label] = measure(browser, url, args.model, cells[i], text, args.repeats, args.window)
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
    names = {"widget": "LensWidget", "bare": "bare <textarea>", "echo": "echo widget"}
    for label, row in result["views"].items():
        print(label)
        for which in BOXES:
            print(f"  {names[which]:<38}" + "".join(f"{row.get(f'{which}_{k}', '')!s:>13}" for _, k in columns))
        js = ", ".join(f"{part} {row[f'widget_js_{part}_ms']}" for part in ("paste", "answer", "render", "other"))
        extra, tokens = row["extra_busy_ms"], row["tokens_after"]
        over_echo = row["extra_over_echo_ms"]
        print(f"  widget JS, ms: {js}; busy − bare's: {extra} ms, − echo's: {over_echo} ms; {tokens} tokens")
        paints = ", ".join(f"{name} {row[f'{name}_paints']}" for name in ("heatmap", "legend", "panel"))
        print(
            f"  paints: {paints}; DOM changes under the widget: {row['widget_mutations']}; "
            f"comm messages: {row['widget_sent']} sent, {row['widget_received']} received"
        )


if __name__ == "__main__":
    main()
