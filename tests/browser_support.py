"""Helpers shared by the browser tests and the view benchmark: Debian's chromium, local servers,
and a bare host page that renders the built ESM with a minimal fake anywidget model."""

from __future__ import annotations

import base64
import shutil
import socket
import time
import urllib.request
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


def run_first_cell(page: Any) -> None:
    """Shift+Enter in the first cell, again if a kernel still connecting dropped the request."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=120_000)
    prompt = page.locator(".jp-Cell .jp-InputPrompt").first
    for _ in range(4):
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


def jsonable(value: Any) -> Any:
    """Trait state as JSON, bytes as {"b64": …} (the harness page turns them into DataViews)."""
    if isinstance(value, bytes):
        return {"b64": base64.b64encode(value).decode()}
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    return value


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
  save_changes() { this.saved.push({ text: state.text, text_revision: state.text_revision }); },
  send(m) { this.sent.push(m); },
  on: (name, fn) => { if (!listeners.has(name)) listeners.set(name, new Set()); listeners.get(name).add(fn); },
  off: (name, fn) => listeners.get(name)?.delete(fn),
};
window.fakeModel = model;
window.cleanup = widget.render({ model, el: document.getElementById("app") });
</script>
"""
