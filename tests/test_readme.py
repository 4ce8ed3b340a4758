"""The README's quick start and CI must not drift apart."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def quick_start_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block, "the quick start has a bash block"
    return [line for line in block.group(1).splitlines() if line.strip() and not line.startswith("#")]


def test_quick_start_is_exactly_two_commands() -> None:
    assert len(quick_start_commands()) == 2


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    test_command = quick_start_commands()[1]
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert test_command in ci


def test_the_main_command_opens_the_quickstart_notebook_at_the_printed_url() -> None:
    """JupyterLab prints its default URL: pointed at the notebook it opens, not the Launcher."""
    main = quick_start_commands()[0]
    opened = re.search(r"jupyter lab .*?(\S+\.ipynb)\s*$", main)
    assert opened, "the main command opens a notebook in JupyterLab"
    notebook = Path(opened.group(1))
    assert (ROOT / notebook).is_file()
    assert f"--LabApp.default_url=/lab/tree/{notebook.name}" in main


CPU_INDEX = "--index-url https://download.pytorch.org/whl/cpu"


def test_torch_is_installed_from_the_cpu_index() -> None:
    """PyPI's torch for Linux x86_64 is the CUDA build (527 MB plus nvidia-* requirements, several GB):
    both quick-start commands install PyTorch's CPU build, which is all the demo and the tests need."""
    script = (ROOT / "scripts" / "test.sh").read_text(encoding="utf-8")
    installs = re.findall(r"pip install[^&\n]*\btorch==[^&\n]*", quick_start_commands()[0] + "\n" + script)
    assert len(installs) == 2, installs
    assert all(CPU_INDEX in line for line in installs), installs


def test_git_ignores_the_checkpoints_jupyter_writes_beside_the_examples() -> None:
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", "examples/.ipynb_checkpoints/quickstart-checkpoint.ipynb"], cwd=ROOT
    )
    assert ignored.returncode == 0, ".ipynb_checkpoints/ is not ignored"
