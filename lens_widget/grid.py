"""The lens grid: statistics and top-k for every (row, position) cell, computed in bounded chunks.

Rows are indices into the model's layers: 0 … L-1 are lens rows (hidden_states[i] through the lens),
L is the model's own output. Cells are processed position-block by position-block; each block's
cells of every row go through one unembedding GEMM, and every statistic comes from that one logits
chunk, so peak memory is bounded by `chunk_bytes` rather than rows × positions × vocab.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .adapter import ModelAdapter, ModelForward
from .lenses import Lens, LogitLens
from .statistics import NO_TARGET, STATISTICS, cell_statistics, log_probs

DEFAULT_CHUNK_BYTES = 256 * 2**20
"""Upper bound on the float32 working memory of one chunk of cells."""


@dataclass(frozen=True)
class LensGrid:
    """Statistics and top-k of a set of rows over a range of positions, as numpy arrays."""

    rows: tuple[int, ...]
    """Layer index of each row; `num_layers` is the model's own output."""
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


def next_token_targets(input_ids: torch.Tensor) -> torch.Tensor:
    """Each position's real next token; NO_TARGET at the last position, which has none."""
    targets = torch.full_like(input_ids, NO_TARGET)
    targets[:-1] = input_ids[1:]
    return targets


def row_labels(rows: Sequence[int], num_layers: int) -> list[str]:
    """tuned-lens's labels: the translator index for lens rows, "output" for the model's own."""
    return ["output" if r == num_layers else str(r) for r in rows]


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
    lens = LogitLens() if lens is None else lens
    rows = tuple(int(r) for r in rows)
    num_layers = adapter.num_layers
    if not rows or len(set(rows)) != len(rows) or any(not 0 <= r <= num_layers for r in rows):
        raise ValueError(f"rows must be distinct indices in 0..{num_layers} (at least one), got {rows}")
    positions = forward.hidden.shape[1]
    vocab = adapter.vocab_size
    if not 1 <= top_k <= vocab:
        raise ValueError(f"top_k must be in 1..{vocab} (the vocabulary size), got {top_k}")
    if targets.shape != (positions,):
        raise ValueError(f"targets must have shape ({positions},), got {tuple(targets.shape)}")
    lens_rows = [r for r in rows if r < num_layers]
    has_output = num_layers in rows
    stats = np.empty((len(STATISTICS), len(rows), positions), np.float32)
    top_ids = np.empty((len(rows), positions, top_k), np.int64)
    top_probs = np.empty((len(rows), positions, top_k), np.float32)
    last_logits = None
    # Logits are stacked lens rows first, then the output row; `slot` puts each back in the caller's order.
    slot = [rows.index(r) for r in [*lens_rows, *([num_layers] if has_output else [])]]
    n_cells = len(slot)

    # Per chunk: the logits, their log-probs and a temporary of the same size, in float32.
    block = max(1, chunk_bytes // (3 * 4 * vocab * (len(lens_rows) + 1)))
    targets = targets.to(forward.hidden.device)
    for start in range(0, positions, block):
        end = min(positions, start + block)
        # One head GEMM for the lens rows and the model's own output row (which the forward KL
        # needs even when it is not shown): the unembedding matrix is read once per chunk.
        head_in = adapter.head_input(forward.hidden[num_layers, start:end])[None]
        if lens_rows:
            translated = lens.translate(forward.hidden[lens_rows, start:end], lens_rows)
            head_in = torch.cat([adapter.final_norm(translated).to(head_in.dtype), head_in])
        logits = adapter.decode(head_in).float()
        model_logits = logits[-1]
        logits = logits[:n_cells]
        if keep_last_logits and end == positions:
            last_logits = torch.empty_like(logits[:, -1])
            last_logits[torch.tensor(slot)] = logits[:, -1]
        cells = cell_statistics(logits, targets[start:end], log_probs(model_logits), top_k)
        stats[:, slot, start:end] = cells.values.cpu().numpy()
        top_ids[slot, start:end] = cells.top_ids.cpu().numpy()
        top_probs[slot, start:end] = cells.top_probs.cpu().numpy()
    return LensGrid(rows=rows, statistics=stats, top_ids=top_ids, top_probs=top_probs, last_logits=last_logits)
