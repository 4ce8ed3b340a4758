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


def _ids(input_ids: torch.Tensor | Sequence[int], vocab: int) -> list[int]:
    """Token ids from a [1, T] or [T] tensor, array or list, each an integer in 0..vocab-1.

    Anything else is refused, naming the bad ids: int() would truncate a float, a bool would read as
    0 or 1, -1 overflows the tokenizer, and an id past the vocabulary decodes to nothing."""
    if isinstance(input_ids, torch.Tensor):
        values = input_ids.detach().cpu()
        if values.ndim == 2 and values.shape[0] == 1:
            values = values[0]
        if values.ndim != 1:
            raise ValueError(f"input_ids must be [T] or [1, T], got shape {tuple(values.shape)}")
        items = values.tolist()
    else:
        array = np.asarray(input_ids, dtype=object)  # lists, numpy, nested; object: a 6.5 leaves 5 an int
        if array.ndim == 2 and array.shape[0] == 1:
            array = array[0]
        if array.ndim != 1:
            raise ValueError(f"input_ids must be [T] or [1, T], got shape {array.shape}")
        items = array.tolist()
    bad = [(i, v) for i, v in enumerate(items) if not _is_token_id(v, vocab)]
    if bad:
        shown = ", ".join(f"{_shown(v)} at position {i}" for i, v in bad[:5]) + (
            f" (and {len(bad) - 5} more)" if len(bad) > 5 else ""
        )
        raise ValueError(f"input_ids must be integer token ids 0..{vocab - 1}; got {shown}")
    return [int(i) for i in items]


def _shown(value: Any) -> str:
    """A float32 6.7 reads 6.699999809265137 once in Python; the user typed 6.7."""
    return repr(round(value, 6)) if isinstance(value, float) else repr(value)


def _is_token_id(value: Any, vocab: int) -> bool:
    integer = isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
    return integer and 0 <= int(value) < vocab


def _text_of(tokenizer: Any, input_ids: torch.Tensor | Sequence[int] | None) -> str:
    if input_ids is None:
        return ""
    ids = _ids(input_ids, len(tokenizer))
    text = tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)
    again = tokenize(tokenizer, text, max(1, len(ids) + 8)).ids
    if again != ids:
        warnings.warn(
            f"input_ids decode to text that tokenizes to other ids ({len(again)} tokens instead of {len(ids)}); "
            "the widget analyses that text, as the tokenizer reads it",
            stacklevel=3,
        )
    return text
