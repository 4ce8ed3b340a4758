"""The lens grid: statistics and top-k for every (row, position) cell, computed in bounded chunks.

Rows are indices into the model's layers: 0 … L-1 are lens rows (hidden_states[i] through the lens),
L is the model's own output, and L + 1 … 2L the sub-layer rows a forward may carry (rows.py). Cells
are processed position-block by position-block; each block's cells of every row go through one
unembedding GEMM into one reused float32 buffer, and every statistic comes from that one logits
chunk, so peak memory is bounded by `chunk_bytes` rather than rows × positions × vocab. On a CPU
the statistics then sweep the chunk slab by slab (a few positions, SLAB_FLOATS logits), each slab's
passes running while it is in cache (statistics.grid_statistics).

On an accelerator the GEMM runs in half precision (float32 logits and statistics), nothing waits for
the device inside the chunk loop, and the whole grid's results go to the host at once at the end.

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
from .capacity import chunk_bytes_for, gemm_dtype
from .cells import Cells
from .errors import LensDeviceError
from .lenses import Lens, LogitLens
from .rows import aligned, label, translate, with_sublayers
from .statistics import (
    DIFF_STATISTICS,
    NO_TARGET,
    STATISTICS,
    CellStatistics,
    grid_statistics_and_lse,
    pair_statistics_of,
    pinned_log_probs,
)

SLAB_FLOATS = 2**21
"""Logits per slab of a chunk on a CPU (8 MB): each slab goes through its statistics' sweeps while
it stays in cache, so only the head GEMM, which gains from large blocks, works on whole chunks."""


@dataclass(frozen=True, kw_only=True)
class LensGrid(Cells):
    """The cells of a set of rows over a range of positions (cells.Cells), and where they came from."""

    rows: tuple[int, ...]
    """Row id of each row (rows.py: a layer index, `num_layers` the model's own output, then the
    sub-layer rows). In model B's grid of a pair
    of different depths, B's layer paired with each of A's rows (so it may repeat)."""
    last_logits: torch.Tensor | None = None
    """float32 [rows, vocab] at the last position, when asked for: an append changes that
    position's next token, and these give its new cross-entropy and rank without a second GEMM."""
    work_bytes: int = 0
    """Bytes of the chunk buffers the computation allocated on its device (in a pair grid, both
    models' and the pair's, on A's grid): what `chunk_bytes` bounded."""

    def statistic(self, name: str) -> np.ndarray:
        """[rows, positions] of one statistic by name."""
        return self.stats[STATISTICS.index(name)]


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


def stride_rows(num_layers: int, stride: int, sublayers: bool = False) -> list[int]:
    """The rows a layer stride shows, from the embeddings up: 0, s, 2s, … < L, and always the output
    row L; with `sublayers`, each of them but 0 with its ℓ.attn row under it (rows.py)."""
    layers = [*range(0, num_layers, stride), num_layers]
    return with_sublayers(layers, num_layers) if sublayers else layers


def row_labels(rows: Sequence[int], num_layers: int) -> list[str]:
    """tuned-lens's labels: the translator index for lens rows, "output" for the model's own, and
    "ℓ.attn" for a sub-layer row (rows.label)."""
    return [label(r, num_layers) for r in rows]


def aligned_layers(rows: Sequence[int], num_layers: int, other_layers: int) -> list[int]:
    """The row of a model of `other_layers` layers at the relative depth of each of `rows` (of a model
    of `num_layers`): layer round(r × other / num), halves rounded up, in exact integers, and for a
    sub-layer row ℓ.attn the .attn row of ℓ's pair (rows.aligned). The output pairs with the output,
    layer 0 (the embeddings) with layer 0; equal depths pair each row with itself."""
    return aligned(rows, num_layers, other_layers)


def pair_row_labels(rows: Sequence[int], num_layers: int, other_layers: int) -> list[str]:
    """Labels of an A/B grid: A's plain labels when the depths agree, else both rows of each lens row
    ("3 | 6", "5 | output" where B's nearest layer is its output, "3.attn | 6.attn") and "output"."""
    if num_layers == other_layers:
        return row_labels(rows, num_layers)
    labels = []
    for row, other in zip(rows, aligned_layers(rows, num_layers, other_layers), strict=True):
        if row == num_layers:
            labels.append("output")
        else:
            labels.append(f"{label(row, num_layers)} | {label(other, other_layers)}")
    return labels


