"""A widget as one self-contained HTML file: the bundled view, its state and vocabulary, no kernel.

The page needs nothing from the network: the view's ES module is carried inside the page (base64,
imported from a Blob URL), the CSS is inlined, and the traits are JSON whose binary leaves are base64.
A small host object on the page plays anywidget's model: get/set/on/off/save_changes/send. It answers
the view's ping with "no_kernel", so the view shows at once that it is a snapshot: hover, the
statistic buttons and the rows that were computed keep working; the text box is read-only.

Every model string (tokens, text, names) travels inside JSON in a <script type="application/json">
block with <, > and & escaped, and the view draws them as canvas text or textContent, never as HTML.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

STATIC = Path(__file__).parent / "static"

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="lens-widget {version}">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 24px; }}
.lw-page-caption {{ color: #666; font-size: 13px; margin: 0 0 12px; }}
@media (prefers-color-scheme: dark) {{ body {{ background: #111; color: #ddd; }} }}
{css}
</style>
</head>
<body>
<p class="lw-page-caption">{caption}</p>
<div id="lens-widget"></div>
<noscript>This page draws with JavaScript: enable it to see the lens.</noscript>
<script type="application/json" id="lens-widget-state">{state}</script>
<script type="application/octet-stream" id="lens-widget-view">{view}</script>
<script type="module">
const decode = (b64) => Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
function revive(value) {{
  if (Array.isArray(value)) return value.map(revive);
  if (value && typeof value === "object") {{
    const keys = Object.keys(value);
    if (keys.length === 1 && keys[0] === "b64") {{
      const bytes = decode(value.b64);
      return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    }}
    return Object.fromEntries(keys.map((key) => [key, revive(value[key])]));
  }}
  return value;
}}
const state = revive(JSON.parse(document.getElementById("lens-widget-state").textContent));
const listeners = new Map();
const emit = (name, ...args) => listeners.get(name)?.forEach((fn) => fn(...args));
// anywidget's model, as a host with no kernel implements it.
const model = {{
  get: (name) => state[name],
  set: (name, value) => {{ state[name] = value; emit(`change:${{name}}`); }},
  save_changes: () => {{}},
  send: (message) => {{
    const answer = {{ type: "no_kernel", view: message && message.view }};
    if (message && message.type === "ping") setTimeout(() => emit("msg:custom", answer, []));
  }},
  on: (name, fn) => {{ if (!listeners.has(name)) listeners.set(name, new Set()); listeners.get(name).add(fn); }},
  off: (name, fn) => listeners.get(name)?.delete(fn),
}};
const source = new TextDecoder().decode(decode(document.getElementById("lens-widget-view").textContent.trim()));
const url = URL.createObjectURL(new Blob([source], {{ type: "text/javascript" }}));
const view = (await import(url)).default;
URL.revokeObjectURL(url);
view.render({{ model, el: document.getElementById("lens-widget") }});
</script>
</body>
</html>
"""


def page_html(traits: dict[str, Any], *, title: str, caption: str, version: str) -> str:
    """The page for a widget's trait values (the synced ones: snapshot, vocabulary, text, …)."""
    view = STATIC / "widget.js"
    if not view.exists():
        raise FileNotFoundError(f"The view's bundle is missing ({view}): build it with `npm run build`.")
    return PAGE.format(
        version=html.escape(version),
        title=html.escape(title),
        caption=html.escape(caption),
        css=(STATIC / "widget.css").read_text(encoding="utf-8"),
        state=_script_json(jsonable(traits)),
        view=base64.b64encode(view.read_bytes()).decode("ascii"),
    )


def jsonable(value: Any) -> Any:
    """Traits as JSON: bytes become {"b64": …}, which the page turns back into DataViews (the tests'
    harness pages and recorded fixtures use the same form)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"b64": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(item) for item in value]
    return value


def _script_json(value: Any) -> str:
    """JSON that cannot end its <script> block or open a comment: <, > and & are escaped."""
    text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
