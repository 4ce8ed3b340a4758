"""Layering: the engine works without the Jupyter widget stack, and the package root imports the
widget only when it is asked for.

Each check runs in a fresh interpreter, where a sys.meta_path finder makes anywidget, traitlets and
ipywidgets (and their submodules) fail to import, as on a machine without them.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import lens_widget

TESTS = Path(__file__).resolve().parent
WIDGET_STACK = ("anywidget", "traitlets", "ipywidgets")

BLOCKER = f"""
import sys

class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {WIDGET_STACK!r}:
            raise ImportError(f"No module named {{name!r}} (blocked by the test)")
        return None

sys.meta_path.insert(0, Blocker())
"""


def run(code: str) -> str:
    """Run `code` after the blocker in a fresh interpreter (tests/ on the path); its stdout."""
    script = BLOCKER + textwrap.dedent(code)
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=TESTS, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_the_blocker_really_blocks_the_widget_stack() -> None:
    out = run(
        """
        for name in ("anywidget", "traitlets", "ipywidgets.widgets"):
            try:
                __import__(name)
            except ImportError:
                print("blocked", name)
        """
    )
    assert out.split("\n")[:3] == ["blocked anywidget", "blocked traitlets", "blocked ipywidgets.widgets"]


def test_a_session_imports_and_runs_an_ab_update_without_the_widget_stack() -> None:
    out = run(
        """
        import lens_widget
        import lens_widget.session
        from lens_widget import LensSession, apply_update
        from lens_widget.payload import payload_of
        from tiny_models import tiny_model, tiny_tokenizer

        a, b = tiny_model("gpt2", vocab_size=300), tiny_model("gpt2", vocab_size=300, seed=1)
        session = LensSession(a, tiny_tokenizer(300), model_b=b)
        state = apply_update(None, payload_of(session.set_text("Paris is the capital")))
        state = apply_update(state, payload_of(session.set_text("Paris is the capital of France")))
        print("diff", state.diff.shape)
        print("loaded", sorted(m for m in sys.modules if m.split(".")[0] in ("anywidget", "traitlets", "ipywidgets")))
        print("widget module", "lens_widget.widget" in sys.modules)
        """
    )
    assert "diff (4, 4, " in out
    assert "loaded []" in out and "widget module False" in out


def test_asking_for_the_widget_without_the_stack_says_what_to_install() -> None:
    out = run(
        """
        import lens_widget
        for name in ("LensWidget", "plot_lens", "compare_models"):
            try:
                getattr(lens_widget, name)
            except ImportError as exc:
                print(name, "->", exc)
        """
    )
    lines = out.strip().split("\n")
    assert [line.split(" ->")[0] for line in lines] == ["LensWidget", "plot_lens", "compare_models"]
    assert all("pip install anywidget ipywidgets traitlets" in line and "LensSession works" in line for line in lines)


def test_the_package_root_resolves_the_widget_lazily_when_the_stack_is_installed() -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, lens_widget; print('lens_widget.widget' in sys.modules); "
            "from lens_widget.widget import LensWidget; print(lens_widget.LensWidget is LensWidget)",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout
    assert out.split() == ["False", "True"]


def test_every_exported_name_resolves_and_unknown_names_are_attribute_errors() -> None:
    for name in lens_widget.__all__:
        assert getattr(lens_widget, name) is not None, name
    assert {"LensWidget", "plot_lens", "compare_models"} <= set(dir(lens_widget))
    try:
        lens_widget.NoSuchThing  # noqa: B018
    except AttributeError as exc:
        assert "no attribute 'NoSuchThing'" in str(exc)
    else:
        raise AssertionError("an unknown name must be an AttributeError")


def local_imports(module: str) -> set[str]:
    """The lens_widget modules `module` imports, directly or through others (read from the source)."""
    package = Path(lens_widget.__file__).parent
    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen or not (package / f"{name}.py").exists():
            continue
        seen.add(name)
        for node in ast.walk(ast.parse((package / f"{name}.py").read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                todo += [node.module] if node.module else [alias.name for alias in node.names]
    return seen - {module}


def test_the_engine_imports_no_wire_module() -> None:
    """The session describes changes (update.Update); encoding them for a view is the widget's."""
    for engine in ("session", "remote_session", "grid", "track"):
        assert "payload" not in local_imports(engine), engine
    assert {"cells", "update", "grid", "track"} <= local_imports("session")
    assert "cells" in local_imports("payload")
