"""The real widget in a real browser: Debian's chromium driven by Playwright.

1. JupyterLab on 127.0.0.1 runs all of examples/quickstart.ipynb: every text box shows the text
   the last cell set from Python; typing, setting from Python and typing again keep the boxes and
   `widget.text` equal; the canvas is drawn, hovering shows 10 tokens, the statistic toggle
   recolours, the stride slider drops rows, the lens selector stays hidden without a tuned lens,
   and a theme switch keeps the heatmap's width.
2. Notebook 7 runs the same notebook: the text boxes agree with the kernel, and the heatmap's
   arrow keys move its selection, not the notebook's active cell.
3. JupyterLab runs examples/compare_models.ipynb (tuned-lens's call, two models): it opens on the
   diff with top-1-differs marks, the tooltip lists both models' top-10, and switching modes sends
   nothing to the kernel.
4. JupyterLab runs an nnsight model in the widget's remote mode (nnsight's dry run of NDIF):
   typing while traces are out shows "running…", and the picture catches up with the last text.
5. A bare page imports the built ESM with a minimal fake anywidget model: the host contract that
   VS Code and Colab implement, with no Jupyter at all.

Screenshots go to tests/artifacts/ (git-ignored).
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_support import (
    HARNESS,
    jupyter_server,
    kernel_text,
    open_notebook,
    require_chromium,
    run_all,
    run_code,
    serve_cdn_locally,
    serve_folder,
    text_boxes,
    trait_state,
    wait_until_idle,
)

from lens_widget import DEMO_TEXT
from lens_widget.page import jsonable
from lens_widget.payload import encode_vocabulary, payload_of

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(__file__).parent / "artifacts"

require_chromium()


def quickstart_server(tmp_path_factory: pytest.TempPathFactory, app: str) -> Iterator[str]:
    root = tmp_path_factory.mktemp(app)
    shutil.copy(ROOT / "examples" / "quickstart.ipynb", root / "quickstart.ipynb")
    with jupyter_server(root, "quickstart.ipynb", app) as url:
        yield url


@pytest.fixture(scope="module")
def jupyterlab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from quickstart_server(tmp_path_factory, "lab")


@pytest.fixture(scope="module")
def notebook7(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from quickstart_server(tmp_path_factory, "notebook")


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


def wait_for_picture(page: Any) -> None:
    """Until the first widget shows a picture of some tokens (a kernel loads its model first)."""
    page.wait_for_function("() => Number(document.querySelector('.lens-widget')?.dataset.nTokens) > 0", timeout=120_000)


def run_all_until_drawn(page: Any, url: str) -> None:
    open_notebook(page, url)
    run_all(page)
    wait_for_picture(page)


def hover_first_cell(page: Any) -> None:
    page.locator(".lens-widget .lw-canvas").first.scroll_into_view_if_needed()
    box = page.locator(".lens-widget .lw-canvas").first.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + 110, box["y"] + 8)


def screenshot_on_failure(page: Any, name: str, drive: Any) -> None:
    try:
        drive()
    except Exception:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"{name}-failure.png"))
        raise
    finally:
        page.close()


def test_widget_in_jupyterlab(browser: Any, jupyterlab: str) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    screenshot_on_failure(page, "jupyterlab", lambda: drive_jupyterlab(page, jupyterlab))


def type_at_end(page: Any, text: str) -> None:
    box = page.locator(".lens-widget textarea").first
    box.click()
    page.keyboard.press("Control+End")
    page.keyboard.type(text, delay=40)


def assert_boxes_show_the_kernels_text(page: Any, expected: str | None = None) -> None:
    """The first widget's text box shows `widget.text` (after the views have settled); the quick
    start's other widgets have texts of their own."""
    wait_until_idle(page)
    text = kernel_text(page)
    if expected is not None:
        assert text == expected
    page.wait_for_function(
        "(t) => document.querySelector('.lens-widget textarea')?.value === t", arg=text, timeout=10_000
    )
    assert text_boxes(page)[0] == text


QUICKSTART_TEXT = DEMO_TEXT + "add 47 8 55\n"
"""The first widget's text after Run All: the demo's tasks, then what the last cell appends."""
WIDTHS = """() => {
  const w = document.querySelector('.lens-widget');
  const css = (name) => parseFloat(w.querySelector(name).style.width);
  return [w.querySelector('.lw-scroll').clientWidth, css('.lw-canvas'), css('.lw-legend')];
}"""


