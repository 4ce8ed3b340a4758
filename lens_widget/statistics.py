"""Per-cell statistics of a lens, as pure functions of logits. All in nats.

A *cell* is one (row, position) of the grid, holding a next-token distribution. Functions take a
batch of cells as a [..., vocab] tensor. `cell_statistics` computes every statistic and the top-k
from one logits chunk with a single log-sum-exp per cell; the single-statistic functions exist for
callers and tests that want one number, and agree with it.

The last position has no real next token, so its cross-entropy and rank are NaN ("missing"), never
an invented target such as EOS (which is what tuned-lens plots show there).

A cell whose logits are not finite (a NaN anywhere, or +inf: a broken lens or model weight, an
overflow) is invalid: every statistic and top-k probability of it is NaN, so a view can say so. Masks
written as -inf logits are not invalid; those tokens just have probability 0. Forward KL is NaN where
the model's own output is invalid.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

STATISTICS: tuple[str, ...] = ("entropy", "cross_entropy", "forward_kl", "max_probability", "rank")
"""Order of the statistic axis everywhere (grid arrays, payloads)."""

DIFF_STATISTICS: tuple[str, ...] = ("kl_ab", "kl_ba", "js", "top1_agree")
"""Order of the A/B diff axis: statistics of a pair of cells (model A's and model B's at one row and
position), in nats where they have units. B − A of each single-model statistic is not here: receivers
take it from the two grids, so it costs no bytes and is exactly 0 for a model diffed with itself."""

STATISTIC_INFO: dict[str, dict[str, str | bool]] = {
    "entropy": {"label": "Entropy", "units": "nats", "lower_is_better": True, "scale": "sequential"},
    "cross_entropy": {"label": "Cross-entropy", "units": "nats", "lower_is_better": True, "scale": "sequential"},
    "forward_kl": {"label": "KL(model‖lens)", "units": "nats", "lower_is_better": True, "scale": "divergence"},
    "max_probability": {"label": "Max probability", "units": "", "lower_is_better": False, "scale": "probability"},
    "rank": {"label": "Rank", "units": "", "lower_is_better": True, "scale": "rank"},
    "kl_ab": {"label": "KL(A‖B)", "units": "nats", "lower_is_better": True, "scale": "divergence"},
    "kl_ba": {"label": "KL(B‖A)", "units": "nats", "lower_is_better": True, "scale": "divergence"},
    "js": {"label": "JS(A, B)", "units": "nats", "lower_is_better": True, "scale": "divergence"},
    "top1_agree": {"label": "Top-1 agrees", "units": "", "lower_is_better": False, "scale": "probability"},
}
"""Everything a view needs to show a statistic, defined here once and sent to views with the
vocabulary: its label, the units its values are read in (empty for plain numbers: a probability, a
rank), whether lower is better (the view reverses those so bright always means "confident / close"),
and its scale: "sequential" (0 to the largest value shown), "divergence" (the same, on a scale of its
own), "probability" (0 to 1) or "rank" (logarithmic from 1). Differences B − A are drawn on a
diverging scale centred at 0."""

UNITS: dict[str, str] = {name: str(info["units"]) for name, info in STATISTIC_INFO.items()}
"""Units of each statistic (from STATISTIC_INFO)."""


def statistic_info() -> list[dict[str, str | bool]]:
    """STATISTIC_INFO as a list in axis order (single-model statistics, then diff statistics)."""
    return [{"name": name, **STATISTIC_INFO[name]} for name in (*STATISTICS, *DIFF_STATISTICS)]


NO_TARGET = -1
"""Target id of a position without a real next token (the last one)."""


def log_probs(logits: torch.Tensor) -> torch.Tensor:
    """Float32 log-probabilities, whatever precision the model computed its logits in.

    Written exactly as `cell_statistics` normalises, so the output row's KL to itself is exactly 0.
    """
    return _normalise(logits)[0]


def _normalise(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probabilities, and which cells are valid: their log-sum-exp is finite exactly when no logit
    is NaN or +inf and some token is possible, so validity costs nothing extra here."""
    logits = logits.float()
    lse = torch.logsumexp(logits, dim=-1, keepdim=True)
    return logits - lse, torch.isfinite(lse[..., 0])


