"""Statistics against an independent float64 reference, written here with plain torch ops."""

from __future__ import annotations

import math

import pytest
import torch

import lens_widget.statistics as statistics_module
from lens_widget.statistics import (
    DIFF_STATISTICS,
    LN2,
    NO_TARGET,
    STATISTICS,
    cell_statistics,
    cross_entropy,
    entropy,
    forward_kl,
    grid_statistics,
    js_divergence,
    kl_divergence,
    log_probs,
    max_probability,
    pair_statistics,
    rank,
    top_k,
)


def reference(logits: torch.Tensor, model_logits: torch.Tensor, targets: torch.Tensor, k: int) -> dict:
    """Float64, one cell at a time, straight from the definitions."""
    out: dict[str, list] = {name: [] for name in STATISTICS}
    out["top_probs"], out["p"] = [], []
    for row, model_row, target in zip(logits.double(), model_logits.double(), targets.tolist(), strict=True):
        p = torch.exp(row) / torch.exp(row).sum()
        q = torch.exp(model_row) / torch.exp(model_row).sum()
        out["entropy"].append(float(-(p * torch.log(p)).sum()))
        out["forward_kl"].append(float((q * (torch.log(q) - torch.log(p))).sum()))
        out["max_probability"].append(float(p.max()))
        if target == NO_TARGET:
            out["cross_entropy"].append(math.nan)
            out["rank"].append(math.nan)
        else:
            out["cross_entropy"].append(float(-torch.log(p[target])))
            # 1 + tokens strictly more likely: ties (common in float16) favour the target.
            out["rank"].append(float(1 + int((p > p[target]).sum())))
        order = sorted(range(len(p)), key=lambda i: -float(p[i]))[:k]
        out["top_probs"].append([float(p[i]) for i in order])
        out["p"].append(p)
    return out


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_cell_statistics_match_float64_reference(dtype: torch.dtype) -> None:
    gen = torch.Generator().manual_seed(0)
    cells, vocab, k = 12, 257, 10
    logits = (torch.randn(cells, vocab, generator=gen) * 3).to(dtype)
    model_logits = (torch.randn(cells, vocab, generator=gen) * 3).to(dtype)
    targets = torch.randint(0, vocab, (cells,), generator=gen)
    targets[-1] = NO_TARGET
    got = cell_statistics(logits, targets, log_probs(model_logits), k)
    ref = reference(logits.float(), model_logits.float(), targets, k)
    assert got.values.dtype == torch.float32
    for i, name in enumerate(STATISTICS):
        expected = torch.tensor(ref[name], dtype=torch.float64)
        assert torch.allclose(got.values[i].double(), expected, rtol=1e-4, atol=1e-5, equal_nan=True), name
    # The k largest probabilities, most likely first; tied tokens may come in either order, so each
    # returned id is checked by its own reference probability.
    assert torch.allclose(got.top_probs.double(), torch.tensor(ref["top_probs"], dtype=torch.float64), atol=1e-6)
    for ids, probs, p in zip(got.top_ids, got.top_probs, ref["p"], strict=True):
        assert len(set(ids.tolist())) == k
        assert torch.allclose(p[ids], probs.double(), atol=1e-6)


def test_single_statistic_functions_agree_with_cell_statistics() -> None:
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(5, 50, generator=gen)
    model = log_probs(torch.randn(5, 50, generator=gen))
    targets = torch.tensor([3, 7, 0, 49, NO_TARGET])
    lp = log_probs(logits)
    got = cell_statistics(logits, targets, model, 4)
    singles = [
        entropy(lp),
        cross_entropy(lp, targets),
        forward_kl(model, lp),
        max_probability(lp),
        rank(logits, targets),
    ]
    for i, value in enumerate(singles):
        assert torch.allclose(got.values[i], value, equal_nan=True), STATISTICS[i]
    ids, probs = top_k(lp, 4)
    assert torch.equal(ids, got.top_ids) and torch.allclose(probs, got.top_probs)


def test_last_position_has_missing_cross_entropy_and_rank_but_real_other_statistics() -> None:
    logits = torch.randn(2, 30)
    got = cell_statistics(logits, torch.tensor([4, NO_TARGET]), log_probs(logits), 3)
    ce, rk = got.values[STATISTICS.index("cross_entropy")], got.values[STATISTICS.index("rank")]
    assert not math.isnan(float(ce[0])) and math.isnan(float(ce[1]))
    assert not math.isnan(float(rk[0])) and math.isnan(float(rk[1]))
    assert torch.isfinite(got.values[STATISTICS.index("entropy")]).all()