def drive_jupyterlab(page: Any, url: str) -> None:
    run_all_until_drawn(page, url)
    assert page.evaluate(CANVAS_COLOURS, ".lens-widget .lw-canvas") > 8, "the heatmap is drawn"
    assert_boxes_show_the_kernels_text(page, QUICKSTART_TEXT)  # the quick start's last cell set it
    assert page.locator(".lens-widget .lw-lens").first.is_visible(), "the demo has a tuned lens to choose"

    # Type, set from Python, type again: the boxes and the kernel agree after each step.
    before = n_tokens(page)
    type_at_end(page, " five")
    page.wait_for_function(
        f"() => Number(document.querySelector('.lens-widget').dataset.nTokens) > {before}", timeout=30_000
    )
    assert_boxes_show_the_kernels_text(page, QUICKSTART_TEXT + " five")
    # Typing travelled as deltas; once it pauses, the saved snapshot catches up on the kernel's loop.
    page.wait_for_timeout(1500)
    caught_up = "h = widget.snapshot['header']; print(h['seq'] == widget._controller.seq, h['kind'], h['n_tokens'])"
    assert run_code(page, caught_up).strip().endswith(f"True full {n_tokens(page)}")
    run_code(page, "widget.text = 'Set again from Python.'")
    assert_boxes_show_the_kernels_text(page, "Set again from Python.")
    type_at_end(page, " Berlin")
    assert_boxes_show_the_kernels_text(page, "Set again from Python. Berlin")

    hover_first_cell(page)
    page.wait_for_selector(".lens-widget .lw-tooltip:not([hidden])", timeout=10_000)
    assert page.locator(".lens-widget .lw-tooltip .lw-tip-row").count() == 10
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "jupyterlab.png"))

    page.mouse.move(5, 5)
    picture = page.evaluate("() => document.querySelector('.lens-widget .lw-canvas').toDataURL()")
    page.locator(".lens-widget [data-statistic='entropy']").first.click()
    page.wait_for_function(
        "(before) => document.querySelector('.lens-widget .lw-canvas').toDataURL() !== before", arg=picture
    )
    check_fixed_scale_and_pins(page)
    check_sublayers_and_attribution(page)
    check_generation(page)

    rows = n_rows(page)
    page.locator(".lens-widget .lw-stride-input").first.fill("3")
    page.wait_for_function(f"() => Number(document.querySelector('.lens-widget').dataset.rows) < {rows}")
    assert n_rows(page) == 3  # layers 0, 3 and the output row of a 6-layer model

    # A theme switch restyles the page: the heatmap and the legend keep the widget's width.
    before_theme = page.evaluate(WIDTHS)
    assert before_theme[0] > 700 and before_theme[1] == before_theme[0]
    page.evaluate("() => window.jupyterapp.commands.execute('apputils:change-theme', {theme: 'JupyterLab Dark'})")
    page.wait_for_function("() => document.querySelector('.lens-widget').classList.contains('lw-dark')", timeout=30_000)
    page.wait_for_timeout(1500)
    scroller, canvas, legend = page.evaluate(WIDTHS)
    assert canvas == scroller and legend == scroller, f"heatmap {canvas} px, legend {legend} px, widget {scroller} px"
    page.screenshot(path=str(ARTIFACTS / "jupyterlab-dark.png"))

    # Enter at the end: the heatmap scrolls to the new ↵ column, which comes with the kernel's answer.
    before = n_tokens(page)
    type_at_end(page, "\n")
    page.wait_for_function(f"() => Number(document.querySelector('.lens-widget').dataset.nTokens) > {before}")
    wait_until_idle(page)
    page.wait_for_timeout(300)
    at_end = "(s) => s.scrollLeft + s.clientWidth >= s.scrollWidth - 2"
    assert page.locator(".lens-widget .lw-scroll").first.evaluate(at_end), "the new last column is in view"

    # A long paste, as a user pastes (Ctrl+V): the kernel gets the whole text, the view every column
    # computed after the ones on screen (tests/benchmarks/bench_paste.py measures what it costs).
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    pasted = (DEMO_TEXT * (20_000 // len(DEMO_TEXT) + 1))[:20_000]
    page.evaluate("(t) => navigator.clipboard.writeText(t)", pasted)
    box = page.locator(".lens-widget textarea").first
    box.click()
    page.keyboard.press("Control+End")
    expected = box.input_value() + pasted
    before = n_tokens(page)
    page.keyboard.press("Control+V")
    assert_boxes_show_the_kernels_text(page, expected)
    page.wait_for_function("() => document.querySelector('.lens-widget').dataset.pending === '0'", timeout=30_000)
    assert n_tokens(page) > before
    assert page.locator(".lens-widget .lw-scroll").first.evaluate(at_end), "the pasted text's end is in view"


def test_widget_in_notebook7(browser: Any, notebook7: str) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    screenshot_on_failure(page, "notebook7", lambda: drive_notebook7(page, notebook7))


def drive_notebook7(page: Any, url: str) -> None:
    run_all_until_drawn(page, url)
    assert_boxes_show_the_kernels_text(page, QUICKSTART_TEXT)
    type_at_end(page, " five")
    assert_boxes_show_the_kernels_text(page, QUICKSTART_TEXT + " five")
    # The heatmap followed the caret to the end of the text, and every column sent first as pending
    # (off screen while typing) has been filled in since.
    first = "document.querySelector('.lens-widget')"
    page.wait_for_function(f"() => {first}.dataset.pending === '0'", timeout=10_000)
    assert page.evaluate(f"() => {first}.querySelector('.lw-scroll').scrollLeft") > 0

    # Arrow keys on the heatmap move its selection; the notebook keeps its active cell.
    active = "() => window.jupyterapp.shell.currentWidget.content.activeCellIndex"
    page.locator(".lens-widget .lw-canvas").first.scroll_into_view_if_needed()
    box = page.locator(".lens-widget .lw-canvas").first.bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + 10, box["y"] + 8)  # the row labels: focuses the heatmap, pins nothing
    cell_before = page.evaluate(active)
    for key in ["ArrowRight", "ArrowDown", "ArrowDown", "ArrowRight"]:
        page.keyboard.press(key)
    page.wait_for_function("() => document.querySelector('.lens-widget').dataset.selected === '2,1'", timeout=5_000)
    assert page.evaluate(active) == cell_before, "the notebook's active cell did not move"
    assert page.evaluate("() => document.activeElement?.classList.contains('lw-scroll')"), "the heatmap keeps focus"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "notebook7.png"))