def _valid(values: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    """Given validity, or one pass over logits or log-probs: amax is NaN with any NaN, inf with any +inf."""
    return torch.isfinite(values.amax(-1)) if valid is None else valid


def entropy(logprobs: torch.Tensor) -> torch.Tensor:
    """H(p) = -sum p log p; 0 * log 0 counts as 0 (tested as p == 0, so that a NaN stays NaN)."""
    p = logprobs.exp()
    return -torch.where(p == 0, 0.0, p * logprobs).sum(-1)


def cross_entropy(logprobs: torch.Tensor, targets: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """-log p(target); NaN where the target is NO_TARGET, and in an invalid cell even when the target's
    own log-probability is a number (an +inf logit elsewhere makes it -inf)."""
    ok = (targets >= 0) & _valid(logprobs, valid)
    picked = logprobs.gather(-1, targets.clamp(min=0)[..., None])[..., 0]
    return torch.where(ok, -picked, torch.nan)


def forward_kl(model_logprobs: torch.Tensor, logprobs: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """KL(model output || lens) = sum p_model (log p_model - log p_lens); NaN where either is invalid
    (p == 0 is skipped by testing equality, so a NaN model probability is not)."""
    p = model_logprobs.exp()
    kl = torch.where(p == 0, 0.0, p * (model_logprobs - logprobs)).sum(-1).clamp(min=0.0)
    return torch.where(_valid(logprobs, valid), kl, torch.nan)


def max_probability(logprobs: torch.Tensor) -> torch.Tensor:
    return logprobs.max(-1).values.exp()


def rank(logits: torch.Tensor, targets: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """1-based rank of the target: 1 + how many tokens score strictly higher (ties favour it).

    Counting beats sorting the vocabulary (what tuned-lens does, twice per cell). NaN where the
    target is NO_TARGET, and in an invalid cell (comparisons with NaN are false, which would make
    any target rank 1); a float so that missing can be said.
    """
    ok = (targets >= 0) & _valid(logits, valid)
    score = logits.gather(-1, targets.clamp(min=0)[..., None])
    higher = (logits > score).sum(-1)
    return torch.where(ok, (higher + 1).float(), torch.nan)


def top_k(logprobs: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k most likely tokens per cell, most likely first, with their probabilities."""
    values, ids = logprobs.topk(k, dim=-1)
    return ids, values.exp()


@dataclass(frozen=True)
class CellStatistics:
    """Every statistic of a batch of cells, float32 on the logits' device."""

    values: torch.Tensor
    """[len(STATISTICS), *cells], in STATISTICS order; all NaN in an invalid cell."""
    top_ids: torch.Tensor
    """[*cells, k] int64 (meaningless in an invalid cell)."""
    top_probs: torch.Tensor
    """[*cells, k] float32; NaN in an invalid cell."""


def cell_statistics(
    logits: torch.Tensor,
    targets: torch.Tensor,
    model_logprobs: torch.Tensor,
    k: int,
) -> CellStatistics:
    """All statistics of a chunk of cells from one log-sum-exp per cell.

    logits: [..., vocab] in any float dtype (promoted to float32 here).
    targets: next-token ids broadcastable to logits.shape[:-1], NO_TARGET where there is none.
    model_logprobs: float32 log-probabilities of the model's own output at the same positions,
      broadcastable to logits.shape (so one copy serves every row of a position block).
    """
    if logits.ndim < 1 or model_logprobs.shape[-1] != logits.shape[-1]:
        raise ValueError(f"shape mismatch: logits {tuple(logits.shape)}, model_logprobs {tuple(model_logprobs.shape)}")
    if not 1 <= k <= logits.shape[-1]:
        raise ValueError(f"top_k must be in 1..{logits.shape[-1]} (the vocabulary size), got {k}")
    logits = logits.float()
    targets = targets.expand(logits.shape[:-1])
    logp, valid = _normalise(logits)
    top_logp, top_ids = logp.topk(k, dim=-1)
    values = torch.stack(
        [
            entropy(logp),
            cross_entropy(logp, targets, valid),
            forward_kl(model_logprobs, logp, valid),
            top_logp[..., 0].exp(),
            rank(logits, targets, valid),
        ]
    )
    values = torch.where(valid, values, torch.nan)
    top_probs = torch.where(valid[..., None], top_logp.exp(), torch.nan)
    return CellStatistics(values=values, top_ids=top_ids, top_probs=top_probs)
