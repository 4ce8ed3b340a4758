"""Helpers shared by the browser tests and the view benchmark: Debian's chromium, local servers,
and a bare host page that renders the built ESM with a minimal fake anywidget model."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

CHROMIUM = shutil.which("chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def require_chromium() -> Any:
    """Playwright's API for a module of browser tests, which CI must run: without Debian's chromium
    the module is skipped, or in CI fails."""
    import pytest

    if CHROMIUM is None:
        if os.environ.get("CI"):
            raise RuntimeError("CI must run the browser tests: install Debian's chromium (scripts/test.sh does)")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)", allow_module_level=True)
    return pytest.importorskip("playwright.sync_api")


@contextlib.contextmanager
def chromium(playwright_api: Any) -> Iterator[Any]:
    """Debian's chromium, headless, launched by Playwright with the flags this machine needs."""
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_http(url: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


@contextlib.contextmanager
def serve_folder(folder: Path) -> Iterator[str]:
    """A static file server on 127.0.0.1 for `folder`; yields its base URL."""
    port = free_port()
    command = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(folder)]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/", timeout=20)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=10)


@contextlib.contextmanager
def jupyter_server(root: Path, notebook: str, app: str = "lab") -> Iterator[str]:
    """JupyterLab (app="lab") or Notebook 7 (app="notebook") on 127.0.0.1 serving `root`, with
    `window.jupyterapp` exposed so tests can run commands; yields the notebook's URL. As root it
    needs --allow-root."""
    port, token = free_port(), "lens-widget-test"
    command = [sys.executable, "-m", "jupyter", app, "--no-browser", "--allow-root", "--ip=127.0.0.1"]
    command += [f"--port={port}", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}"]
    command += ["--expose-app-in-browser"]
    if app == "lab":
        command += ["--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "JUPYTER_CONFIG_DIR": str(root / ".jupyter")}
    path = "lab/tree" if app == "lab" else "notebooks"
    with running(command, env, root / f"{app}.log", f"http://127.0.0.1:{port}/api/status?token={token}"):
        yield f"http://127.0.0.1:{port}/{path}/{notebook}?token={token}"


@contextlib.contextmanager
def running(command: list[str], env: dict[str, str], log: Path, ready_url: str) -> Iterator[None]:
    """A server process, its output in `log`, from when `ready_url` answers until the block ends."""
    with log.open("w") as out:
        server = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_for_http(ready_url)
            yield
        finally:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()


def jupyter_lab(root: Path, notebook: str) -> contextlib.AbstractContextManager[str]:
    return jupyter_server(root, notebook, "lab")


KERNEL_IDLE = """() => {
  const panel = window.jupyterapp?.shell?.currentWidget;
  return panel?.sessionContext?.session?.kernel?.status === "idle" && panel.content?.widgets?.length > 0;
}"""

RUN_ALL = """async () => {
  const app = window.jupyterapp;
  await app.commands.execute("notebook:run-all-cells");
}"""

# Runs `code` in a new cell at the end of the notebook and returns its printed output.
RUN_CODE = """async (code) => {
  const app = window.jupyterapp;
  const notebook = app.shell.currentWidget.content;
  notebook.activeCellIndex = notebook.widgets.length - 1;
  await app.commands.execute("notebook:insert-cell-below");
  const cell = notebook.activeCell;
  cell.model.sharedModel.setSource(code);
  await app.commands.execute("notebook:run-cell");
  const outputs = cell.model.outputs.toJSON();
  return outputs.map((o) => (o.text ?? JSON.stringify(o))).join("");
}"""


def open_notebook(page: Any, url: str) -> None:
    """Open a notebook and wait for its kernel, taking the default kernel if the host asks."""
    page.goto(url)
    page.wait_for_function("() => !!window.jupyterapp?.shell?.currentWidget", timeout=120_000)
    for _ in range(240):
        accept = page.locator(".jp-Dialog .jp-mod-accept")
        if accept.count():
            accept.first.click()
        if page.evaluate(KERNEL_IDLE):
            return
        page.wait_for_timeout(500)
    raise AssertionError("the notebook's kernel never became idle")


def run_all(page: Any) -> None:
    """Run every cell (Run All) and wait until the kernel has finished them."""
    page.evaluate(RUN_ALL)
    page.wait_for_function(KERNEL_IDLE, timeout=120_000)


def run_code(page: Any, code: str) -> str:
    return str(page.evaluate(RUN_CODE, code))


def kernel_text(page: Any) -> str:
    """`widget.text` as the kernel has it."""
    import json

    return str(json.loads(run_code(page, "import json; print(json.dumps(widget.text))")))


def text_boxes(page: Any) -> list[str]:
    return list(page.evaluate("() => [...document.querySelectorAll('.lens-widget textarea')].map((t) => t.value)"))


def wait_until_idle(page: Any) -> None:
    """Every view has nothing in flight (no typing the kernel has not finished, no rows missing)."""
    page.wait_for_function(
        "() => [...document.querySelectorAll('.lens-widget')].every((w) => w.dataset.busy === 'false')",
        timeout=60_000,
    )


def run_first_cell(page: Any) -> None:
    """Shift+Enter in the first cell, again if a kernel still connecting dropped the request."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=120_000)
    prompt = page.locator(".jp-Cell .jp-InputPrompt").first
    for _ in range(4):
        # A kernel still starting can make JupyterLab ask which kernel to use: take the default.
        accept = page.locator(".jp-Dialog .jp-mod-accept")
        if accept.count():
            accept.first.click()
            page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=120_000)
        page.locator(".jp-Cell .cm-content").first.click()
        page.keyboard.press("Shift+Enter")
        try:
            page.wait_for_function(
                "(el) => el.textContent.includes('*') || /\\d/.test(el.textContent)",
                arg=prompt.element_handle(),
                timeout=15_000,
            )
            return
        except PlaywrightTimeout:
            continue
    raise AssertionError("the first cell never started running")


def trait_state(text: str, payload: dict[str, Any], vocabulary: dict[str, Any]) -> dict[str, Any]:
    """The widget's traits as a kernel would have them after one full update (for the harness page)."""
    header = {**payload["header"], "seq": 1, "base": -1}
    return {
        "text": text,
        "statistic": "entropy",
        "layer_stride": 1,
        "lens": "logit",
        "lens_options": ["logit"],
        "snapshot": {**payload, "header": header},
        "vocabulary": vocabulary,
        "error": "",
    }


# The host contract VS Code and Colab implement: an ES module's render({model, el}) and a model with
# get/set/on/off/save_changes/send. Binary traits arrive as DataViews.
HARNESS = """<!doctype html>
<meta charset="utf-8">
<link rel="stylesheet" href="widget.css">
<div id="app" style="width: 900px"></div>
<script type="module">
import widget from "./widget.js";
const fixture = await (await fetch("state.json")).json();
function revive(v) {
  if (Array.isArray(v)) return v.map(revive);
  if (v && typeof v === "object") {
    const keys = Object.keys(v);
    if (keys.length === 1 && keys[0] === "b64") {
      const bytes = Uint8Array.from(atob(v.b64), (c) => c.charCodeAt(0));
      return new DataView(bytes.buffer);
    }
    return Object.fromEntries(keys.map((k) => [k, revive(v[k])]));
  }
  return v;
}
const state = revive(fixture);
const listeners = new Map();
const model = {
  saved: [], sent: [],
  get: (k) => state[k],
  set: (k, v) => { state[k] = v; },
  save_changes() { this.saved.push({ ...state, snapshot: undefined, vocabulary: undefined }); },
  send(m) {
    this.sent.push(m);  // a live kernel answers the ping; nothing else is answered here
    const pong = { type: "pong", view: m.view };
    if (m.type === "ping") setTimeout(() => listeners.get("msg:custom")?.forEach((fn) => fn(pong, [])));
  },
  on: (name, fn) => { if (!listeners.has(name)) listeners.set(name, new Set()); listeners.get(name).add(fn); },
  off: (name, fn) => listeners.get(name)?.delete(fn),
};
window.fakeModel = model;
window.cleanup = widget.render({ model, el: document.getElementById("app") });
</script>
"""


NODE_MODULES = Path(__file__).resolve().parents[1] / "node_modules"
CDN_COPIES = {
    "require.min.js": NODE_MODULES / "requirejs" / "require.js",
    "html-manager@": NODE_MODULES / "@jupyter-widgets" / "html-manager" / "dist" / "embed-amd.js",
    "anywidget@": NODE_MODULES / "anywidget" / "dist" / "index.js",
}
"""What the pages of nbconvert and embed_minimal_html fetch from CDNs, by a part of the URL: the same
packages, installed by npm (package.json's devDependencies), since this machine has no CDN."""


def serve_cdn_locally(page: Any) -> list[str]:
    """Answer CDN requests with the local copies and refuse every other network request; returns the
    list of refused URLs (a test asserts it holds nothing it needs)."""
    refused: list[str] = []

    def answer(route: Any) -> None:
        url = route.request.url
        if url.startswith(("file:", "data:", "blob:")):
            route.continue_()
            return
        for part, path in CDN_COPIES.items():
            if part in url and url.endswith(".js"):
                route.fulfill(path=str(path), content_type="application/javascript")
                return
        refused.append(url)
        route.abort()

    page.route("**/*", answer)
    return refused


VSCODE_HOST = Path(__file__).resolve().parent / "vscode_host"
"""The stand-in for VS Code's notebook webview (host.ts says what it reproduces)."""


def build_vscode_host(out: Path) -> Path:
    """Bundle tests/vscode_host/host.ts (VS Code's ipywidgets8 renderer and @jupyterlab/services) into
    `out`, beside its page and requirejs. define.amd is hidden from the bundle, as in the widget's own
    build, so that no UMD module in it registers with requirejs."""
    out.mkdir(parents=True, exist_ok=True)
    command = [str(NODE_MODULES / ".bin" / "esbuild"), str(VSCODE_HOST / "host.ts"), "--bundle", "--format=esm"]
    command += ["--target=es2020", "--define:define.amd=false", f"--outfile={out / 'host.js'}", "--log-level=warning"]
    subprocess.run(command, check=True)
    shutil.copy(VSCODE_HOST / "index.html", out / "index.html")
    shutil.copy(NODE_MODULES / "requirejs" / "require.js", out / "require.js")
    return out


@contextlib.contextmanager
def bare_jupyter_server(root: Path, static: Path) -> Iterator[tuple[str, str]]:
    """A Jupyter server without a front end on 127.0.0.1, serving `static` under /static/ for a page
    of our own that starts kernels through its REST API (a page from the server itself: chromium
    refuses a page from elsewhere a websocket to 127.0.0.1); yields (base URL, token). As root it
    needs --allow-root."""
    import json

    port, token = free_port(), "lens-widget-test"
    command = [sys.executable, "-m", "jupyter", "server", "--no-browser", "--allow-root", "--ip=127.0.0.1"]
    command += [f"--port={port}", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}"]
    command += [f"--ServerApp.extra_static_paths={json.dumps([str(static)])}"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "JUPYTER_CONFIG_DIR": str(root / ".jupyter")}
    with running(command, env, root / "server.log", f"http://127.0.0.1:{port}/api/status?token={token}"):
        yield f"http://127.0.0.1:{port}", token


def host_run(page: Any, code: str) -> str:
    """Run `code` as a new cell of the VS Code host page's kernel; its printed output."""
    result = page.evaluate("(code) => window.host.execute(code)", code)
    if result["error"]:
        raise AssertionError(f"the kernel raised {result['error']} running:\n{code}")
    return str(result["output"])


def open_vscode_host(page: Any, server: tuple[str, str], hop: bool = True, vscode: bool = True) -> list[str]:
    """Open the host page (built by build_vscode_host, served by bare_jupyter_server) and wait for its
    kernel. Widget modules are then served from the kernel environment's share/jupyter/nbextensions,
    found from the kernel's sys.prefix, as VS Code does offline. Every request that would leave the
    machine (a CDN) is refused: returns the list of refused URLs. vscode=False takes VS Code's theme
    markers off the page, so the view does not know its host (what it was before it looked)."""
    import json
    from urllib.parse import urlsplit

    base, token = server
    refused: list[str] = []
    nbextensions: list[Path] = []

    def refuse(route: Any) -> None:
        refused.append(route.request.url)
        route.abort()

    def serve(route: Any) -> None:
        path = urlsplit(route.request.url).path.removeprefix("/static/nbextensions/")
        file = nbextensions[0] / path if nbextensions else None
        if file is not None and file.is_file():
            route.fulfill(path=str(file))
        else:
            route.fulfill(status=404, body="not found")

    local = ("data:", "blob:", base + "/")
    page.route(lambda url: not url.startswith(local), refuse)
    page.route(f"{base}/static/nbextensions/**", serve)
    page.goto(f"{base}/static/index.html?token={token}&hop={int(hop)}&vscode={int(vscode)}")
    page.wait_for_function("() => window.host?.ready || window.host?.failed", timeout=120_000)
    failed = page.evaluate("() => window.host.failed")
    assert not failed, f"the host page could not start: {failed}"
    prefix = json.loads(host_run(page, "import json, sys; print(json.dumps(sys.prefix))"))
    nbextensions.append(Path(prefix) / "share" / "jupyter" / "nbextensions")
    return refused