TEXT_BOX_LINES = """() => {
  const box = document.querySelector('.lens-widget textarea');
  return box.clientHeight / parseFloat(getComputedStyle(box).lineHeight);
}"""
"""How many lines of text the text box's visible area (its padding box, where a line shows) holds: a
whole number, or a line is cut."""


def test_bare_host_page_with_a_fake_model(browser: Any, tmp_path: Path) -> None:
    """What VS Code and Colab give a widget: an ES module and a model object, nothing from Jupyter."""
    from tiny_models import random_neox

    from lens_widget import LensSession

    model, tokenizer = random_neox()
    session = LensSession(model, tokenizer)
    update = session.set_text("The capital of France is Paris <b>bold</b> 🙂")
    state = trait_state(session.text, payload_of(update), encode_vocabulary(session.token_strings()))

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
        lines = page.evaluate(TEXT_BOX_LINES)
        assert lines >= 3 and abs(lines - round(lines)) < 0.05, f"the text box shows {lines:.2f} lines"
        page.locator(".lens-widget textarea").click()
        page.keyboard.press("Control+End")
        page.keyboard.type("!", delay=20)
        page.wait_for_function("() => window.fakeModel.sent.some((m) => m.type === 'edit')")
        edit = page.evaluate("() => window.fakeModel.sent.find((m) => m.type === 'edit')")
        assert edit["text"] == session.text + "!" and edit["edit"] == 1 and edit["view"]
        assert page.evaluate("() => window.fakeModel.saved") == [], "the text trait is the kernel's to set"
        page.evaluate("() => window.cleanup()")
        assert page.locator(".lens-widget").count() == 0
        assert errors == []
        page.close()


@pytest.fixture(scope="module")
def ab_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("ab")
    shutil.copy(ROOT / "examples" / "compare_models.ipynb", root / "compare_models.ipynb")
    with jupyter_server(root, "compare_models.ipynb", "lab") as url:
        yield url


def check_fixed_scale_and_pins(page: Any) -> None:
    """The KL scale holds across a lens switch; a token pinned from a clicked cell's tooltip becomes a
    p(item) statistic that colours the heatmap, and stays through typing."""
    widget = page.locator(".lens-widget").first
    widget.locator("[data-statistic='forward_kl']").click()
    page.wait_for_function("() => document.querySelector('.lens-widget').dataset.statistic === 'forward_kl'")
    tuned_scale = widget.get_attribute("data-scale")
    assert tuned_scale and tuned_scale.endswith(" fixed"), tuned_scale
    seq = widget.get_attribute("data-seq")
    widget.locator(".lw-lens-select").select_option("logit")
    page.wait_for_function(f"() => document.querySelector('.lens-widget').dataset.seq !== '{seq}'", timeout=30_000)
    wait_until_idle(page)
    assert run_code(page, "print(widget.lens)").strip() == "logit"
    assert widget.get_attribute("data-scale") == tuned_scale, "a lens switch keeps the fixed scale"
    widget.locator(".lw-lens-select").select_option("tuned")
    wait_until_idle(page)

    # The trajectory panel follows the last column, then the hovered one.
    page.mouse.move(5, 5)
    last = n_tokens(page) - 1
    follows = "(c) => document.querySelector('.lens-widget .lw-panel')?.dataset.col === String(c)"
    page.wait_for_function(follows, arg=last, timeout=15_000)
    assert int(widget.locator(".lw-panel").get_attribute("data-lines") or 0) > 0
    hover_first_cell(page)
    page.wait_for_function("() => document.querySelector('.lens-widget').dataset.selected")
    hovered = int((widget.get_attribute("data-selected") or "").split(",")[1])
    page.wait_for_function(follows, arg=hovered, timeout=15_000)
    assert hovered != last
    box = widget.locator(".lw-canvas").bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + 110, box["y"] + 8)  # the clicked cell's tooltip stays, and is clickable
    page.wait_for_selector(".lens-widget .lw-tooltip.lw-tip-pinned .lw-tip-row[data-id]", timeout=10_000)
    widget.locator(".lw-tooltip .lw-tip-row[data-id]").nth(1).click()
    # This widget's own p(item) button (the quick start's `follow` widget has one of its own).
    widget.locator(".lw-stat[data-statistic^='pin:']").first.wait_for(timeout=30_000)
    label = run_code(page, "print(widget.pins[0]['label'])").strip()
    assert label and not run_code(page, "print(repr(widget.error))").strip().strip("'")
    page.keyboard.press("Escape")
    picture = page.evaluate("() => document.querySelector('.lens-widget .lw-canvas').toDataURL()")
    widget.locator(".lw-stat[data-statistic^='pin:']").first.click()
    page.wait_for_function(
        "(before) => document.querySelector('.lens-widget .lw-canvas').toDataURL() !== before", arg=picture
    )
    assert (widget.get_attribute("data-statistic") or "").startswith("pin:")
    assert run_code(page, "print(widget.statistic)").strip() == f"pin:{label}"
    widget.scroll_into_view_if_needed()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "jupyterlab-pinned.png"))
    assert "pinned items" in (widget.locator(".lw-panel-title").text_content() or "")
    # The search offers tokens by their best probability at any layer; Enter pins the word's set.
    search = widget.locator(".lw-panel-search")
    search.fill("th")
    page.wait_for_selector(".lens-widget .lw-panel-hit", timeout=15_000)
    search.fill("the")
    search.press("Enter")
    page.wait_for_selector(".lens-widget .lw-stat[data-statistic='pin:the']", timeout=30_000)
    assert run_code(page, "print(len(widget.pins), widget.pins[1]['label'])").strip() == "2 the"
    page.mouse.move(5, 5)
    before = n_tokens(page)
    type_at_end(page, " again")
    page.wait_for_function(
        f"() => Number(document.querySelector('.lens-widget').dataset.nTokens) > {before}", timeout=30_000
    )
    assert (widget.get_attribute("data-statistic") or "").startswith("pin:"), "the pinned statistic stays"
    assert_boxes_show_the_kernels_text(page)  # the typing done: its last column is the one to follow
    page.wait_for_function(follows, arg=n_tokens(page) - 1, timeout=15_000)  # the panel follows the typing
    page.locator(".lens-widget [data-statistic='entropy']").first.click()


