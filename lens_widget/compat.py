"""Drop-ins for tuned-lens users: `plot_lens` and `compare_models`, with the seed notebook's argument
names, each returning a live LensWidget instead of a static figure.

tuned-lens's plots take token ids; the widget analyses text, so the ids are decoded to text (special
tokens skipped: the session adds the tokenizer's own again). When that text does not tokenize back
to the same ids (a tokenizer that does not round-trip, ids built by hand), a warning says so and the
widget shows the re-tokenized text. `start_pos` / `end_pos` choose the token columns shown; the whole
context is still computed, and the text stays editable.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from .lenses import Lens
from .statistics import STATISTICS
from .text import tokenize
from .widget import LensWidget

STATISTIC_NAMES: dict[str, str] = {name: name for name in STATISTICS} | {
    "ce": "cross_entropy",
    "kl": "forward_kl",
    "max_prob": "max_probability",
}
"""tuned-lens's statistic names (and short forms) → ours."""

DIVERGENCES: dict[str, str] = {"kl": "kl_ab", "kl_reverse": "kl_ba", "js": "js"}
"""compare_models's `divergence` → the diff statistic shown: KL(A‖B), KL(B‖A), Jensen–Shannon."""


def plot_lens(
    model: nn.Module,
    tokenizer: Any,
    lens: Lens | None = None,
    layer_stride: int = 1,
    input_ids: torch.Tensor | Sequence[int] | None = None,
    start_pos: int = 0,
    end_pos: int | None = None,
    statistic: str = "entropy",
    **kwargs: Any,
) -> LensWidget:
    """tuned-lens's `plot_lens`, as a live widget: one model through `lens` (None: the logit lens)."""
    name = _choose(statistic, STATISTIC_NAMES, "statistic")
    text = _text_of(tokenizer, input_ids)
    return LensWidget(
        model,
        tokenizer,
        lens,
        text=text,
        statistic=name,
        layer_stride=layer_stride,
        token_range=_token_range(start_pos, end_pos),
        **kwargs,
    )


def compare_models(
    model_a: nn.Module,
    model_b: nn.Module,
    tokenizer: Any,
    lens: Lens | None = None,
    layer_stride: int = 1,
    input_ids: torch.Tensor | Sequence[int] | None = None,
    start_pos: int = 0,
    end_pos: int | None = None,
    divergence: str = "kl",
    *,
    lens_b: Lens | None = None,
    **kwargs: Any,
) -> LensWidget:
    """tuned-lens's `compare_models`, as a live A/B widget opened on the diff: model B against model A,
    cell by cell, through `lens` (B uses it too unless `lens_b` is given)."""
    shown = _choose(divergence, DIVERGENCES, "divergence")
    text = _text_of(tokenizer, input_ids)
    return LensWidget(
        model_a,
        tokenizer,
        lens,
        model_b=model_b,
        lens_b=lens_b,
        text=text,
        layer_stride=layer_stride,
        diff_statistic=shown,
        token_range=_token_range(start_pos, end_pos),
        **{"mode": "diff", **kwargs},
    )


def _choose(value: str, table: dict[str, str], what: str) -> str:
    if not isinstance(value, str) or value not in table:
        raise ValueError(f"{what} must be one of {sorted(table)}, got {value!r}")
    return table[value]


def _token_range(start_pos: int, end_pos: int | None) -> list[int | None]:
    for name, value in (("start_pos", start_pos), ("end_pos", end_pos)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    if end_pos is not None and end_pos <= start_pos:
        raise ValueError(f"end_pos ({end_pos}) must be after start_pos ({start_pos})")
    return [start_pos, end_pos]


def _ids(input_ids: torch.Tensor | Sequence[int]) -> list[int]:
    """Token ids from a [1, T] or [T] tensor, or a list."""
    if isinstance(input_ids, torch.Tensor):
        if input_ids.ndim == 2 and input_ids.shape[0] == 1:
            input_ids = input_ids[0]
        if input_ids.ndim != 1:
            raise ValueError(f"input_ids must be [T] or [1, T], got shape {tuple(input_ids.shape)}")
        return [int(i) for i in input_ids.tolist()]
    array = np.asarray(input_ids, dtype=object if not len(input_ids) else None)  # lists, numpy, nested
    if array.ndim == 2 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 1:
        raise ValueError(f"input_ids must be [T] or [1, T], got shape {array.shape}")
    if not all(isinstance(i, (int, np.integer)) and not isinstance(i, (bool, np.bool_)) for i in array.tolist()):
        raise ValueError("input_ids must be integers")
    return [int(i) for i in array.tolist()]


def _text_of(tokenizer: Any, input_ids: torch.Tensor | Sequence[int] | None) -> str:
    if input_ids is None:
        return ""
    ids = _ids(input_ids)
    text = tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)
    again = tokenize(tokenizer, text, max(1, len(ids) + 8)).ids
    if again != ids:
        warnings.warn(
            f"input_ids decode to text that tokenizes to other ids ({len(again)} tokens instead of {len(ids)}); "
            "the widget analyses that text, as the tokenizer reads it",
            stacklevel=3,
        )
    return text
