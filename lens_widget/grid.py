"""The lens grid: statistics and top-k for every (row, position) cell, computed in bounded chunks.

Rows are indices into the model's layers: 0 … L-1 are lens rows (hidden_states[i] through the lens),
L is the model's own output. Cells are processed position-block by position-block; each block's
cells of every row go through one unembedding GEMM, and every statistic comes from that one logits
chunk, so peak memory is bounded by `chunk_bytes` rather than rows × positions × vocab.

A pair grid (`compute_pair_grid`, the A/B diff) runs both models' GEMMs for each block and computes
the diff statistics of each pair of cells from those same chunks, so no full distribution outlives
its block. Models of different depth are paired by relative depth (`aligned_layers`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .adapter import ModelAdapter, ModelForward
from .lenses import Lens, LogitLens
from .statistics import (
    DIFF_STATISTICS,
    NO_TARGET,
    STATISTICS,
    CellStatistics,
    cell_statistics,
    log_probs,
    normalise,
    pair_statistics_of,
    statistics_of,
)

DEFAULT_CHUNK_BYTES = 256 * 2**20
"""Upper bound on the float32 working memory of one chunk of cells."""


@dataclass(frozen=True)
class LensGrid:
    """Statistics and top-k of a set of rows over a range of positions, as numpy arrays."""

    rows: tuple[int, ...]
    """Layer index of each row; `num_layers` is the model's own output. In model B's grid of a pair
    of different depths, B's layer paired with each of A's rows (so it may repeat)."""
    statistics: np.ndarray
    """float32 [len(STATISTICS), rows, positions]; NaN where a statistic is missing, and everywhere in
    a cell whose logits are not finite (see statistics.py)."""
    top_ids: np.ndarray
    """int64 [rows, positions, k]: token ids, most likely first."""
    top_probs: np.ndarray
    """float32 [rows, positions, k]."""
    last_logits: torch.Tensor | None = None
    """float32 [rows, vocab] at the last position, when asked for: an append changes that
    position's next token, and these give its new cross-entropy and rank without a second GEMM."""

    def statistic(self, name: str) -> np.ndarray:
        """[rows, positions] of one statistic by name."""
        return self.statistics[STATISTICS.index(name)]


@dataclass(frozen=True)
class GridInput:
    """One model's side of a pair grid: what turns its hidden states into cells."""

    adapter: ModelAdapter
    lens: Lens | None
    """None is the logit lens."""
    forward: ModelForward


@dataclass(frozen=True)
class PairGrid:
    """Both models' grids over the same rows (A's indices) and positions, and the diff of each pair."""

    a: LensGrid
    b: LensGrid
    diff: np.ndarray
    """float32 [len(DIFF_STATISTICS), rows, positions] (statistics.pair_statistics)."""


def next_token_targets(input_ids: torch.Tensor) -> torch.Tensor:
    """Each position's real next token; NO_TARGET at the last position, which has none."""
    targets = torch.full_like(input_ids, NO_TARGET)
    targets[:-1] = input_ids[1:]
    return targets


def row_labels(rows: Sequence[int], num_layers: int) -> list[str]:
    """tuned-lens's labels: the translator index for lens rows, "output" for the model's own."""
    return ["output" if r == num_layers else str(r) for r in rows]