class _Side:
    """One model's part of each chunk: its rows stacked for one head GEMM, and where each cell goes.

    The stack holds each distinct lens row once, then the model's own output (always: the forward KL
    of every row needs it); `index` maps the caller's rows, which may repeat, onto it.
    """

    def __init__(self, model: GridInput, rows: Sequence[int], top_k: int) -> None:
        self.adapter, self.hidden = model.adapter, model.forward.hidden
        self.lens = LogitLens() if model.lens is None else model.lens
        self.device = self.adapter.device
        check_lens_device(self.lens, self.device)
        num_layers = self.adapter.num_layers
        self.lens_rows = list(dict.fromkeys(r for r in rows if r != num_layers))  # sub-layer rows too
        stacked = [*self.lens_rows, num_layers]
        self.n_cells = len(stacked) if num_layers in rows else len(self.lens_rows)
        self.index = [stacked.index(r) for r in rows]
        self.index_tensor = torch.tensor(self.index, device=self.device)  # picks without a host copy
        self.identity = self.index == list(range(self.n_cells))
        vocab = self.adapter.vocab_size
        if not 1 <= top_k <= vocab:
            raise ValueError(f"top_k must be in 1..{vocab} (the vocabulary size), got {top_k}")
        self.top_k = top_k

    @property
    def stacked(self) -> int:
        return len(self.lens_rows) + 1

    def logits_into(self, out: torch.Tensor, start: int, end: int, dtype: torch.dtype | None) -> torch.Tensor:
        """float32 logits of the lens rows, then the model's own output, position-major: written into
        `out` [end - start, stacked, vocab], where each position's rows are contiguous, so that a slab
        of positions is one contiguous piece. One head GEMM for every row: the unembedding matrix is
        read once. A head called as a module (`ModelAdapter.plain_head`) gets the rows-major input,
        [stacked, positions, d], as every other caller gives it. Hidden states kept elsewhere (the
        host, or the device of their layer) come to the head's device a [rows, positions, d] block at
        a time: never the logits."""
        adapter, hidden, device = self.adapter, self.hidden, self.device
        head_in = adapter.head_input(hidden[adapter.num_layers, start:end].to(device))[None]
        if self.lens_rows:
            lens_hidden = hidden[self.lens_rows, start:end].to(device)
            translated = translate(self.lens, lens_hidden, self.lens_rows, adapter.num_layers)
            head_in = torch.cat([adapter.final_norm(translated).to(head_in.dtype), head_in])
        if adapter.plain_head:
            adapter.decode(head_in.transpose(0, 1), out=out, dtype=dtype)
        else:
            adapter.decode(head_in, out=out.transpose(0, 1), dtype=dtype)
        return out

    def pick(self, tensor: torch.Tensor) -> torch.Tensor:
        """The caller's rows of a stacked tensor (dimension 0), without a copy when they are the stack."""
        return tensor if self.identity else tensor[self.index]


class _Output:
    """A grid's arrays, written block by block in the caller's row order: numpy arrays (through
    tensors sharing their memory) on a CPU, tensors on the device elsewhere, moved to the host once."""

    def __init__(self, rows: int, positions: int, k: int, device: torch.device | None = None, pins: int = 0) -> None:
        shapes = {"stats": (len(STATISTICS), rows, positions), "top_ids": (rows, positions, k)}
        shapes |= {"top_probs": shapes["top_ids"], "pins": (pins, rows, positions), "lse": (rows, positions)}
        types = {name: torch.float32 for name in shapes} | {"top_ids": torch.int64}
        self.tensors = {name: self.tensor(shape, types[name], device) for name, shape in shapes.items()}
        self.last_logits: torch.Tensor | None = None

    @staticmethod
    def tensor(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device | None) -> torch.Tensor:
        """Uninitialised; on a CPU a numpy array's memory, so that .numpy() at the end copies nothing."""
        if device is None or device.type == "cpu":
            return torch.from_numpy(np.empty(shape, {torch.float32: np.float32, torch.int64: np.int64}[dtype]))
        return torch.empty(shape, dtype=dtype, device=device)

    def write_slab(self, side: _Side, cells: CellStatistics, start: int, end: int, slab: _Slab) -> None:
        """Cells [..., positions, stacked] (`grid_statistics_and_lse`, position-major), on the device,
        with the slab's pinned items and log-sum-exps."""
        index = side.index_tensor
        self.tensors["stats"][:, :, start:end] = cells.values.index_select(2, index).transpose(1, 2)
        self.tensors["top_ids"][:, start:end] = cells.top_ids.index_select(1, index).transpose(0, 1)
        self.tensors["top_probs"][:, start:end] = cells.top_probs.index_select(1, index).transpose(0, 1)
        self.tensors["pins"][:, :, start:end] = slab.pins.index_select(2, index).transpose(1, 2)
        self.tensors["lse"][:, start:end] = slab.lse.index_select(1, index).transpose(0, 1)

    def grid(self, rows: Sequence[int], work_bytes: int = 0) -> LensGrid:
        arrays = {name: tensor.cpu().numpy() for name, tensor in self.tensors.items()}  # one copy each, off a CPU
        return LensGrid(**arrays, rows=tuple(rows), last_logits=self.last_logits, work_bytes=work_bytes)