SUM_AND_LOGIT = re.compile(r"sum (-?[0-9.]+) · logit (-?[0-9.]+)")


def shown_attribution(page: Any, after: str = "") -> tuple[int, int, float, float]:
    """The attribution panel's (row, col, sum, logit) once it shows an answer other than `after`."""
    page.wait_for_function(
        "(after) => { const w = document.querySelector('.lens-widget .lw-writers');"
        " return w && w.dataset.state === 'shown' && `${w.dataset.row},${w.dataset.col}` !== after; }",
        arg=after,
        timeout=30_000,
    )
    writers = page.locator(".lens-widget .lw-writers").first
    found = SUM_AND_LOGIT.search(writers.locator(".lw-writers-summary").first.text_content() or "")
    assert found, writers.text_content()
    row, col = int(writers.get_attribute("data-row") or -1), int(writers.get_attribute("data-col") or -1)
    return row, col, float(found[1]), float(found[2])


def check_sublayers_and_attribution(page: Any) -> None:
    """The after-attention toggle adds an ℓ.attn row under each layer row; a clicked cell's panel
    says what wrote its top-1 token, with the sum beside the logit (the kernel's numbers), and W on
    the selected cell explains that one."""
    widget = page.locator(".lens-widget").first
    rows = n_rows(page)
    widget.locator(".lw-sublayers").click()
    more = f"() => Number(document.querySelector('.lens-widget').dataset.rows) === {2 * rows - 1}"
    page.wait_for_function(more, timeout=30_000)
    wait_until_idle(page)
    assert run_code(page, "print(widget.sublayers, widget.session.row_labels[-2:])").strip() == (
        f"True ['{rows - 1}.attn', 'output']"
    )
    # A click on the second row, under the output: the last block's attention (row 2L). The panel
    # opened by check_fixed_scale_and_pins's click is closed first.
    if widget.locator(".lw-writers").is_visible():
        widget.locator(".lw-writers-close").click()
    widget.locator(".lw-canvas").scroll_into_view_if_needed()
    box = widget.locator(".lw-canvas").bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + 110, box["y"] + 1.5 * box["height"] / n_rows(page))
    row, col, total, logit = shown_attribution(page)
    assert abs(total - logit) <= 2e-3, (total, logit)
    kernel = run_code(page, f"a = widget.attribution({row}, {col}); print(a.label, round(a.total, 3))").split()
    assert kernel[0] == f"{rows - 1}.attn" and abs(float(kernel[1]) - total) <= 1e-3, kernel
    assert widget.locator(".lw-writers canvas").count() == 1
    widget.locator(".lw-writers").scroll_into_view_if_needed()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "jupyterlab-attribution.png"))
    # W on the selected cell: Escape unpins, an arrow moves the selection, W explains it.
    page.keyboard.press("Escape")
    widget.locator(".lw-canvas").scroll_into_view_if_needed()
    box = widget.locator(".lw-canvas").bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + 10, box["y"] + 8)  # the row labels: focuses the heatmap
    for key in ["ArrowRight", "ArrowDown", "ArrowDown"]:  # the first arrow selects the top-left cell
        page.keyboard.press(key)
    page.wait_for_function("() => document.querySelector('.lens-widget').dataset.selected === '2,0'")
    page.keyboard.press("w")
    row2, _, total2, logit2 = shown_attribution(page, after=f"{row},{col}")
    assert abs(total2 - logit2) <= 2e-3 and row2 != row
    widget.locator(".lw-writers-close").click()
    page.wait_for_function("() => document.querySelector('.lens-widget .lw-writers').hidden")
    widget.locator(".lw-sublayers").click()
    page.wait_for_function(f"() => Number(document.querySelector('.lens-widget').dataset.rows) === {rows}")
    wait_until_idle(page)


WATCH_COLUMNS = """() => {
    const w = document.querySelector('.lens-widget');
    window.seenColumns = [];
    new MutationObserver(() => window.seenColumns.push(Number(w.dataset.nTokens)))
        .observe(w, {attributes: true, attributeFilter: ['data-n-tokens']});
}"""


