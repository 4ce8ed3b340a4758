"""Cells: the one type for a block of lens cells, and the algebra that edits it.

Every layer of the package passes cells around as the same arrays: what `compute_grid` returns, what
a LensSession keeps per model, what an update carries and what a receiver rebuilds. So they are one
type, and the four edits an update can make (payload.py's kinds) are four functions on it:

- `splice_columns`: the text changed from a column on ("columns");
- `merge_rows`: rows were (re)computed for every column ("rows");
- `pad_columns` / `fill_columns`: some columns' cells come later ("full" and "cells" with pending
  columns).

The session edits its own cells with these, and so does a receiver (payload.apply_update, and
js/cells.ts, the same algebra in TypeScript), so what the kernel holds and what a view rebuilds
cannot drift apart. No wire format here: the engine imports this module, never payload.py.

Each array has a row axis followed by the column axis (`ROW_AXIS`), so every edit is written once for
all of them; a missing cell (a pending column) is NaN in the float arrays and 0 in the ids.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields

import numpy as np

from .constants import WIRE
from .rows import by_depth

PATCHED: tuple[str, ...] = tuple(WIRE["patched"])
"""The statistics of a column that change when its next token does: what a splice's patch replaces."""


@dataclass(frozen=True)
class Cells:
    """Statistics and top-k of R rows over C columns (float32/int64 as computed)."""

    stats: np.ndarray
    """float32 [S, R, C] in statistics.STATISTICS order; NaN where a statistic is missing, and
    everywhere in a cell whose logits are not finite."""
    top_ids: np.ndarray
    """int64 [R, C, k]: token ids, most likely first."""
    top_probs: np.ndarray
    """float32 [R, C, k]."""
    pins: np.ndarray | None = None
    """float32 [P, R, C]: the log-probability of each pinned item (a token, or a set of tokens whose
    probabilities add up) in each cell; None where pins are not kept (the A/B diff)."""
    lse: np.ndarray | None = None
    """float32 [R, C]: each cell's log-sum-exp of its logits, so that a newly pinned item's
    log-probability is its logit minus this, without the whole head again. The kernel's only: None in
    what a view receives."""

    @classmethod
    def empty(cls, statistics: int, k: int, rows: int = 0, pins: int = 0) -> Cells:
        """`rows` rows of no columns."""
        return cls(
            np.empty((statistics, rows, 0), np.float32),
            np.empty((rows, 0, k), np.int64),
            np.empty((rows, 0, k), np.float32),
            np.empty((pins, rows, 0), np.float32),
            np.empty((rows, 0), np.float32),
        )

    @classmethod
    def stats_only(cls, stats: np.ndarray) -> Cells:
        """Statistics without top-k (the A/B diff), so that the same edits serve them."""
        _, rows, columns = stats.shape
        return cls(stats, np.empty((rows, columns, 0), np.int64), np.empty((rows, columns, 0), np.float32))

    @property
    def columns(self) -> int:
        return int(self.top_ids.shape[1])

    @property
    def nbytes(self) -> int:
        return sum(array.nbytes for array in self.arrays().values())

    def arrays(self) -> dict[str, np.ndarray]:
        """Every array it holds, by field name."""
        return {f.name: getattr(self, f.name) for f in fields(Cells) if getattr(self, f.name) is not None}

    def select(self, rows: Sequence[int] | slice = slice(None), start: int = 0, end: int | None = None) -> Cells:
        """The cells of `rows` (indices into this block's rows) at columns start … end - 1."""
        index = rows if isinstance(rows, slice) else list(rows)
        return _map(lambda name, a: _cols(_rows(a, name, index), name, slice(start, end)), self)


ROW_AXIS = {"stats": 1, "top_ids": 0, "top_probs": 0, "pins": 1, "lse": 0}
"""Each array's row axis; its column axis is the next one."""
_MISSING = {"stats": np.nan, "top_ids": 0, "top_probs": 0, "pins": np.nan, "lse": np.nan}


def _rows(array: np.ndarray, name: str, index: list[int] | slice) -> np.ndarray:
    return array[(slice(None),) * ROW_AXIS[name] + (index,)]