def test_kl_of_a_distribution_to_itself_is_exactly_zero() -> None:
    logits = torch.randn(4, 100) * 5
    got = cell_statistics(logits, torch.zeros(4, dtype=torch.long), log_probs(logits), 1)
    assert torch.equal(got.values[STATISTICS.index("forward_kl")], torch.zeros(4))


def test_rank_counts_strictly_higher_tokens_and_ties_favour_the_target() -> None:
    logits = torch.tensor([[0.0, 5.0, 5.0, 1.0, -2.0]])
    assert rank(logits, torch.tensor([1])).item() == 1.0
    assert rank(logits, torch.tensor([2])).item() == 1.0
    assert rank(logits, torch.tensor([3])).item() == 3.0
    assert rank(logits, torch.tensor([4])).item() == 5.0


def test_zero_probability_tokens_do_not_poison_entropy_or_kl() -> None:
    logits = torch.tensor([[0.0, -torch.inf, 1.0]])
    got = cell_statistics(logits, torch.tensor([0]), log_probs(logits), 2)
    assert torch.isfinite(got.values).all()


def test_leading_dimensions_broadcast_the_model_row_over_lens_rows() -> None:
    logits = torch.randn(3, 4, 20)
    model = log_probs(torch.randn(4, 20))
    targets = torch.tensor([1, 2, 3, NO_TARGET])
    got = cell_statistics(logits, targets, model, 5)
    assert got.values.shape == (len(STATISTICS), 3, 4) and got.top_ids.shape == (3, 4, 5)
    flat = cell_statistics(logits.reshape(12, 20), targets.repeat(3), model.repeat(3, 1), 5)
    assert torch.allclose(got.values.reshape(len(STATISTICS), 12), flat.values, equal_nan=True)


@pytest.mark.parametrize("k", [0, 21])
def test_top_k_out_of_range_is_a_clear_error(k: int) -> None:
    with pytest.raises(ValueError, match=r"top_k must be in 1\.\.20"):
        cell_statistics(torch.randn(2, 20), torch.tensor([0, 1]), log_probs(torch.randn(2, 20)), k)


def test_a_cell_with_nan_or_infinite_logits_is_nan_in_every_statistic_and_top_probability() -> None:
    gen = torch.Generator().manual_seed(2)
    logits = torch.randn(4, 30, generator=gen)
    logits[0, 5] = torch.nan
    logits[1, 7] = torch.inf
    logits[2] = -torch.inf  # no token possible at all
    targets = torch.tensor([0, 0, 1, 2])  # not the broken token: its own comparison must not hide it
    got = cell_statistics(logits, targets, log_probs(torch.randn(4, 30, generator=gen)), 3)
    assert torch.isnan(got.values[:, :3]).all() and torch.isnan(got.top_probs[:3]).all()
    assert torch.isfinite(got.values[:, 3]).all() and torch.isfinite(got.top_probs[3]).all()
    lp = log_probs(logits)
    for value in (entropy(lp), cross_entropy(lp, targets), max_probability(lp), rank(logits, targets)):
        assert torch.isnan(value[:3]).all() and torch.isfinite(value[3])


def test_a_nan_model_output_makes_forward_kl_nan_not_zero() -> None:
    logits = torch.randn(2, 30)
    model = logits.clone()
    model[0, 3] = torch.nan
    got = cell_statistics(logits, torch.tensor([1, NO_TARGET]), log_probs(model), 3)
    kl = got.values[STATISTICS.index("forward_kl")]
    assert torch.isnan(kl[0]) and kl[1] == 0
    others = [i for i, name in enumerate(STATISTICS) if name != "forward_kl"]
    assert torch.isfinite(got.values[others, 0]).all()


# --- A/B: statistics of a pair of cells ---------------------------------------------------------

KL_AB, KL_BA, JS, AGREE = (DIFF_STATISTICS.index(n) for n in ("kl_ab", "kl_ba", "js", "top1_agree"))


def pair_reference(logits_a: torch.Tensor, logits_b: torch.Tensor) -> torch.Tensor:
    """Float64, cell by cell, from the definitions: [4, cells]. Terms of probability 0 count 0."""
    out = []
    for a, b in zip(logits_a.double(), logits_b.double(), strict=True):
        p, q = torch.softmax(a, -1), torch.softmax(b, -1)
        m = (p + q) / 2

        def kl(x: torch.Tensor, y: torch.Tensor) -> float:
            return float(torch.where(x > 0, x * (torch.log(x) - torch.log(y)), 0.0).sum())

        out.append([kl(p, q), kl(q, p), 0.5 * kl(p, m) + 0.5 * kl(q, m), float(p.argmax() == q.argmax())])
    return torch.tensor(out, dtype=torch.float64).T


