"""The demo model shipped inside the package: a small GPT-NeoX that really copies, counts and adds a digit.

It was trained by `scripts/train_demo.py` (seeded, offline, about 20 CPU-minutes) on the Python
documentation's topics and on three generated tasks, with a tuned lens for it and for an early
checkpoint of the same run, so the quick start shows an answer forming across layers without any
download:

    Copy: A!2j!#u&NGApS&MkkHe8Gm!#      inc 13 14      add 13 2 15
    Paste: A!2j!#u&NGApS&MkkHe8Gm!#

`demo_files/report.json` records the run: settings, held-out accuracies, per-layer KL of both lenses,
times, sizes and the sha256 of every weight file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch

from .errors import LensWidgetError
from .lenses import TunedLens

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerFast

    from .widget import LensWidget

DEMO_FILES = Path(__file__).parent / "demo_files"
"""The shipped run: model/, early/ (checkpoints with their tokenizer), model_lens/, early_lens/, report.json."""

DEMO_TEXT = "Copy: A!2j!#u&NGApS&MkkHe8Gm!#\nPaste: A!2j!#u&NGApS&MkkHe8Gm!#\ninc 13 14\nadd 13 2 15\n"
"""The tasks the demo model learnt, each with its answer, so every answer token has a column."""

Checkpoint = Literal["final", "early"]
_FOLDERS: dict[str, str] = {"final": "model", "early": "early"}


def demo_report() -> dict[str, Any]:
    """The training report of the shipped run (accuracies, KL per layer, times, sizes, hashes)."""
    return json.loads(_file("report.json").read_text())


def load_demo(checkpoint: Checkpoint = "final") -> tuple[PreTrainedModel, PreTrainedTokenizerFast, TunedLens]:
    """(model, tokenizer, tuned lens) of one checkpoint, in float32 on the CPU, in eval mode."""
    from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast
    from transformers.utils import logging as hf_logging

    if checkpoint not in _FOLDERS:
        raise ValueError(f"checkpoint must be one of {sorted(_FOLDERS)}, got {checkpoint!r}")
    folder = _file(_FOLDERS[checkpoint])
    shown = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # a 2 MB local file: a progress bar is noise in the quick start
    try:
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    finally:
        if shown:
            hf_logging.enable_progress_bar()
    model.config._name_or_path = f"lens-widget-demo/{checkpoint}"  # what the widget and exports call it
    tokenizer = PreTrainedTokenizerFast.from_pretrained(folder)
    lens = TunedLens.load(_file(f"{_FOLDERS[checkpoint]}_lens"), model)
    return model, tokenizer, lens


def demo(text: str = DEMO_TEXT, *, compare: bool = False, **widget_options: Any) -> LensWidget:
    """A LensWidget on the demo model with its tuned lens.

    compare=True: the A/B widget of the early checkpoint (A) against the final model (B), opened on
    the diff, so that it shows what the rest of training changed. Other keyword arguments go to
    LensWidget.
    """
    from .widget import LensWidget

    model, tokenizer, lens = load_demo("final")
    if not compare:
        return LensWidget(model, tokenizer, lens, text=text, **widget_options)
    early, _, early_lens = load_demo("early")
    training = demo_report()["training"]
    names = (f"early (step {training['early_step']})", f"final (step {training['steps']})")
    widget_options.setdefault("names", names)
    widget_options.setdefault("mode", "diff")
    return LensWidget(early, tokenizer, early_lens, model_b=model, lens_b=lens, text=text, **widget_options)


def _file(name: str) -> Path:
    path = DEMO_FILES / name
    if not path.exists():
        raise LensWidgetError(
            f"The demo model's files are missing ({path}). They ship inside the package; reinstall "
            "lens-widget, or rebuild them with `python scripts/train_demo.py --out lens_widget/demo_files`."
        )
    return path