def check_generation(page: Any) -> None:
    """The generate button writes token after token, each a new column as it comes; stop ends it, and
    the kernel, the text boxes and the picture agree on what was written."""
    widget = page.locator(".lens-widget").first
    before = n_tokens(page)
    page.evaluate(WATCH_COLUMNS)
    widget.locator(".lw-generate-count").fill("400")
    widget.locator(".lw-generate-go").click()
    page.wait_for_function(f"() => window.seenColumns.filter((n) => n > {before}).length >= 6", timeout=30_000)
    widget.locator(".lw-generate-stop").click()
    page.wait_for_function("() => document.querySelector('.lens-widget .lw-generate').dataset.generating === 'false'")
    wait_until_idle(page)
    stopped = n_tokens(page)
    page.wait_for_timeout(1000)
    assert n_tokens(page) == stopped, "nothing is written after stop"
    grew = sorted({n for n in page.evaluate("() => window.seenColumns") if n > before})
    # The picture grows as the tokens come, not at the end (the kernel sends one update per token,
    # tests/test_generate.py; a frame draws every update that arrived since the last one).
    assert len(grew) >= 6, grew
    assert stopped < before + 400, "stopped before it was done"
    scrolled = page.evaluate("() => document.querySelector('.lens-widget .lw-scroll').scrollLeft")
    assert scrolled > 0, "the heatmap follows the writing"
    state = (
        "print(widget.generating, len(widget.session.tokens.ids),"
        " widget.generated[-1][1] == len(widget.text.encode('utf-16-le')) // 2)"
    )
    assert run_code(page, state).split() == ["False", str(stopped), "True"]
    assert_boxes_show_the_kernels_text(page)
    widget.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "jupyterlab-generated.png"))


def test_ab_diff_in_jupyterlab(browser: Any, ab_lab: str) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    screenshot_on_failure(page, "ab", lambda: drive_ab(page, ab_lab))


def drive_ab(page: Any, url: str) -> None:
    sent: list[str] = []
    page.on("websocket", lambda ws: ws.on("framesent", lambda payload: sent.append(str(payload))))
    run_all_until_drawn(page, url)
    widget = page.locator(".lens-widget").first
    widget.scroll_into_view_if_needed()
    assert widget.get_attribute("data-mode") == "diff", "an A/B widget opens on the diff"
    assert int(widget.get_attribute("data-marked") or 0) > 0, "cells whose top-1 tokens differ are marked"
    assert page.evaluate(CANVAS_COLOURS, ".lens-widget .lw-canvas") > 8
    assert [b.text_content() for b in widget.locator(".lw-mode").all()] == ["A: early", "B: final", "diff B − A"]

    hover_first_cell(page)
    page.wait_for_selector(".lens-widget .lw-tooltip:not([hidden])", timeout=10_000)
    assert widget.locator(".lw-tooltip .lw-tip-column").count() == 2
    assert widget.locator(".lw-tooltip .lw-tip-row").count() == 20, "both models' top-10, side by side"
    assert "JS(A, B)" in (widget.locator(".lw-tooltip").text_content() or "")
    bars = "(t) => [...t.querySelectorAll('.lw-tip-bar')].map((b) => b.getBoundingClientRect().width)"
    widths = widget.locator(".lw-tooltip").evaluate(bars)
    assert min(widths) >= 60, f"the probability bars are {min(widths):.0f} px wide, too narrow to read"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "ab.png"))

    page.mouse.move(5, 5)
    page.wait_for_timeout(500)
    before = len(sent)
    picture = page.evaluate("() => document.querySelector('.lens-widget .lw-canvas').toDataURL()")
    widget.locator(".lw-mode[data-mode='a']").click()
    page.wait_for_function(
        "(before) => document.querySelector('.lens-widget .lw-canvas').toDataURL() !== before", arg=picture
    )
    assert widget.get_attribute("data-mode") == "a"
    widget.locator(".lw-mode[data-mode='diff']").click()
    page.wait_for_timeout(500)
    assert len(sent) == before, "switching modes sends nothing to the kernel"
    # A clicked cell's attribution: both models explain the same token, side by side.
    hover_first_cell(page)
    box = widget.locator(".lw-canvas").bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + 110, box["y"] + 8)
    shown_attribution(page)
    assert widget.locator(".lw-writers").get_attribute("data-models") == "2"
    names = [n.text_content() for n in widget.locator(".lw-writers-name").all()]
    assert names == ["A: early", "B: final"], names
    for summary in widget.locator(".lw-writers-summary").all():
        found = SUM_AND_LOGIT.search(summary.text_content() or "")
        assert found and abs(float(found[1]) - float(found[2])) <= 2e-3
    page.keyboard.press("Escape")  # the tooltip; the panel stays
    widget.locator(".lw-writers").scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "ab-attribution.png"))