def pair_cases(dtype: torch.dtype, vocab: int = 257) -> tuple[torch.Tensor, torch.Tensor]:
    """Unrelated cells, nearly identical ones (small divergences must be accurate, not noise), sharp
    ones, and masked tokens: in both cells, in B only (KL(A‖B) = inf), in A only (KL(B‖A) = inf)."""
    gen = torch.Generator().manual_seed(4)
    a = torch.randn(10, vocab, generator=gen) * 3
    b = torch.randn(10, vocab, generator=gen) * 3
    b[3:6] = a[3:6] + torch.randn(3, vocab, generator=gen) * 0.01
    a[6], b[6] = a[6] * 20, b[6] * 20
    a[7, :50] = b[7, :50] = -torch.inf
    b[8, 5] = -torch.inf
    a[9, 5] = -torch.inf
    return a.to(dtype), b.to(dtype)


@pytest.mark.parametrize("pass_floats", [2**16, 257 * 3])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_pair_statistics_match_a_float64_reference(
    dtype: torch.dtype, pass_floats: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(statistics_module, "_PASS_FLOATS", pass_floats)  # all cells in one pass, or 3 per pass
    a, b = pair_cases(dtype)
    got = pair_statistics(a, b)
    ref = pair_reference(a.float(), b.float())
    assert got.shape == (len(DIFF_STATISTICS), 10) and got.dtype == torch.float32
    assert torch.isinf(got[KL_AB, 8]) and torch.isinf(got[KL_BA, 9]), "a token only one model rules out"
    assert torch.allclose(got.double(), ref, rtol=1e-4, atol=1e-6), (got - ref).abs().max(1)
    near = slice(3, 6)
    assert (ref[JS, near] < 1e-3).all() and (ref[JS, near] > 0).all()
    assert torch.allclose(got[JS, near].double(), ref[JS, near], rtol=1e-3, atol=0), "small JS is accurate"


def test_js_is_between_zero_and_ln2_and_reaches_ln2_for_disjoint_supports() -> None:
    gen = torch.Generator().manual_seed(5)
    a, b = torch.randn(64, 300, generator=gen) * 50, torch.randn(64, 300, generator=gen) * 50
    js = pair_statistics(a, b)[JS]
    assert ((js >= 0) & (js <= LN2)).all()
    disjoint_a, disjoint_b = torch.full((2, 10), -torch.inf), torch.full((2, 10), -torch.inf)
    disjoint_a[0, 0] = disjoint_b[0, 1] = 0.0
    disjoint_a[1, :5] = disjoint_b[1, 5:] = 0.0
    got = pair_statistics(disjoint_a, disjoint_b)
    assert torch.allclose(got[JS], torch.tensor([LN2, LN2])) and torch.isinf(got[KL_AB]).all()
    assert (got[AGREE] == 0).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_a_cell_paired_with_itself_has_exactly_zero_divergence_and_agrees(dtype: torch.dtype) -> None:
    a, _ = pair_cases(dtype)
    got = pair_statistics(a, a.clone())
    assert torch.equal(got[[KL_AB, KL_BA, JS]], torch.zeros(3, 10)), got[[KL_AB, KL_BA, JS]].abs().max()
    assert not torch.signbit(got[[KL_AB, KL_BA, JS]]).any(), "no -0.0"
    assert (got[AGREE] == 1).all()


def test_an_invalid_cell_in_either_model_makes_every_diff_statistic_of_the_pair_nan() -> None:
    gen = torch.Generator().manual_seed(6)
    a, b = torch.randn(4, 30, generator=gen), torch.randn(4, 30, generator=gen)
    a[0, 3] = torch.nan
    b[1, 4] = torch.inf
    a[2] = -torch.inf  # no token possible
    got = pair_statistics(a, b)
    assert torch.isnan(got[:, :3]).all() and torch.isfinite(got[:, 3]).all()


def test_single_divergence_functions_agree_with_pair_statistics_and_leading_dimensions_broadcast() -> None:
    gen = torch.Generator().manual_seed(7)
    a, b = torch.randn(3, 4, 40, generator=gen), torch.randn(3, 4, 40, generator=gen)
    got = pair_statistics(a, b)
    assert got.shape == (len(DIFF_STATISTICS), 3, 4)
    flat = pair_statistics(a.reshape(12, 40), b.reshape(12, 40))
    assert torch.equal(got.reshape(len(DIFF_STATISTICS), 12), flat)
    la, lb = log_probs(a), log_probs(b)
    assert torch.equal(kl_divergence(la, lb), got[KL_AB]) and torch.equal(kl_divergence(lb, la), got[KL_BA])
    assert torch.equal(js_divergence(la, lb), got[JS])
    assert not torch.allclose(got[KL_AB], got[KL_BA]), "KL is not symmetric"


def test_top1_agreement_follows_the_top_k_ranking() -> None:
    a = torch.tensor([[0.0, 3.0, 1.0], [2.0, 1.0, 0.0]])
    b = torch.tensor([[0.0, 5.0, -1.0], [0.0, 1.0, 2.0]])
    assert pair_statistics(a, b)[AGREE].tolist() == [1.0, 0.0]


def test_pair_statistics_of_cells_of_different_shapes_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="shape mismatch"):
        pair_statistics(torch.randn(2, 10), torch.randn(2, 11))


