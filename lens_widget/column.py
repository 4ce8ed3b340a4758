"""One column in full: what the trajectory panel draws for the selected column.

The grid keeps only each cell's statistics, top-k and pinned items. Following tokens across layers
needs more of one column: the probability of tokens outside the top-k (a token that is top-1 at the
last layers is usually far down at the first), their rank, the same through every lens the model has
been read through, and a search of the whole vocabulary. One column through the whole head at every
row is rows × d × vocab multiply-adds, as much as one typed token's lens work, so it is computed when
the view asks for it, from the kept hidden states: no model run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from .pins import Pin, strip_space
from .track import Track

SEARCH_LIMIT = 24
"""Tokens a search returns at most."""


@dataclass(frozen=True)
class Line:
    """One token or token set followed across the column's rows."""

    label: str
    ids: tuple[int, ...]
    pinned: bool
    """A pinned item; else a token that is top-1 at some row (the lines shown when nothing is pinned)."""
    logp: dict[str, list[float | None]] = field(default_factory=dict)
    """"<model>/<lens>" → the item's log-probability at each row (null where a cell is invalid)."""
    rank: dict[str, list[float | None]] = field(default_factory=dict)
    """"<model>/<lens>" → the rank of the item's most likely token at each row (1 = top-1)."""


@dataclass(frozen=True)
class Found:
    """A search result: a token, and its best probability over the column's rows."""

    id: int
    text: str
    probability: float
    row: int
    """The row (a layer index; num_layers is the output) where that probability is."""


@dataclass(frozen=True)
class ColumnDetail:
    column: int
    rows: tuple[int, ...]
    lines: tuple[Line, ...]
    found: tuple[Found, ...]
    curves: tuple[str, ...]
    """The "<model>/<lens>" keys of every line, the current lens of model A first."""


@torch.inference_mode()
def column_detail(
    tracks: Sequence[Track],
    rows: Sequence[int],
    column: int,
    pins: Sequence[Pin],
    strings: Sequence[str],
    top_k: int,
    query: str = "",
) -> ColumnDetail:
    """The lines of `column` (the pinned items, or the tokens that are top-1 at any row when none is
    pinned), per model and lens, and the tokens whose text starts with `query`, ranked by their best
    probability at any row (through the current lens: what the heatmap shows)."""
    logps: dict[str, torch.Tensor] = {}
    for track in tracks:
        order = [track.lens.name, *(name for name in track.lenses if name != track.lens.name)]
        for name in order:
            logits = track.column_logits(rows, column, top_k, None, track.lenses[name])
            logps[f"{track.key}/{name}"] = torch.log_softmax(logits.double(), dim=-1)
    current = [f"{t.key}/{t.lens.name}" for t in tracks]
    if pins:
        lines = [Line(p.label, p.ids, True) for p in pins]
    else:
        tops = dict.fromkeys(int(i) for key in current for i in logps[key].argmax(-1).tolist())
        lines = [Line(strings[i] if i < len(strings) else f"<{i}>", (i,), False) for i in tops]
    for line in lines:
        ids = torch.tensor(line.ids, dtype=torch.long)
        for key, logp in logps.items():
            members = logp.index_select(-1, ids)
            values = torch.logsumexp(members, dim=-1)
            best = members.amax(-1, keepdim=True)
            ranks = 1 + (logp > best).sum(-1)
            line.logp[key] = _finite(values.numpy())
            line.rank[key] = _finite(np.where(np.isfinite(best[:, 0].numpy()), ranks.double().numpy(), np.nan))
    found = _search(logps[current[0]], rows, strings, query) if query.strip() or not pins else ()
    return ColumnDetail(column, tuple(rows), tuple(lines), found, tuple(logps))


def _search(logp: torch.Tensor, rows: Sequence[int], strings: Sequence[str], query: str) -> tuple[Found, ...]:
    """Tokens whose text (without its leading space) starts with `query`, case aside; all of them for
    an empty query; the SEARCH_LIMIT most likely at their best row."""
    best, where = logp.max(dim=0)
    wanted = query.strip().lower()
    if wanted:
        keep = [i for i, s in enumerate(strings[: len(best)]) if strip_space(s).lower().startswith(wanted)]
    else:
        keep = list(range(len(best)))
    if not keep:
        return ()
    index = torch.tensor(keep, dtype=torch.long)
    order = best.index_select(0, index).argsort(descending=True)[:SEARCH_LIMIT]
    out = []
    for i in order.tolist():
        token = keep[i]
        out.append(Found(token, strings[token], float(np.exp(float(best[token]))), int(rows[int(where[token])])))
    return tuple(out)


def _finite(values: np.ndarray) -> list[float | None]:
    """JSON-ready: NaN (an invalid cell) becomes None, −inf (probability 0) a very small number."""
    return [None if np.isnan(v) else max(float(v), -1e30) for v in values]