REMOTE_NOTEBOOK = {
    "cells": [
        {
            "cell_type": "code",
            "metadata": {},
            "outputs": [],
            "execution_count": None,
            "source": [
                "import copy, warnings\n",
                "import nnsight\n",
                "from lens_widget import LensWidget, load_demo\n",
                "model, tokenizer, lens = load_demo('final')\n",
                "warnings.simplefilter('ignore')\n",
                "lm = nnsight.LanguageModel(model, tokenizer=copy.deepcopy(tokenizer))\n",
                "widget = LensWidget(lm, tokenizer, remote='local', text='The built-in function')\n",
                "widget",
            ],
        }
    ],
    "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    "nbformat": 4,
    "nbformat_minor": 5,
}
WATCH_STATUS = """() => {
  window.statuses = [];
  const status = document.querySelector('.lens-widget .lw-status');
  const watch = new MutationObserver(() => window.statuses.push(status.textContent));
  watch.observe(status, {childList: true, characterData: true, subtree: true});
}"""


@pytest.fixture(scope="module")
def remote_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    pytest.importorskip("nnsight")
    root = tmp_path_factory.mktemp("remote")
    (root / "remote.ipynb").write_text(json.dumps(REMOTE_NOTEBOOK))
    with jupyter_server(root, "remote.ipynb", "lab") as url:
        yield url


def test_remote_mode_in_jupyterlab(browser: Any, remote_lab: str) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    screenshot_on_failure(page, "remote", lambda: drive_remote(page, remote_lab))


def drive_remote(page: Any, url: str) -> None:
    run_all_until_drawn(page, url)
    page.evaluate(WATCH_STATUS)
    type_at_end(page, " len() returns the number of items")
    page.wait_for_function("() => window.statuses.some((s) => s === 'running…')", timeout=30_000)
    page.wait_for_function(
        "() => !document.querySelector('.lens-widget .lw-status').textContent.endsWith('…')", timeout=60_000
    )
    assert_boxes_show_the_kernels_text(page, "The built-in function len() returns the number of items")
    tokens = int(run_code(page, "print(len(widget.session.tokens.ids))"))
    page.wait_for_function("(n) => Number(document.querySelector('.lens-widget').dataset.nTokens) === n", arg=tokens)
    assert page.evaluate(CANVAS_COLOURS, ".lens-widget .lw-canvas") > 8
    run_code(page, "widget.text = 'add 13 2'")
    assert_boxes_show_the_kernels_text(page, "add 13 2")
    type_at_end(page, " 15")
    page.wait_for_function(
        "() => !document.querySelector('.lens-widget .lw-status').textContent.endsWith('…')", timeout=60_000
    )
    assert_boxes_show_the_kernels_text(page, "add 13 2 15")
    assert run_code(page, "print(widget.session.text, '|', widget.error)").strip() == "add 13 2 15 |"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "remote.png"))


def last_column_tooltip(page: Any) -> str:
    """Scroll the first widget to its end and hover the last column's top cell: the tooltip's text."""
    page.locator(".lens-widget .lw-scroll").first.evaluate("(s) => { s.scrollLeft = s.scrollWidth; }")
    page.wait_for_timeout(200)
    box = page.locator(".lens-widget .lw-canvas").first.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] - 20, box["y"] + 8)
    page.wait_for_selector(".lens-widget .lw-tooltip:not([hidden])", timeout=5_000)
    return page.locator(".lens-widget .lw-tooltip").first.text_content() or ""


def test_to_html_opens_offline_from_file_and_hovers(browser: Any, tmp_path: Path) -> None:
    """widget.to_html's page: file://, every network request refused, no kernel."""
    import lens_widget

    widget = lens_widget.demo("add 13 2 15\nCopy: <b>x</b>&$\nPaste: <b>x</b>&$")
    widget.layer_stride = 2
    widget.statistic = "max_probability"
    path = widget.to_html(tmp_path / "lens.html")
    assert "<b>x</b>" not in path.read_text(), "model strings never appear as markup"
    tokens = [lens_widget.load_demo()[1].decode([i]) for i in widget.session.tokens.ids]

    page = browser.new_page(viewport={"width": 1280, "height": 700})
    network: list[str] = []

    def refuse(route: Any) -> None:
        if route.request.url.startswith(("file:", "blob:", "data:")):
            route.continue_()
        else:
            network.append(route.request.url)
            route.abort()

    page.route("**/*", refuse)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))

    def drive() -> None:
        page.goto(path.as_uri())
        page.wait_for_function("() => Number(document.querySelector('.lens-widget')?.dataset.nTokens) > 0")
        root = page.locator(".lens-widget")
        assert int(root.get_attribute("data-n-tokens") or 0) == len(tokens)
        assert root.get_attribute("data-rows") == "3", "stride 2 of 4 layers: 0, 2 and the output"
        assert root.get_attribute("data-statistic") == "max_probability"
        page.wait_for_function("() => document.querySelector('.lens-widget').dataset.snapshot === 'true'")
        assert "no kernel is connected" in (page.locator(".lw-snapshot").text_content() or "")
        assert page.locator(".lens-widget textarea").evaluate("(t) => t.readOnly")
        assert root.get_attribute("data-busy") == "false"
        assert page.evaluate(CANVAS_COLOURS, ".lens-widget .lw-canvas") > 8
        assert page.locator(".lens-widget b").count() == 0
        # Hover the last column: its input token is the text's last token.
        assert f"position {len(tokens) - 1}" in last_column_tooltip(page)
        # The statistic buttons still work with no kernel.
        picture = page.evaluate("() => document.querySelector('.lens-widget .lw-canvas').toDataURL()")
        page.mouse.move(5, 5)
        page.locator(".lens-widget [data-statistic='entropy']").click()
        page.wait_for_function(
            "(before) => document.querySelector('.lens-widget .lw-canvas').toDataURL() !== before", arg=picture
        )
        # The view's own PNG: every column, at twice the CSS size, offered as a download.
        with page.expect_download() as download:
            page.locator(".lens-widget .lw-png").click()
        saved = tmp_path / "from-view.png"
        download.value.save_as(saved)
        data = saved.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        # The heatmap and legend, with the trajectory panel (150 CSS px, as wide as the view) under them.
        panel_width = page.evaluate("() => parseFloat(document.querySelector('.lw-panel-canvas').style.width)")
        assert width == 2 * max(54 + 58 * len(tokens), panel_width) and height == 2 * (3 * 22 + 24 + 28 + 150)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "to_html.png"))
        assert network == [], f"the page asked the network for {network}"
        assert errors == []

    screenshot_on_failure(page, "to_html", drive)