@dataclass(frozen=True)
class _Slab:
    """What a slab adds to its cells' statistics: the pinned items and each cell's log-sum-exp."""

    pins: torch.Tensor
    """[P, positions, stacked] log-probabilities."""
    lse: torch.Tensor
    """[positions, stacked]: of the logits themselves."""


def _slab_statistics(
    logits: torch.Tensor,
    targets: torch.Tensor,
    k: int,
    scratch: torch.Tensor,
    sync_free: bool,
    pins: list[torch.Tensor],
) -> tuple[CellStatistics, torch.Tensor, torch.Tensor, _Slab]:
    """`grid_statistics_and_lse` of a slab, then its pinned items from the centred logits it leaves
    in place, before the next slab overwrites them."""
    cells, lse, valid, peak = grid_statistics_and_lse(logits, targets, k, scratch=scratch, sync_free=sync_free)
    return cells, lse, valid, _Slab(pinned_log_probs(logits, lse, valid, pins), peak + lse)


def pin_tensors(pins: Sequence[Sequence[int]], vocab: int, device: torch.device) -> list[torch.Tensor]:
    """Each pinned item's token ids as a tensor on `device`, checked against the vocabulary."""
    out = []
    for item in pins:
        ids = [int(i) for i in item]
        if not ids or any(not 0 <= i < vocab for i in ids):
            raise ValueError(f"a pinned item must be token ids in 0..{vocab - 1} (at least one), got {ids}")
        out.append(torch.tensor(sorted(set(ids)), dtype=torch.long, device=device))
    return out


