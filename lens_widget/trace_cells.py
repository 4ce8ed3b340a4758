"""The lens grid's whole reduction as it runs inside an nnsight trace: hidden states in, cells out.

On NDIF the trace runs on the server, next to a model this process never holds: the final norm and
the head are reached only as nnsight envoys (callables that run the server's modules), and this
module's code is shipped with the request by value (`nnsight.register`), so it may import only
what NDIF has installed (torch) and the two modules shipped with it (statistics, logit_transform).
Only the cells leave the trace: [5, rows, positions] statistics and the top-k, not the logits.

The numbers are those of `compute_grid` with the same kernels (cell_statistics), from the model's
own logits for its output row; the first request also replays the final norm on the last block's
output, which is how a model whose weights live on the server is checked (see nnsight_trace.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from .logit_transform import LogitTransform
from .statistics import cell_statistics, log_probs

MAX_CHUNK_ELEMENTS = 2**26
"""float32 logits per chunk of positions (256 MiB): a row of 8,192 positions over a 128k vocabulary
would be 4 GiB with its temporaries."""

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
        model_logprobs = log_probs(own)
        targets = targets.to(device)

        def decode(h: torch.Tensor) -> torch.Tensor:
            for module in final_norm:
                h = _residual(module(h))
            return transform(_residual(head(h)).float())

        replayed = decode(_residual(last_block)[0, -1:])
        check = torch.stack([(replayed - own[-1:]).abs().max(), own[-1].abs().max()]).cpu()
        chunk = max(1, MAX_CHUNK_ELEMENTS // own.shape[-1])
        stats, top_ids, top_probs = [], [], []
        for row in rows:
            parts = []
            for start in range(0, own.shape[0], chunk):
                end = start + chunk
                if row == num_layers:
                    row_logits = own[start:end]
                else:
                    h = hidden_states[row][0, start:end]
                    if row in translators:
                        weight, bias = translators[row]
                        h = h + F.linear(h, weight.to(h), None if bias is None else bias.to(h))
                    row_logits = decode(h)
                parts.append(cell_statistics(row_logits, targets[start:end], model_logprobs[start:end], top_k))
            stats.append(torch.cat([p.values for p in parts], dim=1).cpu())
            top_ids.append(torch.cat([p.top_ids for p in parts]).cpu())
            top_probs.append(torch.cat([p.top_probs for p in parts]).cpu())
        return torch.stack(stats, dim=1), torch.stack(top_ids), torch.stack(top_probs), check


def _residual(value: Any) -> torch.Tensor:
    """Modules return a tensor, a tuple or a ModelOutput: the residual stream is the first tensor."""
    while not isinstance(value, torch.Tensor):
        value = next(iter(value.values())) if isinstance(value, dict) else value[0]
    return value