def test_masked_tokens_and_large_logits_match_float64_in_the_fused_sums() -> None:
    """The sweeps use dot products, where a masked token (-inf, probability 0) makes 0 · -inf = NaN and
    a large common offset of the logits costs float32 digits: both must still give the reference."""
    torch.manual_seed(3)
    logits = torch.randn(6, 4, 500) * 4 + 300.0  # far from 0, as a model's logits can be
    logits[1, :, :100] = -torch.inf  # masked tokens in a lens row
    model = logits[-1].clone()
    model[0, :50] = -torch.inf  # and in the model's own output
    targets = torch.tensor([3, 120, 7, NO_TARGET])
    got = cell_statistics(logits, targets, log_probs(model), 5)
    lp = torch.log_softmax(logits.double(), -1)
    mp = torch.log_softmax(model.double(), -1)
    p, pm = lp.exp(), mp.exp()
    expected_entropy = -torch.where(p == 0, 0.0, p * lp).sum(-1)
    expected_kl = torch.where(pm == 0, 0.0, pm * (mp - lp)).sum(-1)
    ent, kl = got.values[STATISTICS.index("entropy")], got.values[STATISTICS.index("forward_kl")]
    assert torch.isfinite(ent).all() and not kl.isnan().any()
    assert torch.isinf(kl[1]).all() and torch.isinf(expected_kl[1]).all(), "the lens rules out tokens the model allows"
    assert torch.allclose(ent.double(), expected_entropy, rtol=1e-4, atol=1e-5)
    assert torch.allclose(kl.double(), expected_kl, rtol=1e-4, atol=1e-5)
    assert torch.equal(kl[-1, 1:], torch.zeros(3)), "the model's own row: exactly 0"


# --- the grid's slab sweep (grid_statistics) ---------------------------------------------------


def test_block_top_k_finds_the_k_largest_with_a_partial_last_block() -> None:
    gen = torch.Generator().manual_seed(6)
    k, vocab = 4, 40 * statistics_module.TOPK_BLOCK + 37  # blocks enough for the block sweep, and a tail
    logits = torch.randn(5, vocab, generator=gen)
    logits[1, -3] = 9.0  # the largest in the tail
    logits[2, [7, 700, 3000]] = 5.0  # ties across blocks
    logits[3, :] = -torch.inf
    logits[3, [10, 4000]] = 1.0  # masked but for two tokens
    logits[4, 99] = torch.nan
    values, ids = statistics_module.top_k_and_peak(logits, k)
    expected = logits.topk(k, -1).values
    assert torch.equal(values[:4], expected[:4])
    assert torch.equal(logits[:4].gather(-1, ids[:4]), values[:4]) and all(len(set(i.tolist())) == k for i in ids)
    assert ids[1, 0] == vocab - 3 and set(ids[2, :3].tolist()) == {7, 700, 3000}
    assert torch.isnan(values[4, 0]), "a NaN reaches the peak, which marks the cell invalid"


def slab_cases(vocab: int) -> tuple[torch.Tensor, torch.Tensor]:
    """[positions, rows, vocab] logits whose last row is the model's output: large offsets, masked
    tokens in lens rows and in the output, a lens row equal to the output, broken cells."""
    gen = torch.Generator().manual_seed(7)
    logits = torch.randn(4, 5, vocab, generator=gen) * 4 + 300.0
    logits[:, 1, :100] = -torch.inf  # a lens row rules tokens out
    logits[0, -1, 100:150] = -torch.inf  # the model rules tokens out at position 0
    logits[:, 2] = logits[:, -1]  # a lens row equal to the output: KL exactly 0
    logits[:, 3] = logits[:, -1] + torch.randn(4, vocab, generator=gen) * 1e-3  # KL below SMALL_KL
    logits[1, 0, 9] = torch.nan
    logits[2, 0, 9] = torch.inf
    logits[3, -1, 5] = torch.nan  # the model's own output broken: every KL there is NaN
    return logits, torch.tensor([3, 120, 7, NO_TARGET])