def _cols(array: np.ndarray, name: str, index: slice) -> np.ndarray:
    return array[(slice(None),) * (ROW_AXIS[name] + 1) + (index,)]


def _map(fn: Callable[[str, np.ndarray], np.ndarray], cells: Cells) -> Cells:
    """A plain Cells of `fn` applied to each array `cells` holds (the others stay None)."""
    return Cells(**{name: fn(name, array) for name, array in cells.arrays().items()})


def splice_columns(
    old: Cells,
    old_rows: Sequence[int],
    rows: Sequence[int],
    start: int,
    new: Cells,
    patch: np.ndarray | None = None,
    patched: Sequence[int] = (),
) -> Cells:
    """A "columns" update: `old`'s first `start` columns of `rows` (each one of `old_rows`), then
    `new`'s columns; `patch` [len(patched), R] replaces column start - 1 of the `patched` statistics,
    whose next token changed."""
    keep = [list(old_rows).index(r) for r in rows]
    kept = old.select(keep, 0, start)  # fancy indexing: a copy, which the patch may write into
    if patch is not None and start > 0 and len(patched):
        kept.stats[list(patched), :, start - 1] = patch
    added = _matching(new, kept)
    return _map(lambda name, a: np.concatenate([a, added[name]], axis=ROW_AXIS[name] + 1), kept)


def merge_rows(
    old: Cells, old_rows: Sequence[int], new: Cells, new_rows: Sequence[int], *, num_layers: int
) -> tuple[Cells, list[int]]:
    """A "rows" update: the rows of both, from the embeddings up (rows.by_depth: sub-layer rows sit
    between layers of a model of `num_layers`), `new`'s replacing `old`'s (same columns)."""
    rows = by_depth([*old_rows, *new_rows], num_layers)
    source = [(new, list(new_rows).index(r)) if r in new_rows else (old, list(old_rows).index(r)) for r in rows]

    _matching(new, old)

    def merged(name: str, array: np.ndarray) -> np.ndarray:
        parts = [_rows(getattr(cells, name), name, [i]) for cells, i in source]
        if parts:
            return np.concatenate(parts, axis=ROW_AXIS[name])
        return _rows(array, name, [])

    return _map(merged, old), rows


def pad_columns(cells: Cells, columns: int, start: int) -> Cells:
    """`cells` placed at column `start` of a block of `columns` columns; the other columns are
    pending placeholders (NaN statistics, top ids 0, top probabilities 0)."""
    if start == 0 and cells.columns == columns:
        return cells

    def placeholder(name: str, array: np.ndarray) -> np.ndarray:
        shape = list(array.shape)
        shape[ROW_AXIS[name] + 1] = columns
        return np.full(shape, _MISSING[name], array.dtype)

    return _write_columns(_map(placeholder, cells), start, cells)


def fill_columns(old: Cells, start: int, cells: Cells) -> Cells:
    """A "cells" update: `old` (same rows) with columns start … start + C - 1 replaced by `cells`."""
    return _write_columns(_map(lambda _, a: a.copy(), old), start, cells)


def _write_columns(into: Cells, start: int, cells: Cells) -> Cells:
    """`cells` written over columns start … start + C - 1 of `into` (in place), which it returns."""
    window = slice(start, start + cells.columns)
    for name, array in _matching(cells, into).items():
        _cols(getattr(into, name), name, window)[...] = array
    return into


def _matching(cells: Cells, like: Cells) -> dict[str, np.ndarray]:
    """`cells`' arrays, which must be the ones `like` holds: an edit never drops or invents one."""
    arrays = cells.arrays()
    if arrays.keys() != like.arrays().keys():
        raise ValueError(f"cells hold {sorted(arrays)}, where {sorted(like.arrays())} are edited")
    return arrays


def pending_after(
    pending: np.ndarray | None, keep: int, n_tokens: int, cell_start: int, cell_end: int
) -> np.ndarray | None:
    """The pending flags once columns keep … n_tokens - 1 changed and only [cell_start, cell_end) of
    them came with cells (None when nothing is pending)."""
    flags = np.zeros(n_tokens, bool)
    if pending is not None:
        flags[:keep] = pending[:keep]
    flags[keep:cell_start] = True
    flags[cell_end:] = True
    return flags if flags.any() else None