def _check_rows(rows: Sequence[int], forward: ModelForward, *, distinct: bool = True) -> tuple[int, ...]:
    """Rows the forward's hidden states hold: 0 … L, and the sub-layer rows L + 1 … 2L when it has them."""
    last = forward.hidden.shape[0] - 1
    rows = tuple(int(r) for r in rows)
    if not rows or (distinct and len(set(rows)) != len(rows)) or any(not 0 <= r <= last for r in rows):
        kind = "distinct indices" if distinct else "indices"
        raise ValueError(f"rows must be {kind} in 0..{last} (at least one), got {rows}")
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
    chunk_bytes: int | None = None,
    keep_last_logits: bool = False,
    *,
    gemm_dtype: torch.dtype | None = None,
    sync_free: bool | None = None,
    pins: Sequence[Sequence[int]] = (),
) -> LensGrid:
    """Every statistic of `rows` at every position of `forward`, and the log-probability of each
    pinned item (token ids whose probabilities add up) in each cell.

    lens: None is the logit lens, as everywhere else in the package.
    targets: [positions] next-token ids (NO_TARGET where none), see `next_token_targets`.
    chunk_bytes: the float32 working memory of one chunk of cells; by default 256 MiB on a CPU and a
      share of the free memory on an accelerator (capacity.chunk_bytes_for).
    gemm_dtype: the head GEMM's precision; by default the head weight's on a CPU, and on an
      accelerator half precision: bfloat16 where the device has it, else float16 (capacity.gemm_dtype).
      The logits come out in float32 (accumulated so where the device can) and every statistic is float32.
    sync_free: never wait for the device inside the chunk loop (see `grid_statistics`): every
      result stays on the device until the whole grid is moved to the host at once. By default on
      any device but a CPU, where it is the same code (and tested as such) but slower.
    """
    rows = _check_rows(rows, forward)
    side = _Side(GridInput(adapter, lens, forward), rows, top_k)
    positions = forward.hidden.shape[1]
    _check_targets(targets, positions)
    device = side.device
    on_cpu = device.type == "cpu"
    sync_free = not on_cpu if sync_free is None else sync_free
    gemm_dtype = _gemm_dtype(adapter, device, gemm_dtype)
    out = _Output(len(rows), positions, top_k, device, len(pins))
    stacked, vocab = side.stacked, adapter.vocab_size
    pin_ids = pin_tensors(pins, vocab, device)
    # Per chunk: the logits, the one chunk-sized tensor; on a CPU, slabs of it go through the
    # statistics with one reused cache-sized temporary. Without syncs
    # the slab is the chunk, and the exact form of every cell is computed too: a few more temporaries.
    block = _block(_chunk_bytes(chunk_bytes, device), vocab * stacked * (1 if not sync_free else 6))
    block = max(1, min(block, positions))
    slab = max(1, min(block, SLAB_FLOATS // (vocab * stacked))) if on_cpu and not sync_free else block
    buffer = torch.empty((block, stacked, vocab), dtype=torch.float32, device=device)
    scratch = torch.empty((slab, stacked, vocab), dtype=torch.float32, device=device)
    targets = targets.to(device)
    with adapter.head_in_place():
        for start in range(0, positions, block):
            end = min(positions, start + block)
            logits = side.logits_into(buffer[: end - start], start, end, gemm_dtype)
            if keep_last_logits and end == positions:
                out.last_logits = side.pick(logits[-1, : side.n_cells]).clone()
            for first in range(start, end, slab):
                last = min(end, first + slab)
                n = last - first
                z = logits[first - start : last - start]
                cells, _, _, slab_extra = _slab_statistics(
                    z, targets[first:last], top_k, scratch[:n], sync_free, pin_ids
                )
                out.write_slab(side, cells, first, last, slab_extra)
    return out.grid(rows, _nbytes(buffer, scratch))


@torch.inference_mode()
def compute_pair_grid(
    a: GridInput,
    b: GridInput,
    targets: torch.Tensor,
    rows: Sequence[int],
    top_k: int = 10,
    chunk_bytes: int | None = None,
    keep_last_logits: bool = False,
    rows_b: Sequence[int] | None = None,
    *,
    gemm_dtype: torch.dtype | None = None,
    sync_free: bool | None = None,
    pins: Sequence[Sequence[int]] = (),
) -> PairGrid:
    """Both models' grids at `rows` (A's layer indices) and the diff statistics of each pair of cells.

    rows_b: B's layer paired with each of `rows`; by default `aligned_layers` (the rows themselves when
    the depths agree). Per position block: A's head GEMM, B's, then slab by slab each model's
    statistics and the pair's, from log-probabilities taken once from each slab while it is in cache,
    so the memory bound is `chunk_bytes` as in `compute_grid`. gemm_dtype, sync_free, pins: as there
    (the pair statistics need no sync either); the diff is computed on A's device.
    """
    layers_a, layers_b = a.adapter.num_layers, b.adapter.num_layers
    rows = _check_rows(rows, a.forward)
    rows_b = aligned_layers(rows, layers_a, layers_b) if rows_b is None else rows_b
    rows_b = _check_rows(rows_b, b.forward, distinct=False)
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
    device = a.adapter.device
    on_cpu = device.type == "cpu"
    sync_free = not on_cpu if sync_free is None else sync_free
    sides = [_PairSide(x, r, top_k, positions, gemm_dtype, sync_free, pins) for x, r in ((a, rows), (b, rows_b))]
    diff = _Output.tensor((len(DIFF_STATISTICS), len(rows), positions), torch.float32, device)
    # Per chunk: each model's logits; per slab, a reused temporary of each model's and the picked
    # log-probabilities and probabilities of both (the pair's); without syncs, as in compute_grid.
    stacked = sides[0].side.stacked + sides[1].side.stacked
    floats = vocab * stacked * (1 if not sync_free else 6)
    block = max(1, min(positions, _block(_chunk_bytes(chunk_bytes, device), floats)))
    per_slab = vocab * (stacked + 4 * len(rows))
    slab = max(1, min(block, SLAB_FLOATS // per_slab)) if on_cpu and not sync_free else block
    for side in sides:
        side.allocate(block, slab, len(rows), device)
    targets = targets.to(device)
    with a.adapter.head_in_place(), b.adapter.head_in_place():
        for start in range(0, positions, block):
            end = min(positions, start + block)
            for side in sides:
                side.decode(start, end, keep_last_logits and end == positions)
            for first in range(start, end, slab):
                last = min(end, first + slab)
                (logp_a, p_a, valid_a, top1_a), (logp_b, p_b, valid_b, top1_b) = (
                    side.slab(targets, start, first, last) for side in sides
                )
                pair = pair_statistics_of(logp_a, logp_b, valid_a, valid_b, top1_a, top1_b, p_a, p_b, sync_free)
                diff[:, :, first:last] = pair.transpose(1, 2)
    work = _nbytes(*(t for side in sides for t in (side.buffer, side.scratch, side.logp, side.p)))
    grids = [side.out.grid(r, work if side is sides[0] else 0) for side, r in zip(sides, (rows, rows_b), strict=True)]
    return PairGrid(grids[0], grids[1], diff.cpu().numpy())


class _PairSide:
    """One model's part of a pair grid: its chunk buffer, its grid, and per slab what the pair needs."""

    def __init__(
        self,
        model: GridInput,
        rows: Sequence[int],
        top_k: int,
        positions: int,
        gemm_dtype: torch.dtype | None,
        sync_free: bool,
        pins: Sequence[Sequence[int]],
    ) -> None:
        self.side = _Side(model, rows, top_k)
        self.device = self.side.device
        self.out = _Output(len(rows), positions, top_k, self.device, len(pins))
        self.pins = pin_tensors(pins, model.adapter.vocab_size, self.device)
        self.gemm_dtype = _gemm_dtype(model.adapter, self.device, gemm_dtype)
        self.sync_free = sync_free

    def allocate(self, block: int, slab: int, rows: int, pair_device: torch.device) -> None:
        stacked, vocab = self.side.stacked, self.side.adapter.vocab_size
        self.buffer = torch.empty((block, stacked, vocab), dtype=torch.float32, device=self.device)
        self.scratch = torch.empty((slab, stacked, vocab), dtype=torch.float32, device=self.device)
        self.logp = torch.empty((slab, rows, vocab), dtype=torch.float32, device=pair_device)
        self.p = torch.empty((slab, rows, vocab), dtype=torch.float32, device=pair_device)
        self.index = self.side.index_tensor

    def decode(self, start: int, end: int, keep_last: bool) -> None:
        self.start = start
        self.logits = self.side.logits_into(self.buffer[: end - start], start, end, self.gemm_dtype)
        if keep_last:
            self.out.last_logits = self.side.pick(self.logits[-1, : self.side.n_cells]).clone()

    def slab(
        self, targets: torch.Tensor, start: int, first: int, last: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """This model's cells of positions first:last, written to its grid; returns, in the rows'
        order on the pair's device: log-probabilities, probabilities, validity and top-1 ids."""
        n = last - first
        z = self.logits[first - start : last - start]
        targets = targets[first:last].to(self.device)
        cells, lse, valid, extra = _slab_statistics(
            z, targets, self.side.top_k, self.scratch[:n], self.sync_free, self.pins
        )
        self.out.write_slab(self.side, cells, first, last, extra)
        logp, p = self.logp[:n], self.p[:n]  # z is left centred in place: log p = z - lse
        picked = z[:, : self.side.n_cells] if self.side.identity else z.index_select(1, self.index)
        torch.sub(picked.to(logp.device), lse[:, self.index, None].to(logp.device), out=logp)
        torch.exp(logp, out=p)
        top1 = cells.top_ids[:, self.index, 0]
        return logp, p, valid[:, self.index].to(logp.device), top1.to(logp.device)


def _nbytes(*tensors: torch.Tensor) -> int:
    return sum(t.nbytes for t in tensors)


def check_lens_device(lens: Lens, device: torch.device) -> None:
    """A lens module given to a grid must sit where the head computes: torch's own error names neither
    the lens nor the fix. (Sessions and training move their lenses there themselves.)"""
    if not isinstance(lens, torch.nn.Module):
        return
    devices = {p.device for p in lens.parameters()}
    if devices and devices != {device}:
        where = ", ".join(sorted(str(d) for d in devices))
        raise LensDeviceError(
            f"the lens is on {where} but the model's head computes on {device}, where the lens rows are decoded: "
            f"move it there with lens.fit(adapter) (which also checks it) or lens.to({str(device)!r})"
        )


def _gemm_dtype(adapter: ModelAdapter, device: torch.device, dtype: torch.dtype | None) -> torch.dtype | None:
    """The head GEMM's precision: as asked, else what the device computes best (capacity.gemm_dtype)."""
    return dtype if dtype is not None else gemm_dtype(device, adapter.dtype)


def _chunk_bytes(chunk_bytes: int | None, device: torch.device) -> int:
    """As asked, else what the device has room for now."""
    return chunk_bytes if chunk_bytes is not None else chunk_bytes_for(device)