def aligned_layers(rows: Sequence[int], num_layers: int, other_layers: int) -> list[int]:
    """The layer of a model of `other_layers` layers at the relative depth of each of `rows` (of a model
    of `num_layers`): round(r × other / num), halves rounded up, in exact integers. The output pairs
    with the output, layer 0 (the embeddings) with layer 0; equal depths pair each row with itself."""
    return [(2 * r * other_layers + num_layers) // (2 * num_layers) for r in rows]


def pair_row_labels(rows: Sequence[int], num_layers: int, other_layers: int) -> list[str]:
    """Labels of an A/B grid: A's plain labels when the depths agree, else both layer indices of each
    lens row ("3 | 6", "5 | output" where B's nearest layer is its output) and "output"."""
    if num_layers == other_layers:
        return row_labels(rows, num_layers)
    labels = []
    for row, other in zip(rows, aligned_layers(rows, num_layers, other_layers), strict=True):
        if row == num_layers:
            labels.append("output")
        else:
            labels.append(f"{row} | {'output' if other == other_layers else other}")
    return labels


class _Side:
    """One model's part of each chunk: its rows stacked for one head GEMM, and where each cell goes.

    The stack holds each distinct lens row once, then the model's own output (always: the forward KL
    of every row needs it); `index` maps the caller's rows, which may repeat, onto it.
    """

    def __init__(self, model: GridInput, rows: Sequence[int], top_k: int) -> None:
        self.adapter, self.hidden = model.adapter, model.forward.hidden
        self.lens = LogitLens() if model.lens is None else model.lens
        num_layers = self.adapter.num_layers
        self.lens_rows = list(dict.fromkeys(r for r in rows if r < num_layers))
        stacked = [*self.lens_rows, num_layers]
        self.n_cells = len(stacked) if num_layers in rows else len(self.lens_rows)
        self.index = [stacked.index(r) for r in rows]
        self.identity = self.index == list(range(self.n_cells))
        vocab = self.adapter.vocab_size
        if not 1 <= top_k <= vocab:
            raise ValueError(f"top_k must be in 1..{vocab} (the vocabulary size), got {top_k}")
        self.top_k = top_k

    @property
    def stacked(self) -> int:
        return len(self.lens_rows) + 1

    def logits(self, start: int, end: int) -> torch.Tensor:
        """float32 [stacked, end - start, vocab]: the lens rows, then the model's own output."""
        adapter, hidden = self.adapter, self.hidden
        # One head GEMM for the lens rows and the output row: the unembedding matrix is read once.
        head_in = adapter.head_input(hidden[adapter.num_layers, start:end])[None]
        if self.lens_rows:
            translated = self.lens.translate(hidden[self.lens_rows, start:end], self.lens_rows)
            head_in = torch.cat([adapter.final_norm(translated).to(head_in.dtype), head_in])
        return adapter.decode(head_in).float()

    def cells(
        self,
        logits: torch.Tensor,
        targets: torch.Tensor,
        normalised: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
    ) -> CellStatistics:
        """Statistics of the stacked cells (`normalised`: their log-probabilities, validity and
        probabilities, if already taken)."""
        cell_logits = logits[: self.n_cells]
        model_logp = log_probs(logits[-1])
        if normalised is None:
            return cell_statistics(cell_logits, targets, model_logp, self.top_k)
        logp, valid, p = normalised
        return statistics_of(cell_logits, logp, valid, targets, model_logp, self.top_k, p)

    def pick(self, tensor: torch.Tensor) -> torch.Tensor:
        """The caller's rows of a stacked tensor (dimension 0), without a copy when they are the stack."""
        return tensor if self.identity else tensor[self.index]


class _Output:
    """numpy arrays a grid is written into, block by block, in the caller's row order."""

    def __init__(self, rows: int, positions: int, k: int) -> None:
        self.stats = np.empty((len(STATISTICS), rows, positions), np.float32)
        self.top_ids = np.empty((rows, positions, k), np.int64)
        self.top_probs = np.empty((rows, positions, k), np.float32)
        self.last_logits: torch.Tensor | None = None

    def write(self, side: _Side, cells: CellStatistics, start: int, end: int) -> None:
        index = side.index
        self.stats[:, :, start:end] = cells.values.cpu().numpy()[:, index]
        self.top_ids[:, start:end] = cells.top_ids.cpu().numpy()[index]
        self.top_probs[:, start:end] = cells.top_probs.cpu().numpy()[index]

    def grid(self, rows: Sequence[int]) -> LensGrid:
        return LensGrid(tuple(rows), self.stats, self.top_ids, self.top_probs, self.last_logits)


def _check_rows(rows: Sequence[int], num_layers: int, *, distinct: bool = True) -> tuple[int, ...]:
    rows = tuple(int(r) for r in rows)
    if not rows or (distinct and len(set(rows)) != len(rows)) or any(not 0 <= r <= num_layers for r in rows):
        kind = "distinct indices" if distinct else "indices"
        raise ValueError(f"rows must be {kind} in 0..{num_layers} (at least one), got {rows}")
    return rows


def _check_targets(targets: torch.Tensor, positions: int) -> None:
    if targets.shape != (positions,):
        raise ValueError(f"targets must have shape ({positions},), got {tuple(targets.shape)}")


def _block(chunk_bytes: int, floats_per_position: int) -> int:
    return max(1, chunk_bytes // (4 * floats_per_position))


@torch.inference_mode()
def compute_grid(
    adapter: ModelAdapter,
    lens: Lens | None,
    forward: ModelForward,
    targets: torch.Tensor,
    rows: Sequence[int],
    top_k: int = 10,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    keep_last_logits: bool = False,
) -> LensGrid:
    """Every statistic of `rows` at every position of `forward`.

    lens: None is the logit lens, as everywhere else in the package.
    targets: [positions] next-token ids (NO_TARGET where none), see `next_token_targets`.
    """
    rows = _check_rows(rows, adapter.num_layers)
    side = _Side(GridInput(adapter, lens, forward), rows, top_k)
    positions = forward.hidden.shape[1]
    _check_targets(targets, positions)
    out = _Output(len(rows), positions, top_k)
    # Per chunk: the logits, their log-probs and a temporary of the same size, in float32.
    block = _block(chunk_bytes, 3 * adapter.vocab_size * side.stacked)
    targets = targets.to(forward.hidden.device)
    for start in range(0, positions, block):
        end = min(positions, start + block)
        logits = side.logits(start, end)
        if keep_last_logits and end == positions:
            out.last_logits = side.pick(logits[: side.n_cells, -1]).clone()
        out.write(side, side.cells(logits, targets[start:end]), start, end)
    return out.grid(rows)


@torch.inference_mode()
def compute_pair_grid(
    a: GridInput,
    b: GridInput,
    targets: torch.Tensor,
    rows: Sequence[int],
    top_k: int = 10,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    keep_last_logits: bool = False,
    rows_b: Sequence[int] | None = None,
) -> PairGrid:
    """Both models' grids at `rows` (A's layer indices) and the diff statistics of each pair of cells.

    rows_b: B's layer paired with each of `rows`; by default `aligned_layers` (the rows themselves when
    the depths agree). Per position block: A's head GEMM and statistics, B's, then the pair's, from
    log-probabilities computed once, so the memory bound is `chunk_bytes` as in `compute_grid`.
    """
    layers_a, layers_b = a.adapter.num_layers, b.adapter.num_layers
    rows = _check_rows(rows, layers_a)
    rows_b = aligned_layers(rows, layers_a, layers_b) if rows_b is None else rows_b
    rows_b = _check_rows(rows_b, layers_b, distinct=False)
    if len(rows_b) != len(rows):
        raise ValueError(f"rows_b must pair one layer of model B with each of the {len(rows)} rows, got {len(rows_b)}")
    vocab = a.adapter.vocab_size
    if b.adapter.vocab_size != vocab:
        raise ValueError(
            f"the models' vocabularies differ: A's unembedding has {vocab} tokens, B's {b.adapter.vocab_size}"
        )
    positions = a.forward.hidden.shape[1]
    if b.forward.hidden.shape[1] != positions:
        raise ValueError(f"the models' forwards cover {positions} and {b.forward.hidden.shape[1]} positions")
    _check_targets(targets, positions)
    side_a, side_b = _Side(a, rows, top_k), _Side(b, rows_b, top_k)
    out_a, out_b = _Output(len(rows), positions, top_k), _Output(len(rows), positions, top_k)
    diff = np.empty((len(DIFF_STATISTICS), len(rows), positions), np.float32)
    # Per chunk: each model's logits, log-probs, probabilities and a temporary, and both sides' log-probs
    # and probabilities picked in the rows' order for the pair.
    block = _block(chunk_bytes, vocab * (4 * (side_a.stacked + side_b.stacked) + 4 * len(rows)))
    device = a.forward.hidden.device
    for start in range(0, positions, block):
        end = min(positions, start + block)
        last = keep_last_logits and end == positions
        logp_a, valid_a, top1_a, p_a = _pair_side(side_a, out_a, targets, start, end, last, device)
        logp_b, valid_b, top1_b, p_b = _pair_side(side_b, out_b, targets, start, end, last, device)
        pair = pair_statistics_of(logp_a, logp_b, valid_a, valid_b, top1_a, top1_b, p_a, p_b)
        diff[:, :, start:end] = pair.cpu().numpy()
        del logp_a, logp_b, p_a, p_b  # before the next block's logits
    return PairGrid(out_a.grid(rows), out_b.grid(rows_b), diff)


def _pair_side(
    side: _Side, out: _Output, targets: torch.Tensor, start: int, end: int, last: bool, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One model's block of a pair grid, written to `out`; returns what the pair statistics need of it,
    in the caller's row order on `device`: log-probabilities, validity, top-1 ids and probabilities."""
    logits = side.logits(start, end)
    if last:
        out.last_logits = side.pick(logits[: side.n_cells, -1]).clone()
    logp, valid = normalise(logits[: side.n_cells])
    p = logp.exp()  # the entropy's, and the pair's
    cells = side.cells(logits, targets[start:end].to(logits.device), (logp, valid, p))
    out.write(side, cells, start, end)
    kept = (logp, valid, cells.top_ids[..., 0], p)
    return tuple(side.pick(x).to(device) for x in kept)  # type: ignore[return-value]
