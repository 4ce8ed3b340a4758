"""The real widget in VS Code's own widget manager (@vscode/jupyter-ipywidgets8), in chromium.

VS Code does not use JupyterLab's widget manager: its webview loads the package's renderer, which
bundles only @jupyter-widgets/{base,controls,output} and loads anywidget with requirejs, offline from
the kernel environment's share/jupyter/nbextensions folder. It renders an output only once it is
scrolled into view, carries binary buffers as JSON number arrays through its extension host, and hands
every keydown that reaches the webview's window to its keybindings (Delete deletes the cell; with the
Jupyter keymap j, k move and d d deletes). tests/vscode_host/ is a page that does the same against a
local Jupyter server (host.ts says how); here the widget must draw, hover, switch a statistic and take
typing there, and keep every key pressed in it from the notebook's keybindings but modifier+Enter.
Told by its ping that it is in VS Code, the kernel sends typing's deltas as base64 text and does not
resend the whole snapshot after each pause.

Screenshots go to tests/artifacts/ (git-ignored).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_support import (
    bare_jupyter_server,
    build_vscode_host,
    host_run,
    open_vscode_host,
    require_chromium,
    wait_until_idle,
)

ARTIFACTS = Path(__file__).parent / "artifacts"

require_chromium()


@pytest.fixture(scope="module")
def vscode_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A Jupyter server serving the built host page: (its base URL, its token)."""
    folder = build_vscode_host(tmp_path_factory.mktemp("vscode-host"))
    with bare_jupyter_server(tmp_path_factory.mktemp("vscode-server"), folder) as server:
        yield server


WIDGET = """import lens_widget
widget = lens_widget.demo('The capital of France is Paris. The capital of Germany is')
widget"""
PICTURE = "() => document.querySelector('.lens-widget .lw-canvas').toDataURL()"
BLANK = """() => {
  const c = document.querySelector('.lens-widget .lw-canvas');
  const blank = Object.assign(document.createElement('canvas'), {width: c.width, height: c.height});
  return blank.toDataURL();
}"""
KEYS_ON_HEATMAP = ["Delete", "Backspace", "j", "k", "d", "d", "a", "b", "x", "1", " "]
ARROWS = ["ArrowRight", "ArrowDown", "ArrowDown", "ArrowRight", "ArrowLeft", "ArrowUp"]


MODIFIERS = {"Shift", "Control", "Alt", "Meta"}


def keys_seen(page: Any) -> list[str]:
    """The keys the notebook's keybindings got since the last call, less modifiers pressed alone (a
    chord's first half, which VS Code must see)."""
    keys = page.evaluate("() => window.host.keys.splice(0)")
    return [k for k in keys if k.split("+")[-1] not in MODIFIERS]


def kernel_value(page: Any, expression: str) -> Any:
    return json.loads(host_run(page, f"import json; print(json.dumps({expression}))"))


def test_widget_in_vscodes_widget_manager(browser: Any, vscode_host: tuple[str, str]) -> None:
    page = browser.new_page(viewport={"width": 1100, "height": 800})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        drive(page, vscode_host, errors)
    except Exception:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "vscode-failure.png"))
        raise
    finally:
        page.close()


