"""Every example notebook runs top to bottom in a real kernel (nbclient), as a user's Run All would:
a cell that raises, or a widget whose kernel side reports an error, fails the test."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.ipynb"))
WIDGET = "application/vnd.jupyter.widget-view+json"
AFTER_RUN_ALL = {
    # Run All runs the last cell too: what it leaves is where the user's typing lands, so it must end
    # on a whole line (an unfinished "add 47 8 " made the next keystrokes part of its answer).
    "quickstart.ipynb": "assert widget.text.endswith('\\n'), repr(widget.text[-20:])",
}
"""A check run in the notebook's kernel after its own cells, as one more cell."""


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_notebook_runs_every_cell(path: Path, tmp_path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    if notebook.metadata.get("lens_widget", {}).get("needs_network"):
        pytest.skip("downloads a model from the Hugging Face Hub, which this machine cannot reach")
    check = AFTER_RUN_ALL.get(path.name)
    if check:
        notebook.cells.append(nbformat.v4.new_code_cell(check))
    where = {"metadata": {"path": str(tmp_path)}}
    client = NotebookClient(notebook, timeout=300, kernel_name="python3", resources=where)
    client.execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert any(WIDGET in o.get("data", {}) for o in outputs), "the notebook shows a widget"
    states = notebook.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {}).get("state", {})
    widgets = [s["state"] for s in states.values() if "error" in s.get("state", {})]
    assert widgets, "the widget's state was saved with the notebook"
    assert not any(w["error"] for w in widgets), json.dumps([w["error"] for w in widgets])
