"""The lens grid's whole reduction as it runs inside an nnsight trace: hidden states in, cells out.

On NDIF the trace runs on the server, next to a model this process never holds: the final norm and
the head are reached only as nnsight envoys (callables that run the server's modules), and this
module's code is shipped with the request by value (`nnsight.register`), so it may import only
what NDIF has installed (torch) and the two modules shipped with it (statistics, logit_transform).
Only the cells leave the trace: [5, rows, positions] statistics and the top-k, not the logits.

The numbers are those of `compute_grid` with the same kernels (statistics.grid_statistics: rows
stacked with the model's own logits, position block by block), from the model's own logits for its
output row; the first request also replays the final norm on the last block's
output, which is how a model whose weights live on the server is checked (see nnsight_trace.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from .logit_transform import LogitTransform
from .statistics import grid_statistics

MAX_CHUNK_ELEMENTS = 2**26
"""float32 logits per block of positions (256 MiB, every row stacked): a row of 8,192 positions over
a 128k vocabulary would be 4 GiB with its temporaries."""
SLAB_ELEMENTS = 2**21
"""Logits per slab of a block on a CPU, swept by the statistics while in cache (grid.SLAB_FLOATS)."""

Translator = tuple[torch.Tensor, torch.Tensor | None]
"""A tuned-lens translator's weight and bias: h ↦ h + h·Wᵀ + b."""


def trace_cells(
    hidden_states: Sequence[torch.Tensor],
    logits: torch.Tensor,
    last_block: Any,
    final_norm: Sequence[Callable[[torch.Tensor], Any]],
    head: Callable[[torch.Tensor], Any],
    transform: LogitTransform,
    translators: Mapping[int, Translator],
    rows: Sequence[int],
    targets: torch.Tensor,
    top_k: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Statistics [5, rows, T], top-k ids and probabilities [rows, T, k], on the host, and how far
    replaying the final norm and head on the last block's output lands from the model's own logits
    (float32 [2]: the largest difference, the largest logit), for the caller to check.

    hidden_states, logits: the model's output (batch of one); last_block: the last block's output.
    final_norm, head: the modules run between the last block and the logits, and the head (envoys in
      a trace). rows: layer indices, num_layers being the model's own output.
    """
    with torch.no_grad():
        num_layers = len(hidden_states) - 1
        own = logits[0].float()
        device = own.device
        targets = targets.to(device)

        def decode(h: torch.Tensor) -> torch.Tensor:
            for module in final_norm:
                h = _residual(module(h))
            return transform(_residual(head(h)).float())

        replayed = decode(_residual(last_block)[0, -1:])
        check = torch.stack([(replayed - own[-1:]).abs().max(), own[-1].abs().max()]).cpu()
        lens_rows = [row for row in rows if row != num_layers]
        stacked, positions, vocab = len(lens_rows) + 1, own.shape[0], own.shape[-1]  # + the model's own
        block = max(1, MAX_CHUNK_ELEMENTS // (vocab * stacked))
        on_cpu = device.type == "cpu"
        slab = max(1, SLAB_ELEMENTS // (vocab * stacked)) if on_cpu else block
        # One logits buffer and (on a CPU) one slab-sized scratch, reused block after block, as the grid does.
        buffer = torch.empty((min(block, positions), stacked, vocab), dtype=torch.float32, device=device)
        scratch = torch.empty((min(slab, positions), stacked, vocab), dtype=torch.float32, device=device)
        parts = []
        for start in range(0, positions, block):
            end = min(positions, start + block)
            logits = buffer[: end - start]
            if lens_rows:  # every lens row of the block through the final norm and head at once: one GEMM
                lensed = []
                for row in lens_rows:
                    h = hidden_states[row][0, start:end]
                    if row in translators:
                        weight, bias = translators[row]
                        h = h + F.linear(h, weight.to(h), None if bias is None else bias.to(h))
                    lensed.append(h)
                logits[:, :-1] = decode(torch.stack(lensed, dim=1))
            logits[:, -1] = own[start:end]
            for first in range(0, end - start, slab):
                last = min(end - start, first + slab)
                target = targets[start + first : start + last]
                cells = grid_statistics(
                    logits[first:last], target, top_k, scratch=scratch[: last - first], sync_free=not on_cpu
                )
                parts.append(cells)
        # [positions, stacked] → the rows asked for, in their order: the output row is the last slot.
        index = torch.tensor([lens_rows.index(r) if r != num_layers else stacked - 1 for r in rows], device=device)
        values = torch.cat([p.values for p in parts], dim=1).index_select(2, index).permute(0, 2, 1)
        top_ids = torch.cat([p.top_ids for p in parts]).index_select(1, index).permute(1, 0, 2)
        top_probs = torch.cat([p.top_probs for p in parts]).index_select(1, index).permute(1, 0, 2)
        return values.contiguous().cpu(), top_ids.contiguous().cpu(), top_probs.contiguous().cpu(), check


def _residual(value: Any) -> torch.Tensor:
    """Modules return a tensor, a tuple or a ModelOutput: the residual stream is the first tensor."""
    while not isinstance(value, torch.Tensor):
        value = next(iter(value.values())) if isinstance(value, dict) else value[0]
    return value
