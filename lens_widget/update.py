"""Update: what one change of a session did to its cells, as plain data.

The engine (LensSession, RemoteSession) describes each change with one, and the widget encodes it for
the wire (payload.encode). Keeping the description apart from the encoding lets the engine run without
the wire format, and lets the widget skip encoding the deltas it replaces by a whole snapshot.

An update holds the session's cells as they were when it was made: a session replaces its arrays and
tokens, never writes into them, so the update stays what it describes however late it is read. The
slices it carries (`cells`, `diff_cells`) are taken only when read.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .cells import Cells


@dataclass(frozen=True)
class Update:
    """A change: rows `rows` of columns [cell_start, cell_end) got cells, and the tokens from
    col_start on are new (payload.py describes each kind)."""

    kind: str
    """"full", "columns", "rows" or "cells"."""
    rows: tuple[int, ...]
    """Rows the update carries cells for."""
    col_start: int
    """First column whose token the update carries (0 unless kind is "columns"; n_tokens for "cells")."""
    n_tokens: int
    cell_start: int
    """First column the update carries cells for."""
    cell_end: int
    """One past the last column the update carries cells for."""
    row_labels: tuple[str, ...]
    num_layers: int
    total_tokens: int
    """More than n_tokens when the text was cut."""
    top_k: int
    lens: str
    """"logit" or "tuned": what the view's lens toggle shows."""
    vocab_size: int
    notice: str
    """A message for the user about the whole picture, or ""."""
    layer_stride: int
    names: tuple[str, ...]
    """Each model's display name."""
    pins: tuple[str, ...]
    """The labels of the pinned items whose log-probabilities the cells carry, in their order."""
    kept: tuple[Cells, ...] = field(repr=False, compare=False)
    """Each model's cells when the update was made, of the session's rows."""
    index: tuple[int, ...] = field(repr=False, compare=False)
    """Where each of `rows` is in `kept`."""
    token_ids: np.ndarray = field(repr=False, compare=False)
    """Every token's id (the update carries those from col_start on)."""
    token_spans: np.ndarray = field(repr=False, compare=False)
    """uint32 [n_tokens, 2]: every token's [start, end) in the text, UTF-16 code units."""
    patches: tuple[np.ndarray | None, ...] = field(repr=False, compare=False, default=())
    """Per model: cross-entropy and rank [2, rows] of column col_start - 1, whose next token changed."""
    kept_diff: np.ndarray | None = field(repr=False, compare=False, default=None)
    """The A/B diff statistics [D, session rows, n_tokens] when the update was made."""

    @property
    def changed_columns(self) -> range:
        return range(self.col_start, self.n_tokens)

    @property
    def cell_columns(self) -> range:
        return range(self.cell_start, self.cell_end)

    def cells(self) -> list[Cells]:
        """Each model's cells that the update carries."""
        return [kept.select(self.index, self.cell_start, self.cell_end) for kept in self.kept]

    def diff_cells(self) -> np.ndarray | None:
        """The A/B diff statistics [D, rows, columns] the update carries (None with one model)."""
        if self.kept_diff is None:
            return None
        return self.kept_diff[:, list(self.index), self.cell_start : self.cell_end]
