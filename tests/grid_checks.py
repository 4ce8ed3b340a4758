"""Tie-aware comparison of two independently computed lens grids.

Two computations of the same cells (a cached and an uncached forward pass, two chunkings, a float64
reference) agree only up to rounding. Tokens whose probabilities are tied up to that rounding can
then come out in either order, or either can be the k-th, and a target's rank can gain or lose the
tokens tied with it: exact comparisons of ids and ranks fail on some machines and pass on others.
These checks allow exactly that slack and nothing more. Every allowance is checked against numbers:
an id may move only past a token of equal probability, and a rank may differ only by the count of
tokens whose logit, recomputed from the hidden states, is within tolerance of the target's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from lens_widget import Lens, ModelAdapter
from lens_widget.grid import next_token_targets
from lens_widget.rows import translate
from lens_widget.session import LensSession
from lens_widget.statistics import DIFF_STATISTICS, STATISTICS

TOL = 1e-4
"""Relative and absolute tolerance of statistics, probabilities and ties."""

_RANK = STATISTICS.index("rank")

CellLogits = Callable[[int, int], torch.Tensor]
"""(index into the grid's rows, column) → that cell's full logits [vocab]."""


@dataclass(frozen=True)
class TargetCells:
    """The arrays of a grid, plus each column's next token (what its rank is the rank of)."""

    stats: np.ndarray
    """[S, R, T]."""
    top_ids: np.ndarray
    """[R, T, k]."""
    top_probs: np.ndarray
    """[R, T, k]."""
    targets: np.ndarray
    """[T]: next-token ids, NO_TARGET where there is none."""


def _close(a: np.ndarray | float, b: np.ndarray | float, tol: float) -> np.ndarray:
    return np.isclose(a, b, rtol=tol, atol=tol, equal_nan=True)


def assert_same_top_ids(
    ids_a: np.ndarray,
    probs_a: np.ndarray,
    ids_b: np.ndarray,
    probs_b: np.ndarray,
    cell_logits: CellLogits,
    tol: float = TOL,
) -> None:
    """Top-k ids [R, T, k] may differ only between tokens whose probabilities are equal within `tol`.

    Wherever the two lists hold different tokens at the same place, those two tokens must be tied in
    the cell's probabilities (recomputed from its logits, not taken from the lists): swapped ties and
    a tie at the k-th place pass, a wrong token does not. The listed probabilities must agree too.
    """
    np.testing.assert_allclose(probs_a, probs_b, rtol=tol, atol=tol)
    for row, column in np.argwhere((ids_a != ids_b).any(-1)):
        p = torch.softmax(cell_logits(int(row), int(column)).double(), -1).numpy()
        a, b = ids_a[row, column], ids_b[row, column]
        for place in np.flatnonzero(a != b):
            x, y = int(a[place]), int(b[place])
            assert _close(p[x], p[y], tol), (
                f"cell ({row}, {column}), place {place}: token {x} (p = {p[x]:.9g}) in one grid, {y} "
                f"(p = {p[y]:.9g}) in the other: not a tie (top ids {a.tolist()} vs {b.tolist()})"
            )
        for listed, ids in [(probs_a, a), (probs_b, b)]:
            np.testing.assert_allclose(listed[row, column], p[ids], rtol=tol, atol=tol, err_msg=f"({row}, {column})")


def assert_same_ranks(
    rank_a: np.ndarray, rank_b: np.ndarray, targets: np.ndarray, cell_logits: CellLogits, tol: float = TOL
) -> None:
    """Ranks [R, T] may differ only by the count of tokens tied with the target: those whose logit is
    within `tol` (relative to the target's, at least absolute) of the target's, in the cell's logits."""
    np.testing.assert_array_equal(np.isnan(rank_a), np.isnan(rank_b), err_msg="missing ranks differ")
    for row, column in np.argwhere(rank_a != rank_b):
        if np.isnan(rank_a[row, column]):
            continue
        logits = cell_logits(int(row), int(column)).double()
        score = logits[int(targets[column])]
        tied = int((torch.abs(logits - score) <= tol * max(1.0, float(score.abs()))).sum()) - 1
        difference = abs(float(rank_a[row, column]) - float(rank_b[row, column]))
        assert difference <= tied, (
            f"cell ({row}, {column}): ranks {rank_a[row, column]:g} and {rank_b[row, column]:g} differ by more "
            f"than the {tied} token(s) tied with target {int(targets[column])}"
        )


def assert_same_cells(a: TargetCells, b: TargetCells, cell_logits: CellLogits, tol: float = TOL) -> None:
    """Every statistic equal within `tol`, top-k ids and ranks equal up to ties in `cell_logits`."""
    others = [i for i in range(len(STATISTICS)) if i != _RANK]
    np.testing.assert_allclose(a.stats[others], b.stats[others], rtol=tol, atol=tol)
    assert_same_top_ids(a.top_ids, a.top_probs, b.top_ids, b.top_probs, cell_logits, tol)
    assert_same_ranks(a.stats[_RANK], b.stats[_RANK], a.targets, cell_logits, tol)


def grid_cell_logits(adapter: ModelAdapter, lens: Lens, hidden: torch.Tensor, rows: Sequence[int]) -> CellLogits:
    """Cell logits as the grid computes them: hidden [L + 1, T, d] (with sub-layers [2L + 1, T, d]) through
    the lens, the model's final norm and head (the model's own output for row L)."""

    @torch.inference_mode()
    def logits(index: int, column: int) -> torch.Tensor:
        row = rows[index]
        h = hidden[:, column : column + 1]
        if row == adapter.num_layers:
            return adapter.output_logits(h[row, 0]).float()
        return adapter.unembed(translate(lens, h[[row]], [row], adapter.num_layers))[0, 0].float()

    return logits


def session_cells(s: LensSession, model: str = "a") -> TargetCells:
    stats, top_ids, top_probs = s.grid_arrays(model)
    targets = next_token_targets(torch.tensor(s.tokens.ids, dtype=torch.long)).numpy()
    return TargetCells(stats, top_ids, top_probs, targets)


def session_cell_logits(s: LensSession, model: str = "a") -> CellLogits:
    """Cell logits recomputed from the session's kept hidden states, through the model's lens and
    adapter, at the model's layer of each row (B's by relative depth)."""
    t = s._track(model)
    return grid_cell_logits(t.adapter, t.lens, t.hidden, s.layers(model))


def assert_same_diff(a: LensSession, b: LensSession, tol: float = TOL) -> None:
    """The A/B diff statistics of two sessions agree: divergences within `tol`, and top-1 agreement
    exactly, except where a top-1 token differs between the sessions (which assert_same_top_ids allows
    only for a tie). Each session's agreement must also say whether its own two top-1 tokens agree."""
    diff_a, diff_b = a.diff_arrays(), b.diff_arrays()
    assert (diff_a is None) == (diff_b is None), "one session has a diff, the other not"
    if diff_a is None or diff_b is None:
        return
    agree = DIFF_STATISTICS.index("top1_agree")
    divergences = [i for i in range(len(DIFF_STATISTICS)) if i != agree]
    np.testing.assert_allclose(diff_a[divergences], diff_b[divergences], rtol=tol, atol=tol)
    tops = {}
    for name, s in (("first", a), ("second", b)):
        top_a, top_b = s.grid_arrays("a")[1][..., 0], s.grid_arrays("b")[1][..., 0]
        valid = ~np.isnan(s.diff_arrays()[agree])  # type: ignore[index]
        own = (top_a == top_b).astype(np.float32)
        np.testing.assert_array_equal(s.diff_arrays()[agree][valid], own[valid], err_msg=f"{name} session")  # type: ignore[index]
        tops[name] = (top_a, top_b)
    moved = (tops["first"][0] != tops["second"][0]) | (tops["first"][1] != tops["second"][1])
    same = ~moved & ~np.isnan(diff_a[agree])
    np.testing.assert_array_equal(diff_a[agree][same], diff_b[agree][same])


def assert_same_grid(a: LensSession, b: LensSession, *, tol: float = TOL) -> None:
    """Same tokens and rows, and the same cells up to `tol` and ties: every model's, and the diff."""
    assert a.tokens.ids == b.tokens.ids
    assert np.array_equal(a.tokens.spans, b.tokens.spans)
    assert a.rows == b.rows
    assert a.models == b.models
    for model in a.models:
        assert_same_cells(session_cells(a, model), session_cells(b, model), session_cell_logits(a, model), tol)
    assert_same_diff(a, b, tol)


def assert_near_float32(ours: LensSession, reference: LensSession, tol: float) -> None:
    """A reduced-precision session against float32: entropy, cross-entropy, forward KL and max
    probability within tol × (|value| + 1), missing in the same cells, and the top-1 token equal
    wherever the reference's leads the second by 5 points of probability (and such cells exist)."""
    (stats, ids, probs), (o_stats, o_ids, _) = reference.grid_arrays(), ours.grid_arrays()
    for name in ("entropy", "cross_entropy", "forward_kl", "max_probability"):
        i = STATISTICS.index(name)
        valid = ~np.isnan(stats[i])
        assert np.array_equal(valid, ~np.isnan(o_stats[i]))
        error = np.abs(o_stats[i][valid] - stats[i][valid]) / (np.abs(stats[i][valid]) + 1)
        assert error.max() <= tol, (name, float(error.max()))
    clear = probs[..., 0] - probs[..., 1] >= 0.05
    assert clear.mean() > 0.25 and np.array_equal(ids[..., 0][clear], o_ids[..., 0][clear])
