"""The real widget in a real browser: Debian's chromium driven by Playwright.

1. JupyterLab on 127.0.0.1 runs examples/quickstart.ipynb: the canvas is drawn, typing adds a
   column, hovering shows 10 tokens, the statistic toggle recolours, the stride slider drops rows.
2. A bare page imports the built ESM with a minimal fake anywidget model: the host contract that
   VS Code and Colab implement, with no Jupyter at all.

Screenshots go to tests/artifacts/ (git-ignored).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_support import (
    CHROMIUM,
    CHROMIUM_ARGS,
    HARNESS,
    jsonable,
    jupyter_lab,
    run_first_cell,
    serve_folder,
    trait_state,
)

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(__file__).parent / "artifacts"

if CHROMIUM is None:
    if os.environ.get("CI"):
        raise RuntimeError("CI must run the browser tests: install Debian's chromium (scripts/test.sh does)")
    pytest.skip("Debian's chromium is not installed (apt-get install chromium)", allow_module_level=True)

playwright_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def jupyterlab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("lab")
    shutil.copy(ROOT / "examples" / "quickstart.ipynb", root / "quickstart.ipynb")
    with jupyter_lab(root, "quickstart.ipynb") as url:
        yield url


CANVAS_COLOURS = """(selector) => {
  const canvas = document.querySelector(selector);
  if (!canvas || !canvas.width) return 0;
  const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  const colours = new Set();
  for (let i = 0; i < data.length; i += 4 * 7) colours.add(data[i] << 16 | data[i + 1] << 8 | data[i + 2]);
  return colours.size;
}"""


def n_tokens(page: Any) -> int:
    return int(page.locator(".lens-widget").first.get_attribute("data-n-tokens") or 0)


def n_rows(page: Any) -> int:
    return int(page.locator(".lens-widget").first.get_attribute("data-rows") or 0)


def hover_first_cell(page: Any) -> None:
    box = page.locator(".lens-widget .lw-canvas").first.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + 110, box["y"] + 8)


def test_widget_in_jupyterlab(browser: Any, jupyterlab: str) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    try:
        drive_jupyterlab(page, jupyterlab)
    except Exception:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "jupyterlab-failure.png"))
        raise
    finally:
        page.close()


def drive_jupyterlab(page: Any, jupyterlab: str) -> None:
    page.goto(jupyterlab)
    run_first_cell(page)
    page.wait_for_function("() => Number(document.querySelector('.lens-widget')?.dataset.nTokens) > 0", timeout=120_000)
    assert page.evaluate(CANVAS_COLOURS, ".lens-widget .lw-canvas") > 8, "the heatmap is drawn"

    before = n_tokens(page)
    box = page.locator(".lens-widget textarea").first
    box.click()
    page.keyboard.press("Control+End")
    page.keyboard.type(" Berlin", delay=40)
    page.wait_for_function(
        f"() => Number(document.querySelector('.lens-widget').dataset.nTokens) > {before}", timeout=30_000
    )
    assert "Berlin" in box.input_value(), "the typed text stays in the box"

    hover_first_cell(page)
    page.wait_for_selector(".lens-widget .lw-tooltip:not([hidden])", timeout=10_000)
    assert page.locator(".lens-widget .lw-tooltip .lw-tip-row").count() == 10
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "jupyterlab.png"))

    page.mouse.move(5, 5)
    picture = page.evaluate("() => document.querySelector('.lens-widget .lw-canvas').toDataURL()")
    page.locator(".lens-widget [data-statistic='max_probability']").first.click()
    page.wait_for_function(
        "(before) => document.querySelector('.lens-widget .lw-canvas').toDataURL() !== before", arg=picture
    )

    rows = n_rows(page)
    page.locator(".lens-widget .lw-stride-input").first.fill("3")
    page.wait_for_function(f"() => Number(document.querySelector('.lens-widget').dataset.rows) < {rows}")
    assert n_rows(page) == 3  # layers 0, 3 and the output row of a 6-layer model


def test_bare_host_page_with_a_fake_model(browser: Any, tmp_path: Path) -> None:
    """What VS Code and Colab give a widget: an ES module and a model object, nothing from Jupyter."""
    from lens_widget import LensSession
    from lens_widget.demo import demo_model

    model, tokenizer = demo_model()
    session = LensSession(model, tokenizer)
    update = session.set_text("The capital of France is Paris <b>bold</b> 🙂")
    state = trait_state(session.text, update.payload, session.vocabulary())

    for name in ("widget.js", "widget.css"):
        shutil.copy(ROOT / "lens_widget" / "static" / name, tmp_path / name)
    (tmp_path / "state.json").write_text(json.dumps(jsonable(state)))
    (tmp_path / "index.html").write_text(HARNESS)
    with serve_folder(tmp_path) as base:
        page = browser.new_page(viewport={"width": 1000, "height": 700})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{base}/index.html")
        page.wait_for_function("() => Number(document.querySelector('.lens-widget')?.dataset.nTokens) > 0")
        assert n_tokens(page) == len(session.tokens.ids)
        assert n_rows(page) == session.num_layers + 1
        assert page.evaluate(CANVAS_COLOURS, ".lens-widget .lw-canvas") > 8
        hover_first_cell(page)
        page.wait_for_selector(".lens-widget .lw-tooltip:not([hidden])")
        assert page.locator(".lw-tip-row").count() == 10
        assert page.locator(".lens-widget b").count() == 0, "model strings never become HTML"
        page.locator(".lens-widget textarea").click()
        page.keyboard.press("Control+End")
        page.keyboard.type("!", delay=20)
        page.wait_for_function("() => window.fakeModel.saved.length > 0")
        assert page.evaluate("() => window.fakeModel.saved.at(-1)") == {"text": session.text + "!", "text_revision": 2}
        page.evaluate("() => window.cleanup()")
        assert page.locator(".lens-widget").count() == 0
        assert errors == []
        page.close()
