"""What LensWidget refuses, kept out of the class so that it stays a list of traits.

Three doors let a wrong value in without a word: a view's state update (any front end may write any
synced trait), the constructor's **kwargs (which ipywidgets accepts and ignores when misspelt), and
the `lens` argument (an object, where the trait takes a name).
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Iterable
from typing import Any

from .lenses import Lens, LogitLens, TunedLens

KERNEL_ONLY = (
    "snapshot",
    "vocabulary",
    "lens_options",
    "roles",
    "generated",
    "generating",
    "remote_status",
    "instance",
)
"""Synced traits that no view writes (js/widget.ts commits only the toolbar's choices): a view that
overwrote `snapshot` would change what every saved notebook and page replays."""

LENS_NAMES = ("logit", "tuned")


def split_view_state(state: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A view's update as (what applies, the kernel-only names it tried to change)."""
    ignored = [name for name in state if name in KERNEL_ONLY]
    return {k: v for k, v in state.items() if k not in KERNEL_ONLY}, ignored


def ignored_message(names: list[str]) -> str:
    """The `error` trait's report: the view's change did not silently vanish."""
    if len(names) == 1:
        return f"Ignored a view's change to {names[0]}: only the kernel sets it"
    return f"Ignored a view's change to {', '.join(names[:-1])} and {names[-1]}: only the kernel sets them"


def check_options(cls: type, given: Iterable[str]) -> None:
    """Refuse keyword arguments that are neither a parameter nor a trait of `cls` (ipywidgets' own
    included, e.g. layout): ipywidgets would accept `sublayer=True` and ignore it."""
    traits = set(cls.class_trait_names())  # type: ignore[attr-defined]
    unknown = [name for name in given if name not in traits]
    if not unknown:
        return
    name = unknown[0]
    parameters = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "kwargs")]  # type: ignore[misc]
    candidates = sorted({*parameters, *(t for t in traits if not t.startswith("_"))})
    close = difflib.get_close_matches(name, candidates, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise TypeError(f"{cls.__name__}() got an unexpected keyword argument {name!r}{hint}")


def lens_argument(lens: Any, what: str) -> Lens | None:
    """The constructor's lens, which may also be named as the `lens` trait is: "logit" is the logit
    lens; "tuned" cannot be, since a name does not carry the trained parameters."""
    if lens is None or isinstance(lens, (TunedLens, LogitLens)) or not isinstance(lens, str):
        return lens  # other objects: the session checks them (a custom Lens may be valid)
    if lens == "logit":
        return LogitLens()
    if lens == "tuned":
        raise ValueError(
            f"{what}='tuned' needs a tuned lens, which a name does not carry: pass the lens itself, e.g. "
            "TunedLens.from_pretrained(model) (a lens trained by tuned-lens, from the Hub), "
            "TunedLens.load(folder), or train one with train_lens(model, texts, tokenizer=tokenizer)"
        )
    raise ValueError(f"{what} must be a TunedLens, a LogitLens, None, 'logit' or 'tuned', got {lens!r}")
