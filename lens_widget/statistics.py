"""Per-cell statistics of a lens, as pure functions of logits. All in nats.

A *cell* is one (row, position) of the grid, holding a next-token distribution. Functions take a
batch of cells as a [..., vocab] tensor. `cell_statistics` computes every statistic and the top-k
from one logits chunk with a single log-sum-exp per cell; the single-statistic functions exist for
callers and tests that want one number, and agree with it. The lens grid uses `grid_statistics`, the
same statistics of a slab of cells stacked with the model's own output, in fewer sweeps and in place.

The last position has no real next token, so its cross-entropy and rank are NaN ("missing"), never
an invented target such as EOS (which is what tuned-lens plots show there).

A cell whose logits are not finite (a NaN anywhere, or +inf: a broken lens or model weight, an
overflow) is invalid: every statistic and top-k probability of it is NaN, so a view can say so. Masks
written as -inf logits are not invalid; those tokens just have probability 0. Forward KL is NaN where
the model's own output is invalid.

A/B statistics (`pair_statistics`) compare two cells, model A's and model B's at one row and position:
KL both ways, the Jensen–Shannon divergence and whether the top-1 tokens agree. They are written so
that a cell paired with itself gives exactly 0 (not a rounding residue), and NaN when either is invalid.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

STATISTICS: tuple[str, ...] = ("entropy", "cross_entropy", "forward_kl", "max_probability", "rank")
"""Order of the statistic axis everywhere (grid arrays, payloads)."""

DIFF_STATISTICS: tuple[str, ...] = ("kl_ab", "kl_ba", "js", "top1_agree")
"""Order of the A/B diff axis: statistics of a pair of cells (model A's and model B's at one row and
position), in nats where they have units. B − A of each single-model statistic is not here: receivers
take it from the two grids, so it costs no bytes and is exactly 0 for a model diffed with itself."""

STATISTIC_INFO: dict[str, dict[str, str | bool]] = {
    "entropy": {
        "label": "Entropy",
        "units": "nats",
        "lower_is_better": True,
        "scale": "sequential",
        "bound": "ln_vocab",
    },
    "cross_entropy": {
        "label": "Cross-entropy",
        "units": "nats",
        "lower_is_better": True,
        "scale": "sequential",
        "bound": "ln_vocab",
    },
    "forward_kl": {
        "label": "KL(model‖lens)",
        "units": "nats",
        "lower_is_better": True,
        "scale": "divergence",
        "bound": "ln_vocab",
    },
    "max_probability": {
        "label": "Max probability",
        "units": "",
        "lower_is_better": False,
        "scale": "probability",
        "bound": "one",
    },
    "rank": {"label": "Rank", "units": "", "lower_is_better": True, "scale": "rank", "bound": "vocab"},
    "kl_ab": {"label": "KL(A‖B)", "units": "nats", "lower_is_better": True, "scale": "divergence", "bound": "ln_vocab"},
    "kl_ba": {"label": "KL(B‖A)", "units": "nats", "lower_is_better": True, "scale": "divergence", "bound": "ln_vocab"},
    "js": {"label": "JS(A, B)", "units": "nats", "lower_is_better": True, "scale": "divergence", "bound": "ln_2"},
    "top1_agree": {
        "label": "Top-1 agrees",
        "units": "",
        "lower_is_better": False,
        "scale": "probability",
        "bound": "one",
    },
}
"""Everything a view needs to show a statistic, defined here once and sent to views with the
vocabulary: its label, the units its values are read in (empty for plain numbers: a probability, a
rank), whether lower is better (the view reverses those so bright always means "confident / close"),
its scale: "sequential" (0 up), "divergence" (the same, on a scale of its own), "probability" (0 to 1)
or "rank" (logarithmic from 1), and the top of its fixed scale ("bound"): ln V nats (a uniform guess
over the V tokens: the entropy's maximum, and where a cross-entropy or KL says "no better than
chance"), ln 2 (the JS divergence's maximum), 1, or V. A fixed scale is the same for every lens,
model and picture, so pictures can be compared; with the widget's color_scale="view" a picture spans
its own values instead. Differences B − A are drawn on a diverging scale centred at 0, fixed at ± the
bound (ranks on a signed logarithmic one)."""

UNITS: dict[str, str] = {name: str(info["units"]) for name, info in STATISTIC_INFO.items()}
"""Units of each statistic (from STATISTIC_INFO)."""


def statistic_info() -> list[dict[str, str | bool]]:
    """STATISTIC_INFO as a list in axis order (single-model statistics, then diff statistics)."""
    return [{"name": name, **STATISTIC_INFO[name]} for name in (*STATISTICS, *DIFF_STATISTICS)]


NO_TARGET = -1
"""Target id of a position without a real next token (the last one)."""


LN2 = math.log(2.0)
"""The largest Jensen–Shannon divergence, in nats (two distributions with disjoint supports)."""


def log_probs(logits: torch.Tensor) -> torch.Tensor:
    """Float32 log-probabilities, whatever precision the model computed its logits in.

    Written exactly as `cell_statistics` normalises, so the output row's KL to itself is exactly 0.
    """
    return normalise(logits)[0]


def normalise(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Float32 log-probabilities, and which cells are valid: their log-sum-exp is finite exactly when no
    logit is NaN or +inf and some token is possible, so validity costs nothing extra here."""
    logits = logits.float()
    lse = torch.logsumexp(logits, dim=-1, keepdim=True)
    return logits - lse, torch.isfinite(lse[..., 0])


def _valid(values: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
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
    """All statistics of a chunk of cells in a few sweeps over the logits, with two temporaries of
    their size (the logits centred on each cell's largest, and the probabilities):

        entropy       = lse − Σ p·z                   (a batched dot product)
        KL(model‖lens) = Σ p_m log p_m − Σ p_m·z + lse (the middle term another, per row)
        cross-entropy = lse − z[target],  max probability and top-k from one topk of z,
        rank          = 1 + #(z > z[target])          (one comparison sweep)

    where z are a cell's centred logits and lse their log-sum-exp. A token with probability 0 and logit −inf
    makes a dot product NaN (0 · −inf); such cells, and cells whose KL is below SMALL_KL (where the
    sum's rounding would show: the output row, late tuned-lens rows), are recomputed term by term
    (`_exact`), so a distribution's KL to itself stays exactly 0.

    logits: [..., vocab] in any float dtype (promoted to float32 here).
    targets: next-token ids broadcastable to logits.shape[:-1], NO_TARGET where there is none.
    model_logprobs: float32 log-probabilities of the model's own output at the same positions,
      broadcastable to logits.shape (so one copy serves every row of a position block).
    """
    if logits.ndim < 1 or model_logprobs.shape[-1] != logits.shape[-1]:
        raise ValueError(f"shape mismatch: logits {tuple(logits.shape)}, model_logprobs {tuple(model_logprobs.shape)}")
    if not 1 <= k <= logits.shape[-1]:
        raise ValueError(f"top_k must be in 1..{logits.shape[-1]} (the vocabulary size), got {k}")
    targets = targets.expand(logits.shape[:-1])
    # Centred on each cell's largest logit: p weighs tokens whose centred logit is near 0, so the dot
    # products below stay small and their float32 rounding with them.
    logits = logits.float()
    peak = logits.amax(dim=-1, keepdim=True)
    z = logits - peak
    p = z.exp()
    total = p.sum(-1)
    p /= total[..., None]
    lse = total.log()  # of z; the logits' own is peak + lse
    valid = torch.isfinite(lse + peak[..., 0])
    entropy_, kl = _entropy_and_kl(z, lse, p, model_logprobs, logits, valid)
    # Order and rank from the logits themselves: centring can round two close logits into a tie.
    top_logits, top_ids = logits.topk(k, dim=-1)
    has_target = targets >= 0
    target_logit = logits.gather(-1, targets.clamp(min=0)[..., None])
    cross = torch.where(has_target, lse - (target_logit - peak)[..., 0], torch.nan)
    higher = (logits > target_logit).sum(-1)
    rank_ = torch.where(has_target, (higher + 1).float(), torch.nan)
    top_probs = (top_logits - peak - lse[..., None]).exp()
    values = torch.stack([entropy_, cross, kl, top_probs[..., 0], rank_])
    values = torch.where(valid, values, torch.nan)
    return CellStatistics(values=values, top_ids=top_ids, top_probs=torch.where(valid[..., None], top_probs, torch.nan))


SMALL_KL = 1e-3
"""Nats below which a cell's KL is recomputed term by term: the fused sum's float32 rounding (about
1e-6 of the logits' size) is then no longer small beside the value."""


def _cross(p_model: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """Σ p_m·z for every cell: one batched product per row of a [rows, positions, vocab] chunk, whose
    p_m [positions, vocab] is shared by its rows (broadcast without a copy)."""
    if logits.ndim == 3 and p_model.shape == logits.shape[1:]:
        return torch.einsum("rtv,tv->rt", logits, p_model)
    return _dot(p_model.expand_as(logits), logits)


def _entropy_and_kl(
    z: torch.Tensor,
    lse: torch.Tensor | float,
    p: torch.Tensor,
    model_logprobs: torch.Tensor,
    logits: torch.Tensor,
    valid: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Entropy and KL(model‖lens) of cells whose log-probabilities are z − lse (z: the logits, or
    already the log-probabilities with lse = 0), p their probabilities, as two batched dot products
    each. Cells where a 0 · −inf term made a sum NaN, or whose KL is below SMALL_KL, are recomputed
    term by term from `logits` (`_exact`)."""
    p_model = model_logprobs.exp()
    # Σ p_m log p_m per position: one row, so term by term (a masked token is 0 · -inf there too).
    model_negentropy = _masked_dot(p_model, model_logprobs)
    entropy_ = lse - _dot(p, z)
    kl = (model_negentropy - _cross(p_model, z) + lse).clamp(min=0.0)
    close = (kl.isnan() | (kl < SMALL_KL)) & model_negentropy.isfinite()
    redo = valid & (entropy_.isnan() | close)
    if redo.any():
        entropy_[redo], kl[redo] = _exact(logits[redo], model_logprobs.expand_as(z)[redo])
    return entropy_, kl


def _exact(logits: torch.Tensor, model_logprobs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Entropy and KL(model‖lens) of [n, vocab] cells term by term, where 0 · −inf counts 0; the
    log-probabilities are taken exactly as `log_probs` takes the model's, so identical cells give 0."""
    logp, valid = normalise(logits)
    return entropy(logp), forward_kl(model_logprobs, logp, valid)


# --- the grid's own sweep: rows stacked with the model's output, in cache-sized slabs -----------

TOPK_BLOCK = 128
"""Tokens per block of `top_k_and_peak`'s first sweep (the largest logit of each block)."""


def top_k_and_peak(logits: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k largest logits of each cell and their ids, largest first (values[..., 0] is the peak).

    One sweep takes the largest logit of each block of TOPK_BLOCK tokens; the k largest of the
    whole cell lie in the k blocks with the largest maxima (a token outside them is beaten by k
    block maxima), so a topk over those k blocks finds them: about one reduction's cost, where a
    topk over the whole vocabulary costs several. Tied logits may come in another order than
    torch.topk's. A NaN anywhere propagates into values[..., 0] (topk takes NaN as the largest).
    """
    vocab = logits.shape[-1]
    blocks = vocab // TOPK_BLOCK
    if blocks < 8 * k:  # small vocabularies or large k: nothing to gain
        return logits.topk(k, dim=-1)
    lead = logits.shape[:-1]
    body = logits[..., : blocks * TOPK_BLOCK].unflatten(-1, (blocks, TOPK_BLOCK))
    best = body.amax(-1).topk(k, dim=-1).indices  # [..., k] block indices
    values = body.gather(-2, best[..., None].expand(*lead, k, TOPK_BLOCK)).flatten(-2)
    offsets = torch.arange(TOPK_BLOCK, device=logits.device)
    ids = (best[..., None] * TOPK_BLOCK + offsets).flatten(-2)
    if blocks * TOPK_BLOCK < vocab:  # the tokens past the last whole block are candidates too
        values = torch.cat([values, logits[..., blocks * TOPK_BLOCK :]], -1)
        tail = torch.arange(blocks * TOPK_BLOCK, vocab, device=logits.device)
        ids = torch.cat([ids, tail.expand(*lead, -1)], -1)
    top, where = values.topk(k, dim=-1)
    return top, ids.gather(-1, where)


def count_greater(logits: torch.Tensor, threshold: torch.Tensor, scratch: torch.Tensor | None = None) -> torch.Tensor:
    """float32 [...]: how many of each cell's logits exceed `threshold` [..., 1] (NaN never does).

    The comparison is written as 1.0 / 0.0 into a reusable float32 `scratch` of the logits' shape
    and summed there: exact (counts stay far below 2^24) and faster than summing booleans, which
    widens each byte to an integer first."""
    above = torch.gt(logits, threshold, out=scratch) if scratch is not None else (logits > threshold).float()
    return above.sum(-1)


def grid_statistics(
    logits: torch.Tensor,
    targets: torch.Tensor,
    k: int,
    *,
    scratch: torch.Tensor | None = None,
    sync_free: bool = False,
) -> CellStatistics:
    """See `grid_statistics_and_lse`, whose first result this is."""
    return grid_statistics_and_lse(logits, targets, k, scratch=scratch, sync_free=sync_free)[0]


def grid_statistics_and_lse(
    logits: torch.Tensor,
    targets: torch.Tensor,
    k: int,
    *,
    scratch: torch.Tensor | None = None,
    sync_free: bool = False,
) -> tuple[CellStatistics, torch.Tensor, torch.Tensor, torch.Tensor]:
    """`cell_statistics` of a slab of the grid: logits [positions, rows, vocab], float32 and
    contiguous, whose last row is the model's own output (the distribution every row's KL is to).

    The logits are overwritten (centred on each cell's largest, in place): the caller's buffer is
    the only full-size tensor besides `scratch` (float32, of the logits' shape, reused from slab to
    slab, so that a slab that fits in cache stays there through its sweeps):

        top-k and the peak   one block-maximum sweep (`top_k_and_peak`)
        rank                 one comparison sweep into scratch, before the centring
        z = logits − peak    in place;   p = exp z into scratch;   S = Σ p
        entropy              = log S − Σ p·z / S          (p·z in place of p, then summed)
        KL(model‖lens)       = log S − H(model) − Σ p_m·z,  p_m the output row's p / S

    Cells where a 0 · −inf made a sum NaN, or whose KL is below SMALL_KL, are recomputed term by
    term from their centred logits (the model's row too), so a lens cell equal to the output has KL
    exactly 0; the output row's own KL is 0 by definition. `sync_free` (for accelerators) computes
    that exact form for every cell and selects it with torch.where, instead of looking at which
    cells need it (a device-to-host sync per slab).

    Returns values [len(STATISTICS), positions, rows], top_ids and top_probs [positions, rows, k];
    then each cell's log-sum-exp of its centred logits (the logits left in place minus it are the
    log-probabilities, which the A/B grid takes from there), whether it is valid, and its largest
    logit, all [positions, rows]: largest + log-sum-exp is the log-sum-exp of the cell's logits.
    """
    positions, rows, vocab = logits.shape
    if not 1 <= k <= vocab:
        raise ValueError(f"top_k must be in 1..{vocab} (the vocabulary size), got {k}")
    work = torch.empty_like(logits) if scratch is None else scratch
    top_logits, top_ids = top_k_and_peak(logits, k)
    peak = top_logits[..., :1]  # [P, R, 1]
    has_target = (targets >= 0)[:, None]  # [P, 1]
    target_logit = logits.gather(-1, targets.clamp(min=0)[:, None, None].expand(positions, rows, 1))
    higher = count_greater(logits, target_logit, work)
    z = logits.sub_(peak)
    p = torch.exp(z, out=work)
    total = p.sum(-1)
    lse = total.log()  # of z; the logits' own is peak + lse
    peak = peak[..., 0]
    valid = torch.isfinite(lse + peak)
    p_model = p[:, -1] / total[:, -1:]  # [P, V], before p is overwritten
    entropy_ = lse - p.mul_(z).sum(-1) / total
    model_entropy = entropy_[:, -1:]
    kl = (lse - model_entropy - torch.mul(z, p_model[:, None], out=work).sum(-1)).clamp_(min=0.0)
    model_valid = valid[:, -1:]
    redo = valid & (entropy_.isnan() | (model_valid & (kl.isnan() | (kl < SMALL_KL))))
    redo[:, -1] = valid[:, -1] & entropy_[:, -1].isnan()  # the output's own KL is 0 whatever its sums
    if sync_free:
        exact_entropy, exact_kl = _exact_centred(z, z[:, -1:])
        entropy_ = torch.where(redo, exact_entropy, entropy_)
        kl = torch.where(redo, exact_kl, kl)
    else:
        cells = redo.nonzero()
        if len(cells):
            at, row = cells[:, 0], cells[:, 1]
            entropy_[at, row], kl[at, row] = _exact_centred(z[at, row], z[at, -1])
    kl[:, -1] = 0.0
    kl = torch.where(model_valid, kl, torch.nan)
    cross = torch.where(has_target, lse - (target_logit[..., 0] - peak), torch.nan)
    rank_ = torch.where(has_target, higher + 1, torch.nan)
    top_probs = (top_logits - peak[..., None] - lse[..., None]).exp_()
    values = torch.stack([entropy_, cross, kl, top_probs[..., 0], rank_])
    values = torch.where(valid, values, torch.nan)
    top_probs = torch.where(valid[..., None], top_probs, torch.nan)
    return CellStatistics(values=values, top_ids=top_ids, top_probs=top_probs), lse, valid, peak


def pinned_log_probs(
    z: torch.Tensor, lse: torch.Tensor, valid: torch.Tensor, pins: Sequence[torch.Tensor]
) -> torch.Tensor:
    """[len(pins), *cells]: each pinned item's log-probability, log Σ_{t in item} p_t, from centred
    logits z [*cells, vocab] and their log-sum-exp [*cells] (as `grid_statistics_and_lse` leaves
    them). An item is a tensor of token ids; NaN in an invalid cell, −inf where every token of an item
    has probability 0."""
    if not pins:
        return z.new_empty((0, *z.shape[:-1]))
    values = torch.stack([torch.logsumexp(z.index_select(-1, ids), dim=-1) for ids in pins]) - lse
    return torch.where(valid, values, torch.nan)


def _exact_centred(z: torch.Tensor, model_z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Entropy and KL(model‖lens) term by term (0 · −inf counts 0) from centred logits, the lens
    cells' and the model's (broadcast against them), both normalised alike: equal cells give 0."""
    logp, valid = normalise(z)
    model_logp = normalise(model_z)[0]
    return entropy(logp), forward_kl(model_logp.expand_as(logp), logp, valid)


# --- A/B: statistics of a pair of cells -------------------------------------------------------

_PASS_FLOATS = 2**16
"""Floats per tensor in one pass of the pair statistics on a CPU (256 KB): their dozen element-wise
passes then stay in cache, which makes them about twice as fast as passes over a whole chunk."""


def kl_divergence(logp: torch.Tensor, logq: torch.Tensor) -> torch.Tensor:
    """KL(p‖q) = sum p (log p - log q) in nats, from log-probabilities [..., vocab].

    A token p gives probability 0 adds nothing; one q gives 0 and p does not makes it +inf. NaN where
    either cell is invalid.
    """
    return pair_statistics_of(logp, logq)[DIFF_STATISTICS.index("kl_ab")]


def js_divergence(logp: torch.Tensor, logq: torch.Tensor) -> torch.Tensor:
    """Jensen–Shannon divergence ½KL(p‖m) + ½KL(q‖m), m = (p + q) / 2, in nats: 0 ≤ JS ≤ ln 2."""
    return pair_statistics_of(logp, logq)[DIFF_STATISTICS.index("js")]


def pair_statistics(logits_a: torch.Tensor, logits_b: torch.Tensor) -> torch.Tensor:
    """Every DIFF_STATISTICS value of pairs of cells, [len(DIFF_STATISTICS), *cells] float32.

    logits_a, logits_b: [..., vocab] of the same shape, any float dtype. NaN where either is invalid.
    """
    if logits_a.shape != logits_b.shape or logits_a.ndim < 1:
        raise ValueError(f"shape mismatch: logits_a {tuple(logits_a.shape)}, logits_b {tuple(logits_b.shape)}")
    logp_a, valid_a = normalise(logits_a)
    logp_b, valid_b = normalise(logits_b.to(logits_a.device))
    return pair_statistics_of(logp_a, logp_b, valid_a, valid_b)


def pair_statistics_of(
    logp_a: torch.Tensor,
    logp_b: torch.Tensor,
    valid_a: torch.Tensor | None = None,
    valid_b: torch.Tensor | None = None,
    top1_a: torch.Tensor | None = None,
    top1_b: torch.Tensor | None = None,
    p_a: torch.Tensor | None = None,
    p_b: torch.Tensor | None = None,
    sync_free: bool = False,
) -> torch.Tensor:
    """`pair_statistics` of float32 log-probabilities (`normalise`), given their validity, top-1 ids
    and probabilities (exp of the log-probabilities) where known: the grid has them from
    `grid_statistics`, and they then cost no pass here.

    Every sum is a dot product over the vocabulary of a function of d = log p_b - log p_a that is
    exactly 0 where d is, so a cell paired with itself gives exactly 0 (see `_divergences`). Cells
    with an impossible token (-inf log-probability) make those products inf or NaN; only they are
    recomputed, with such terms masked; `sync_free` (accelerators) computes that form for every cell
    and selects it with torch.where rather than looking at which cells need it.
    """
    if logp_a.shape != logp_b.shape or logp_a.ndim < 1:
        raise ValueError(f"shape mismatch: logp_a {tuple(logp_a.shape)}, logp_b {tuple(logp_b.shape)}")
    cells, vocab = logp_a.shape[:-1], logp_a.shape[-1]
    a, b = logp_a.reshape(-1, vocab), logp_b.reshape(-1, vocab)
    pa = a.exp() if p_a is None else p_a.reshape(-1, vocab)
    pb = b.exp() if p_b is None else p_b.reshape(-1, vocab)
    valid = (_valid(logp_a, valid_a) & _valid(logp_b, valid_b)).reshape(-1)
    top1_a = _top1(logp_a) if top1_a is None else top1_a
    top1_b = _top1(logp_b) if top1_b is None else top1_b
    divergences = torch.empty((3, a.shape[0]), dtype=torch.float32, device=a.device)
    step = max(1, _PASS_FLOATS // max(1, vocab)) if a.device.type == "cpu" else max(1, a.shape[0])
    for start in range(0, a.shape[0], step):
        part = slice(start, start + step)
        divergences[:, part] = _divergences(a[part], b[part], pa[part], pb[part])
    need = valid & ~torch.isfinite(divergences).all(0)
    if sync_free:
        divergences = torch.where(need, _divergences(a, b, pa, pb, masked=True), divergences)
    else:
        masked = need.nonzero()[:, 0]
        if len(masked):
            divergences[:, masked] = _divergences(a[masked], b[masked], pa[masked], pb[masked], masked=True)
    divergences[:2].clamp_(min=0.0)  # KL ≥ 0 and 0 ≤ JS ≤ ln 2: rounding must not show as a sign,
    divergences[2].clamp_(0.0, LN2)
    divergences.add_(0.0)  # nor as -0.0 (IEEE: -0.0 + 0.0 = +0.0)
    agree = (top1_a.reshape(-1) == top1_b.reshape(-1).to(top1_a.device)).float()
    values = torch.cat([divergences, agree[None]]).reshape(len(DIFF_STATISTICS), *cells)
    return torch.where(valid.reshape(cells), values, torch.nan)


def _divergences(
    logp_a: torch.Tensor, logp_b: torch.Tensor, p_a: torch.Tensor, p_b: torch.Tensor, masked: bool = False
) -> torch.Tensor:
    """KL(A‖B), KL(B‖A) and JS of [n, vocab] cells, as [3, n], from d = log p_b - log p_a.

    KL(A‖B) = -sum p_a d and KL(B‖A) = sum p_b d. With m = (p_a + p_b) / 2, log(m / p_a) = d/2 + c and
    log(m / p_b) = -d/2 + c, where c = log cosh(d/2) = |d|/2 + log1p(expm1(-|d|) / 2) (never overflows,
    exactly 0 where d is), so JS = -½ sum p_a log(m / p_a) - ½ sum p_b log(m / p_b)
    = (KL(A‖B) + KL(B‖A)) / 4 - ½ sum (p_a + p_b) c: a few passes beyond the KLs', which keeps an A/B
    grid near twice one model's cost (tests/benchmarks/bench_session.py measures it).
    masked: a term whose probability is 0 counts 0 even where d is ±inf or NaN (both -inf).
    """
    dot = _masked_dot if masked else _dot
    d = logp_b - logp_a
    kl_ab, kl_ba = -dot(p_a, d), dot(p_b, d)
    abs_d = d.abs()
    half_mix = torch.expm1(-abs_d).mul_(0.5).log1p_()  # log((1 + e^-|d|) / 2), in [-ln 2, 0]
    if masked:  # d = ±inf: the form without infinities, log(m / p_a) = max(d, 0) + half_mix
        js = -0.5 * (dot(p_a, d.clamp(min=0).add_(half_mix)) + dot(p_b, (-d).clamp_(min=0).add_(half_mix)))
    else:
        c = half_mix.add_(abs_d, alpha=0.5)  # log cosh(d/2)
        js = 0.25 * (kl_ab + kl_ba) - 0.5 * (dot(p_a, c) + dot(p_b, c))
    return torch.stack([kl_ab, kl_ba, js])


def _top1(logp: torch.Tensor) -> torch.Tensor:
    """The most likely token as the top-k ranks it (topk, whose ties may break unlike argmax's)."""
    return logp.topk(1, dim=-1).indices[..., 0]


def _dot(p: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """sum(p * x) over the vocabulary as a batched matrix product: no [cells, vocab] temporary. One
    cell (the A/B pass of a CPU) is a plain dot product, whose call costs a third of a batched one."""
    if p.ndim == 2 and p.shape[0] == 1 and x.shape == p.shape:
        return torch.dot(p[0], x[0])[None]
    return (p.unsqueeze(-2) @ x.unsqueeze(-1))[..., 0, 0]


def _masked_dot(p: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return torch.where(p == 0, 0.0, p * x).sum(-1)
