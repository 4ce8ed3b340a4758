"""Re-shoot the README's screenshots from the quick-start notebook, in JupyterLab and Debian's chromium.

    python scripts/screenshots.py            # writes docs/jupyterlab.png and docs/ab.png

It runs the notebook as a user would (Run All), scrolls each widget to the copied string and hovers
the cell where the copy is being decided, so the pictures show what the README says they show.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from browser_support import CHROMIUM, CHROMIUM_ARGS, jupyter_server, open_notebook, run_all  # noqa: E402

from lens_widget import DEMO_TEXT, load_demo  # noqa: E402

CELL_WIDTH, CELL_HEIGHT = 58, 22
"""js/heatmap.ts's cell size in CSS pixels."""
LABEL_WIDTH = 12 + 7 * len("output")
"""js/heatmap.ts's row-label width for the demo's labels (0 … 3, output)."""


def paste_column(offset: int) -> int:
    """The column `offset` tokens into the pasted string of DEMO_TEXT (its cell predicts the next one)."""
    _, tokenizer, _ = load_demo()
    prefix = DEMO_TEXT[: DEMO_TEXT.index("Paste: ") + len("Paste: ")]
    return len(tokenizer(prefix)["input_ids"]) - 1 + offset


def shoot(page: Any, index: int, column: int, row: int, path: Path) -> None:
    """Scroll widget `index` so `column` sits a few cells from the left, hover (row, column), screenshot."""
    widget = page.locator(".lens-widget").nth(index)
    widget.scroll_into_view_if_needed()
    scroll_left = max(0, column - 5) * CELL_WIDTH
    widget.locator(".lw-scroll").evaluate(f"(s) => {{ s.scrollLeft = {scroll_left}; }}")
    page.wait_for_timeout(500)
    canvas = widget.locator(".lw-canvas").bounding_box()
    assert canvas is not None
    x = canvas["x"] + LABEL_WIDTH + column * CELL_WIDTH - scroll_left + CELL_WIDTH / 2
    page.mouse.move(x, canvas["y"] + row * CELL_HEIGHT + CELL_HEIGHT / 2)
    page.wait_for_function(
        "([w, cell]) => w.dataset.selected === cell", arg=[widget.element_handle(), f"{row},{column}"], timeout=10_000
    )
    page.wait_for_timeout(500)
    box = widget.bounding_box()
    assert box is not None
    clip = {"x": box["x"] - 8, "y": box["y"] - 8, "width": box["width"] + 16, "height": 520}
    page.screenshot(path=str(path), clip=clip)
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    parser.add_argument("--offset", type=int, default=7, help="token of the pasted string to hover")
    parser.add_argument("--row", type=int, default=1, help="heatmap row to hover (0 is the output row)")
    args = parser.parse_args()
    if CHROMIUM is None:
        raise SystemExit("needs Debian's chromium: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    column = paste_column(args.offset)
    with tempfile.TemporaryDirectory() as folder, sync_playwright() as playwright:
        root = Path(folder)
        shutil.copy(ROOT / "examples" / "quickstart.ipynb", root / "quickstart.ipynb")
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        with jupyter_server(root, "quickstart.ipynb", "lab") as url:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            open_notebook(page, url)
            run_all(page)
            page.wait_for_function(
                "() => [...document.querySelectorAll('.lens-widget')].length >= 3 && "
                "[...document.querySelectorAll('.lens-widget')].every((w) => Number(w.dataset.nTokens) > 0)",
                timeout=180_000,
            )
            args.out.mkdir(parents=True, exist_ok=True)
            shoot(page, 0, column, args.row, args.out / "jupyterlab.png")
            shoot(page, 2, column, args.row, args.out / "ab.png")
        browser.close()


if __name__ == "__main__":
    main()
