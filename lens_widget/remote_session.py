"""A session for a model on NDIF: each edit is one nnsight trace of the whole text.

NDIF keeps no key/value cache between requests and this process holds no weights, so nothing is
incremental: `fetch` runs one trace (nnsight_trace.trace_grid) and returns the cells of the whole
text, without touching the session, so that the widget can run it off the kernel's main thread while
the user types on; `accept` then makes it the session's state, on the main thread. The widget's
controller calls the rest of LensSession's interface it uses, which this class mirrors for one model.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .cells import Cells
from .checks import check_max_tokens, check_stride, check_top_k, context_length, display_names
from .column import ColumnDetail
from .grid import LensGrid, row_labels, stride_rows
from .lenses import Lens, LogitLens, TunedLens
from .nnsight_trace import check_remote, check_remote_value, plan_of, trace_grid
from .pins import Pin, PinError
from .placement import is_nnsight
from .statistics import STATISTICS
from .text import Tokens, check_tokenizer, cut_notice, tokenize, vocabulary
from .update import Update


@dataclass(frozen=True)
class Fetched:
    """One trace's answer: the cells of `text` at `rows`, through `lens`, at `stride`."""

    text: str
    tokens: Tokens
    rows: tuple[int, ...]
    stride: int
    lens: Lens
    grid: LensGrid | None
    """None for a text of no tokens (nothing was sent)."""