SAVED_NOTEBOOK_CELLS = [
    "import lens_widget\nwidget = lens_widget.demo('add 13 2 ')\nwidget",
    "widget.text = 'add 13 2 15\\ninc 41 '",
    "widget.text = 'add 13 2 15\\ninc 41 42\\nCopy: Zq7&x\\nPaste: Zq7&x'",
]
FINAL_TEXT = "add 13 2 15\ninc 41 42\nCopy: Zq7&x\nPaste: Zq7&x"


def assert_page_shows_the_final_picture(page: Any, url: str) -> None:
    """A saved page, replayed with no kernel: the last text's whole picture, a snapshot note, no spinner."""
    refused = serve_cdn_locally(page)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    page.wait_for_function("() => Number(document.querySelector('.lens-widget')?.dataset.nTokens) > 0", timeout=30_000)
    tokens = lens_widget_tokens(FINAL_TEXT)
    root = page.locator(".lens-widget")
    assert int(root.get_attribute("data-n-tokens") or 0) == len(tokens), "the last text, not the first"
    assert page.evaluate(CANVAS_COLOURS, ".lens-widget .lw-canvas") > 8, "the heatmap is drawn"
    page.wait_for_function("() => document.querySelector('.lens-widget').dataset.snapshot === 'true'", timeout=10_000)
    assert root.get_attribute("data-busy") == "false", "no spinner without a kernel"
    tip = last_column_tooltip(page)
    assert f"position {len(tokens) - 1}" in tip and f"input: {tokens[-1]}" in tip, tip
    assert not [u for u in refused if any(part in u for part in ("anywidget", "html-manager", "require"))]
    assert errors == []


def lens_widget_tokens(text: str) -> list[str]:
    import lens_widget

    tokenizer = lens_widget.load_demo()[1]
    return [tokenizer.decode([i]) for i in tokenizer(text)["input_ids"]]


def test_a_saved_notebook_converted_by_nbconvert_shows_the_last_picture(browser: Any, tmp_path: Path) -> None:
    """Create, set the text twice, save, `jupyter nbconvert --execute --to html`, open it."""
    import subprocess
    import sys

    import nbformat

    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in SAVED_NOTEBOOK_CELLS]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, tmp_path / "saved.ipynb")
    command = [sys.executable, "-m", "jupyter", "nbconvert", "--execute", "--to", "html", "saved.ipynb"]
    subprocess.run(command, cwd=tmp_path, check=True, capture_output=True, timeout=300)
    html = (tmp_path / "saved.html").read_text()
    assert "application/vnd.jupyter.widget-state+json" in html
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    screenshot_on_failure(
        page, "nbconvert", lambda: assert_page_shows_the_final_picture(page, (tmp_path / "saved.html").as_uri())
    )


def test_embed_minimal_html_with_default_arguments_shows_the_picture(browser: Any, tmp_path: Path) -> None:
    import re

    from ipywidgets.embed import embed_minimal_html

    import lens_widget

    widget = lens_widget.demo("add 13 2 ")
    widget.text = FINAL_TEXT
    embed_minimal_html(tmp_path / "embed.html", views=[widget], title="lens")
    # The page pins require.js from a CDN by its hash; the local copy is the same release, not the same bytes.
    html = re.sub(r' (integrity|crossorigin)="[^"]*"', "", (tmp_path / "embed.html").read_text())
    (tmp_path / "embed.html").write_text(html)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    screenshot_on_failure(
        page, "embed", lambda: assert_page_shows_the_final_picture(page, (tmp_path / "embed.html").as_uri())
    )