@pytest.mark.parametrize("sync_free", [False, True])
@pytest.mark.parametrize("vocab", [500, 30 * statistics_module.TOPK_BLOCK + 11])
def test_grid_statistics_match_float64_and_cell_statistics(vocab: int, sync_free: bool) -> None:
    logits, targets = slab_cases(vocab)
    k = 3
    got = grid_statistics(logits.clone(), targets, k, sync_free=sync_free)
    assert got.values.shape == (len(STATISTICS), 4, 5) and got.top_ids.shape == (4, 5, k)
    model = logits[:, -1]
    lp = torch.log_softmax(logits.double(), -1)
    mp = torch.log_softmax(model.double(), -1)[:, None]
    p, pm = lp.exp(), mp.exp()
    invalid = torch.zeros(4, 5, dtype=torch.bool)
    invalid[1, 0] = invalid[2, 0] = invalid[3, -1] = True
    expected = {
        "entropy": -torch.where(p == 0, 0.0, p * lp).sum(-1),
        "forward_kl": torch.where(pm == 0, 0.0, pm * (mp - lp)).sum(-1),
        "max_probability": p.amax(-1),
        "cross_entropy": -lp.gather(-1, targets.clamp(min=0)[:, None, None].expand(4, 5, 1))[..., 0],
    }
    expected["forward_kl"][3] = torch.nan  # the model's output at position 3 is broken
    expected["cross_entropy"][3] = torch.nan
    for name, want in expected.items():
        value = got.values[STATISTICS.index(name)]
        assert torch.isnan(value[invalid]).all(), name
        assert torch.allclose(value[~invalid].double(), want[~invalid], rtol=1e-4, atol=1e-5, equal_nan=True), name
    kl = got.values[STATISTICS.index("forward_kl")]
    assert torch.isinf(kl[:3, 1]).all(), "the lens rules out tokens the model allows"
    assert torch.equal(kl[:3, 2], torch.zeros(3)) and torch.equal(kl[:3, -1], torch.zeros(3)), "exactly 0"
    # Every cell against cell_statistics (the same definitions, one row at a time): ranks and top-k too.
    for t in range(3):
        ref = cell_statistics(logits[t], targets[t].expand(5), log_probs(model[t]), k)
        assert torch.allclose(got.values[:, t], ref.values, rtol=1e-4, atol=1e-5, equal_nan=True), t
        assert torch.allclose(got.top_probs[t], ref.top_probs, rtol=1e-5, atol=1e-6, equal_nan=True)
        valid = ~invalid[t]
        assert torch.equal(got.top_ids[t][valid], ref.top_ids[valid])
    assert torch.isnan(got.values[:, 3, -1]).all() and torch.isnan(got.top_probs[3, -1]).all()


def test_grid_statistics_without_syncs_give_the_same_numbers() -> None:
    logits, targets = slab_cases(30 * statistics_module.TOPK_BLOCK + 11)
    synced = grid_statistics(logits.clone(), targets, 5)
    free = grid_statistics(logits.clone(), targets, 5, scratch=torch.empty_like(logits), sync_free=True)
    assert torch.allclose(synced.values, free.values, rtol=1e-6, atol=1e-7, equal_nan=True)
    assert torch.equal(synced.top_ids, free.top_ids)
    assert torch.allclose(synced.top_probs, free.top_probs, equal_nan=True)


def test_count_greater_is_exact_and_nan_never_counts() -> None:
    logits = torch.tensor([[[0.0, 2.0, 1.0, torch.nan, 1.0, -torch.inf]]])
    assert statistics_module.count_greater(logits, torch.tensor([[[1.0]]])).tolist() == [[1.0]]
    scratch = torch.empty_like(logits)
    assert statistics_module.count_greater(logits, torch.tensor([[[-torch.inf]]]), scratch).tolist() == [[4.0]]


def test_pair_statistics_without_syncs_give_the_same_numbers() -> None:
    a, b = pair_cases(torch.float32)
    logp_a, logp_b = log_probs(a), log_probs(b)
    synced = statistics_module.pair_statistics_of(logp_a, logp_b)
    free = statistics_module.pair_statistics_of(logp_a, logp_b, sync_free=True)
    assert torch.isinf(free[KL_AB, 8]) and torch.isinf(free[KL_BA, 9])
    assert torch.allclose(synced, free, rtol=1e-6, atol=1e-7, equal_nan=True)