class RemoteSession:
    """LensSession's interface, for one nnsight model traced per edit (on NDIF with remote=True)."""

    is_ab = False
    models = ("a",)

    @property
    def pending(self) -> list[tuple[int, int]]:
        return []  # every trace returns the whole text

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        lens: Lens | None = None,
        *,
        remote: bool | str = True,
        top_k: int = 10,
        layer_stride: int = 1,
        max_tokens: int | None = None,
        name: str | None = None,
    ) -> None:
        if not is_nnsight(model):
            raise TypeError(f"remote= takes an nnsight model (nnsight.LanguageModel), got {type(model).__name__}")
        self.remote = check_remote_value(remote)
        if self.remote is True:
            check_remote(model)  # said now, not at the first keystroke
        check_tokenizer(tokenizer)
        self.model = model
        self.tokenizer = tokenizer
        self.plan = plan_of(model)
        if lens is not None and not isinstance(lens, TunedLens):
            raise TypeError(f"lens must be a TunedLens or None (the logit lens), got {type(lens).__name__}")
        self._lens: Lens = LogitLens() if lens is None else lens
        self.top_k = check_top_k(top_k, self.plan.vocab_size)
        self.layer_stride = check_stride(layer_stride)
        self.max_tokens = check_max_tokens(max_tokens, context_length([model._module]))
        self.names = tuple(display_names([model._module], None, name))
        self._strings: list[str] | None = None
        self._tracing = threading.Lock()
        """One trace at a time: the widget's worker and the main thread (a stride change while a trace
        of the typing is out) never run the same model in two traces at once."""
        self.revision = 0
        self._state = Fetched("", tokenize(tokenizer, "", self.max_tokens), (), self.layer_stride, self._lens, None)

    @property
    def text(self) -> str:
        return self._state.text

    @property
    def tokens(self) -> Tokens:
        return self._state.tokens

    @property
    def num_layers(self) -> int:
        return self.plan.num_layers

    @property
    def lens(self) -> Lens:
        return self._state.lens

    @property
    def sublayers(self) -> bool:
        """Always False: a trace records the layers' hidden states only (set_sublayers says why)."""
        return False

    def set_sublayers(self, on: bool) -> Update:
        """Refused: the rows after attention need hooks on each block during the forward pass, which a
        remote trace of the layers' outputs does not record; off is already the case."""
        if on:
            raise ValueError(
                "the rows after attention (sublayers) need a local model: a remote trace records only the "
                "layers' outputs; use LensWidget(model, tokenizer, sublayers=True) without remote="
            )
        return self.full_update()

    @property
    def display_rows(self) -> list[int]:
        return stride_rows(self.num_layers, self.layer_stride)

    @property
    def rows(self) -> list[int]:
        return list(self._state.rows) if self._state.grid is not None else self.display_rows

    @property
    def row_labels(self) -> list[str]:
        return row_labels(self.rows, self.num_layers)

    def fetch(self, text: str, on_status: Callable[[str], None] | None = None) -> Fetched:
        """The cells of `text` from one trace, at the current stride and lens; the session unchanged."""
        tokens = tokenize(self.tokenizer, text, self.max_tokens)
        beyond = [i for i in tokens.ids if i >= self.plan.vocab_size]
        if beyond:
            raise ValueError(f"token id {beyond[0]} is beyond the model's vocabulary of {self.plan.vocab_size} ids")
        rows, lens = tuple(self.display_rows), self._lens
        grid = None
        if tokens.ids:
            with self._tracing:
                model, k, remote = self.model, self.top_k, self.remote
                grid = trace_grid(model, tokens.ids, lens, rows, k, remote=remote, on_status=on_status)
        return Fetched(text, tokens, rows, self.layer_stride, lens, grid)

    def accept(self, fetched: Fetched) -> Update:
        """Make a trace's cells the session's state: the whole picture."""
        self._state = fetched
        self.revision += 1
        return self.full_update()

    def set_text(self, text: str, visible: tuple[int, int] | None = None) -> Update:
        return self.accept(self.fetch(text))

    def set_layer_stride(self, stride: int) -> Update:
        old, self.layer_stride = self.layer_stride, check_stride(stride)
        try:
            return self.set_text(self.text)
        except Exception:
            self.layer_stride = old
            raise

    def set_lenses(self, lenses: Mapping[str, Lens | None]) -> Update:
        old = self._lens
        lens = lenses.get("a")
        self._lens = LogitLens() if lens is None else lens
        try:
            return self.set_text(self.text)
        except Exception:
            self._lens = old
            raise

    def compute_pending(self, visible: tuple[int, int] | None = None, max_columns: int = 16) -> Update | None:
        return None  # every trace returns the whole text

    def grid_arrays(self, model: str = "a") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        cells = self._cells()
        return cells.stats, cells.top_ids, cells.top_probs

    def _cells(self) -> Cells:
        grid = self._state.grid
        if grid is None:
            return Cells.empty(len(STATISTICS), self.top_k, len(self.rows))
        return grid

    pins: tuple[Pin, ...] = ()

    def make_pin(self, *items: str | int, label: str | None = None) -> Pin:
        raise PinError("pinned items are not available with remote= yet: NDIF traces return the cells only")

    def set_pins(self, pins: Sequence[Pin]) -> Update:
        if pins:
            raise PinError("pinned items are not available with remote= yet: NDIF traces return the cells only")
        return self.full_update()

    def lens_of(self, model: str = "a") -> Lens:
        """The one model's lens (LensSession.lens_of)."""
        if model != "a":
            raise ValueError(f"model must be one of {self.models}, got {model!r}")
        return self.lens

    def pin_arrays(self, model: str = "a") -> np.ndarray:
        """No item is ever pinned here: none of the cells' log-probabilities."""
        cells = self._cells()
        return np.empty((0, *cells.stats.shape[1:]), np.float32)

    def column(self, column: int, query: str = "") -> ColumnDetail:
        """LensSession.column needs every layer's hidden states of the column, which a trace does not
        bring back."""
        raise RuntimeError("the trajectory panel is not available with remote= yet: NDIF traces return the cells only")

    def diff_arrays(self) -> np.ndarray | None:
        return None

    def token_strings(self) -> list[str]:
        if self._strings is None:
            self._strings = vocabulary(self.tokenizer, self.plan.vocab_size)
        return self._strings

    def full_update(self) -> Update:
        state, rows = self._state, tuple(self.rows)
        n = len(state.tokens.ids)
        return Update(
            kind="full",
            rows=rows,
            col_start=0,
            n_tokens=n,
            cell_start=0,
            cell_end=n,
            row_labels=tuple(row_labels(rows, self.num_layers)),
            num_layers=self.num_layers,
            total_tokens=state.tokens.total,
            top_k=self.top_k,
            lens=state.lens.name,
            vocab_size=self.plan.vocab_size,
            notice=cut_notice(state.tokens, self.max_tokens),
            layer_stride=state.stride,
            names=(self.names[0],),
            pins=(),
            kept=(self._cells(),),
            index=tuple(range(len(rows))),
            token_ids=np.asarray(state.tokens.ids, np.int64),
            token_spans=state.tokens.spans,
        )