def test_a_notebook_saved_in_jupyterlab_reopens_on_its_last_picture(browser: Any, tmp_path: Path) -> None:
    """Run All, type, save with widget state on; reopen (a new kernel that has not run): every widget
    shows its last picture, the typing included, as a snapshot with no spinner."""
    shutil.copy(ROOT / "examples" / "quickstart.ipynb", tmp_path / "quickstart.ipynb")
    settings = tmp_path / ".jupyter" / "lab" / "user-settings" / "@jupyter-widgets" / "jupyterlab-manager"
    settings.mkdir(parents=True)
    (settings / "plugin.jupyterlab-settings").write_text(json.dumps({"saveState": True}))
    widgets = "[...document.querySelectorAll('.lens-widget')]"
    all_drawn = f"() => {widgets}.length >= 4 && {widgets}.every((w) => Number(w.dataset.nTokens) > 0)"

    with jupyter_server(tmp_path, "quickstart.ipynb", "lab") as url:
        page = browser.new_page(viewport={"width": 1280, "height": 900})

        def type_and_save() -> None:
            open_notebook(page, url)
            run_all(page)
            page.wait_for_function(all_drawn, timeout=180_000)
            type_at_end(page, " 9 9")
            page.wait_for_timeout(1500)  # the snapshot catches up once typing pauses
            page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
            page.wait_for_timeout(1500)

        screenshot_on_failure(page, "save", type_and_save)
    saved = json.loads((tmp_path / "quickstart.ipynb").read_text())["metadata"]["widgets"]
    headers = [
        m["state"]["snapshot"]["header"]
        for m in saved["application/vnd.jupyter.widget-state+json"]["state"].values()
        if "snapshot" in m["state"]
    ]
    assert len(headers) == 4 and all(h["kind"] == "full" for h in headers)
    assert [h["pins"] for h in headers].count(["j"]) == 1, "the quick start's pinned item is saved"

    with jupyter_server(tmp_path, "quickstart.ipynb", "lab") as url:
        page = browser.new_page(viewport={"width": 1280, "height": 900})

        def reopen() -> None:
            page.goto(url)
            page.wait_for_function(all_drawn, timeout=120_000)
            page.wait_for_function(f"() => {widgets}.every((w) => w.dataset.snapshot === 'true')", timeout=15_000)
            first = page.locator(".lens-widget").first
            assert first.locator("textarea").input_value() == QUICKSTART_TEXT + " 9 9"
            assert int(first.get_attribute("data-n-tokens") or 0) == max(h["n_tokens"] for h in headers)
            assert all(w.get_attribute("data-busy") == "false" for w in page.locator(".lens-widget").all())
            # The pinned widget shows p(j) and its panel from the saved state alone.
            follow = page.locator(".lens-widget[data-statistic='pin:j']")
            assert follow.count() == 1
            assert int(follow.locator(".lw-panel").get_attribute("data-lines") or 0) == 1

        screenshot_on_failure(page, "reopen", reopen)


CHAT_NOTEBOOK_SOURCE = [
    "import sys\n",
    f"sys.path.insert(0, {str(ROOT / 'tests')!r})\n",
    "from test_chat import MESSAGES, chat_tokenizer\n",
    "from tiny_models import tiny_model\n",
    "from lens_widget import LensWidget\n",
    "tokenizer = chat_tokenizer()\n",
    "model = tiny_model('llama', vocab_size=len(tokenizer), max_position_embeddings=512)\n",
    "widget = LensWidget.chat(model, tokenizer, MESSAGES)\n",
    "widget",
]


@pytest.fixture(scope="module")
def chat_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("chat")
    notebook = {**REMOTE_NOTEBOOK, "cells": [{**REMOTE_NOTEBOOK["cells"][0], "source": CHAT_NOTEBOOK_SOURCE}]}
    (root / "chat.ipynb").write_text(json.dumps(notebook))
    with jupyter_server(root, "chat.ipynb", "lab") as url:
        yield url


def test_a_chat_in_jupyterlab(browser: Any, chat_lab: str) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    screenshot_on_failure(page, "chat", lambda: drive_chat(page, chat_lab))


def drive_chat(page: Any, url: str) -> None:
    """A conversation drawn with its roles band; generate writes the assistant's reply, which joins the
    messages in Python; typing in a user's message edits that message."""
    run_all_until_drawn(page, url)
    widget = page.locator(".lens-widget").first
    assert run_code(page, "print(len(widget.messages), widget.roles[-1]['role'])").split() == ["6", "assistant"]
    before = n_tokens(page)
    widget.locator(".lw-generate-count").fill("8")
    widget.locator(".lw-generate-go").click()
    page.wait_for_function(f"() => Number(document.querySelector('.lens-widget').dataset.nTokens) === {before + 8}")
    page.wait_for_function("() => document.querySelector('.lens-widget .lw-generate').dataset.generating === 'false'")
    wait_until_idle(page)
    reply = run_code(page, "print(widget.messages[-1]['role'], len(widget.messages), widget.generated[-1][1])").split()
    assert reply[:2] == ["assistant", "7"], reply
    at_end = "(s) => s.scrollLeft + s.clientWidth >= s.scrollWidth - 2"
    assert widget.locator(".lw-scroll").evaluate(at_end), "the heatmap followed the reply to its last column"
    assert_boxes_show_the_kernels_text(page)
    widget.scroll_into_view_if_needed()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "chat.png"))
    # Typing at the end of the system message ("Be brief.") edits that message.
    box = widget.locator("textarea")
    box.click()
    text = box.input_value()
    assert "<|im_start|>system" in text
    at = text.index("Be brief.") + len("Be brief.")
    page.evaluate("(at) => document.querySelector('.lens-widget textarea').setSelectionRange(at, at)", at)
    page.keyboard.type(" Really", delay=30)
    page.wait_for_function(
        "() => document.querySelector('.lens-widget textarea').value.includes('Be brief. Really')", timeout=10_000
    )
    wait_until_idle(page)
    page.wait_for_timeout(500)
    assert run_code(page, "print(widget.messages[0]['content'])").strip() == "Be brief. Really"