def drive(page: Any, server: tuple[str, str], errors: list[str]) -> None:
    refused = open_vscode_host(page, server)

    # The cell runs to the end without a view: VS Code renders the output only once it is in view.
    host_run(page, WIDGET)
    output = page.locator(".vsc-output").first
    assert output.get_attribute("data-state") == "waiting"
    page.wait_for_timeout(300)
    assert page.locator(".lens-widget").count() == 0, "nothing is rendered out of view"
    output.scroll_into_view_if_needed()
    page.wait_for_function("() => Number(document.querySelector('.lens-widget')?.dataset.nTokens) > 0", timeout=60_000)
    assert output.get_attribute("data-state") == "rendered"
    scripts = page.evaluate("() => window.host.scripts")
    assert [s["module"] for s in scripts] == ["anywidget"], scripts
    assert scripts[0]["url"].endswith("/static/nbextensions/anywidget/index"), "from the kernel's nbextensions"
    assert refused == [], f"requests that left the machine: {refused}"
    carried = "() => window.host.messages.filter((m) => m.direction === 'in' && m.buffers.length).length"
    assert page.evaluate(carried) > 0, "the widget's binary state crossed the hop as number arrays"
    n_tokens = int(page.locator(".lens-widget").get_attribute("data-n-tokens") or 0)
    assert n_tokens == kernel_value(page, "len(widget.session.tokens.ids)")

    # It draws: the canvas holds other pixels than a blank one of its size.
    picture = page.evaluate(PICTURE)
    assert picture != page.evaluate(BLANK), "the heatmap is drawn"

    # It hovers: the tooltip lists the cell's top-10.
    canvas = page.locator(".lens-widget .lw-canvas")
    page.locator(".lens-widget").scroll_into_view_if_needed()
    box = canvas.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + 110, box["y"] + 8)
    page.wait_for_selector(".lens-widget .lw-tooltip:not([hidden])", timeout=10_000)
    assert page.locator(".lens-widget .lw-tooltip .lw-tip-row").count() == 10
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "vscode.png"))
    page.mouse.move(5, 5)

    # It switches a statistic: the picture changes and the kernel has the choice.
    widget = page.locator(".lens-widget")
    shown = widget.get_attribute("data-statistic")
    offered = widget.locator(".lw-stat").evaluate_all("(b) => b.map((x) => x.dataset.statistic)")
    other = next(s for s in offered if s != shown)
    picture = page.evaluate(PICTURE)
    widget.locator(f".lw-stat[data-statistic='{other}']").click()
    page.wait_for_function(f"(before) => ({PICTURE})() !== before", arg=picture, timeout=10_000)
    assert widget.get_attribute("data-statistic") == other
    assert kernel_value(page, "widget.statistic") == other
    keys_seen(page)
    for key in ["d", "d", "Delete", "k"]:  # the clicked button has focus: its keys are the widget's too
        page.keyboard.press(key)
    assert keys_seen(page) == [], "a key pressed on a toolbar button reached the notebook's keybindings"

    # Keys: the document's listener stands for VS Code's keybindings. Outside the widget it hears them.
    page.locator("#earlier").click()
    keys_seen(page)
    page.keyboard.press("j")
    assert keys_seen(page) == ["j"]
    # On the focused heatmap none reaches it: not its own keys, not Delete, not j, k, d d or letters.
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + 10, box["y"] + 8)  # the row labels: focuses the heatmap, pins nothing
    for key in KEYS_ON_HEATMAP + ARROWS:
        page.keyboard.press(key)
    page.wait_for_function("() => document.querySelector('.lens-widget').dataset.selected === '1,0'", timeout=5_000)
    assert page.evaluate("() => document.activeElement?.classList.contains('lw-scroll')"), "the heatmap keeps focus"
    assert keys_seen(page) == [], "a key pressed on the heatmap reached the notebook's keybindings"
    # Running the cell still works from inside the widget.
    page.keyboard.press("Shift+Enter")
    page.keyboard.press("Control+Enter")
    assert keys_seen(page) == ["Shift+Enter", "Ctrl+Enter"]
    assert kernel_value(page, "len(widget.session.tokens.ids)") == n_tokens, "no key deleted or changed the text"

    # It types: the kernel's text follows the text box, and the picture repaints.
    assert kernel_value(page, "list(widget._controller._front_ends.values())") == ["vscode"], "the ping named it"
    text = kernel_value(page, "widget.text")
    picture = page.evaluate(PICTURE)
    typing_starts = page.evaluate("() => window.host.messages.length")
    page.locator(".lens-widget textarea").click()
    page.keyboard.press("Control+End")
    page.keyboard.type(" Berlin", delay=30)
    for key in ["Delete", "ArrowLeft", "ArrowRight", "Home", "End"]:  # the text box's keys are its own
        page.keyboard.press(key)
    page.wait_for_function(f"(before) => ({PICTURE})() !== before", arg=picture, timeout=30_000)
    wait_until_idle(page)
    assert kernel_value(page, "widget.text") == text + " Berlin"
    assert page.evaluate("() => document.querySelector('.lens-widget textarea').value") == text + " Berlin"
    assert int(widget.get_attribute("data-n-tokens") or 0) == kernel_value(page, "len(widget.session.tokens.ids)")
    assert keys_seen(page) == [], "typing in the text box reached the notebook's keybindings"
    # Lean in VS Code: typing's deltas crossed as base64 text, not number arrays, and the whole picture
    # was not resent once the typing paused (VS Code neither saves nor replays widget state).
    page.wait_for_timeout(1500)  # the kernel's snapshot would have come 0.5 s after the last key
    since = page.evaluate("(start) => window.host.messages.slice(start)", typing_starts)
    deltas = [m for m in since if m["direction"] == "in" and m["what"] == "custom update"]
    assert deltas and all(m["buffers"] == [] for m in deltas), "deltas as base64 in the JSON"
    assert not [m["what"] for m in since if m["direction"] == "in" and "snapshot" in m["what"]]
    stale = "widget.snapshot['header']['n_tokens'] != len(widget.session.tokens.ids)"
    assert kernel_value(page, stale), "the snapshot waits for someone to need it"
    assert kernel_value(page, "len(widget.grid_data().tokens) == len(widget.session.tokens.ids)")
    assert not kernel_value(page, stale), "an export brought it up to date"
    page.screenshot(path=str(ARTIFACTS / "vscode-typed.png"))
    assert errors == []
