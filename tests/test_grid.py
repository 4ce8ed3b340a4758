"""The lens grid against an independent float64 reference computed from the model's hidden states.

The reference re-implements each family's final norm and head by hand in float64 (it does not use
the adapter), then applies the definitions of every statistic.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from grid_checks import TargetCells, assert_same_cells, assert_same_ranks, assert_same_top_ids, grid_cell_logits
from tiny_models import tiny_model

from lens_widget import LogitLens, ModelAdapter, ModelForward, TunedLens, compute_grid, next_token_targets, row_labels
from lens_widget.grid import GridInput, aligned_layers, compute_pair_grid, pair_row_labels, stride_rows
from lens_widget.rows import by_depth, translator
from lens_widget.statistics import DIFF_STATISTICS, NO_TARGET, STATISTICS, cell_statistics, log_probs, pair_statistics

IDS = torch.tensor([11, 4, 4, 60, 23, 8, 91, 4, 15, 30, 2, 77])
K = 10


def final_norm_f64(family: str, model: torch.nn.Module, h: torch.Tensor) -> torch.Tensor:
    if family == "gpt2":
        ln = model.transformer.ln_f
        mu = h.mean(-1, keepdim=True)
        var = ((h - mu) ** 2).mean(-1, keepdim=True)
        return (h - mu) / torch.sqrt(var + ln.eps) * ln.weight.double() + ln.bias.double()
    norm = model.model.norm
    eps = model.config.rms_norm_eps
    normed = h / torch.sqrt((h**2).mean(-1, keepdim=True) + eps)
    if family == "llama":
        return normed * norm.weight.double()
    if family == "gemma2":  # Gemma's norms scale by (1 + weight)
        return normed * (1.0 + norm.weight.double())
    raise AssertionError(family)


def logits_f64(family: str, model: torch.nn.Module, h: torch.Tensor) -> torch.Tensor:
    logits = final_norm_f64(family, model, h) @ model.get_output_embeddings().weight.double().T
    cap = getattr(model.config, "final_logit_softcapping", None)
    return torch.tanh(logits / cap) * cap if cap else logits


@torch.no_grad()
def reference_grid(family: str, model: torch.nn.Module, lens: TunedLens | None, ids: torch.Tensor) -> dict:
    out = model(input_ids=ids[None], output_hidden_states=True, use_cache=False)
    L = model.config.num_hidden_layers
    rows = []
    for i in range(L):
        h = out.hidden_states[i][0].double()
        if lens is not None:
            t = lens.layer_translators[i]
            h = h + h @ t.weight.double().T + t.bias.double()
        rows.append(logits_f64(family, model, h))
    rows.append(out.logits[0].double())
    logits = torch.stack(rows)
    logp = torch.log_softmax(logits, -1)
    p = logp.exp()
    q = p[-1]
    targets = [*ids[1:].tolist(), NO_TARGET]
    stats = {name: np.zeros((L + 1, len(ids))) for name in STATISTICS}
    for r in range(L + 1):
        for t, target in enumerate(targets):
            stats["entropy"][r, t] = float(-(p[r, t] * logp[r, t]).sum())
            stats["forward_kl"][r, t] = float((q[t] * (logp[-1, t] - logp[r, t])).sum())
            stats["max_probability"][r, t] = float(p[r, t].max())
            if target == NO_TARGET:
                stats["cross_entropy"][r, t] = stats["rank"][r, t] = math.nan
            else:
                stats["cross_entropy"][r, t] = float(-logp[r, t, target])
                stats["rank"][r, t] = 1 + int((p[r, t] > p[r, t, target]).sum())
    stats["top_probs"] = p.topk(K, -1).values.numpy()
    stats["p"] = p
    stats["logits"] = logits
    return stats


def random_tuned_lens(model: torch.nn.Module, seed: int = 3) -> TunedLens:
    lens = TunedLens.from_model(model)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for t in lens.layer_translators:
            t.weight.copy_(torch.randn(t.weight.shape, generator=gen) * 0.2)
            t.bias.copy_(torch.randn(t.bias.shape, generator=gen) * 0.2)
    return lens


@pytest.mark.parametrize("lens_kind", ["logit", "tuned"])
@pytest.mark.parametrize("family", ["gpt2", "llama", "gemma2"])
def test_every_statistic_matches_the_float64_reference(family: str, lens_kind: str) -> None:
    model = tiny_model(family)
    adapter = ModelAdapter(model)
    lens = random_tuned_lens(model) if lens_kind == "tuned" else None
    L = adapter.num_layers
    grid = compute_grid(
        adapter, lens or LogitLens(), adapter.forward(IDS), next_token_targets(IDS), range(L + 1), top_k=K
    )
    ref = reference_grid(family, model, lens, IDS)
    for name in STATISTICS[:-1]:
        np.testing.assert_allclose(grid.statistic(name), ref[name], rtol=2e-4, atol=2e-5, err_msg=name)
    assert STATISTICS[-1] == "rank"
    targets = next_token_targets(IDS).numpy()
    assert_same_ranks(grid.statistic("rank"), ref["rank"], targets, lambda r, t: ref["logits"][r, t], tol=2e-4)
    np.testing.assert_allclose(grid.top_probs, ref["top_probs"], atol=1e-5)
    p = ref["p"]
    for r in range(L + 1):
        for t in range(len(IDS)):
            np.testing.assert_allclose(p[r, t, grid.top_ids[r, t]].numpy(), grid.top_probs[r, t], atol=1e-5)


def test_untrained_tuned_lens_equals_logit_lens_bit_for_bit() -> None:
    model = tiny_model("llama")
    adapter = ModelAdapter(model)
    forward = adapter.forward(IDS)
    rows = range(adapter.num_layers + 1)
    targets = next_token_targets(IDS)
    tuned = compute_grid(adapter, TunedLens.from_model(adapter), forward, targets, rows)
    logit = compute_grid(adapter, LogitLens(), forward, targets, rows)
    assert np.array_equal(tuned.stats, logit.stats, equal_nan=True)
    assert np.array_equal(tuned.top_ids, logit.top_ids)
    assert np.array_equal(tuned.top_probs, logit.top_probs)


def test_output_row_is_the_models_log_softmax_and_its_kl_is_zero() -> None:
    model = tiny_model("gpt2")
    adapter = ModelAdapter(model)
    forward = adapter.forward(IDS)
    L = adapter.num_layers
    grid = compute_grid(adapter, LogitLens(), forward, next_token_targets(IDS), [L], top_k=K)
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=IDS[None]).logits[0].double(), -1)
    top = logp.topk(K, -1)
    assert grid.rows == (L,)
    assert_same_top_ids(
        grid.top_ids,
        grid.top_probs,
        top.indices[None].numpy(),
        top.values.exp()[None].numpy(),
        lambda r, t: logp[t],
        tol=1e-5,
    )
    ce = -logp[torch.arange(len(IDS) - 1), IDS[1:]]
    np.testing.assert_allclose(grid.statistic("cross_entropy")[0, :-1], ce.numpy(), rtol=1e-5, atol=1e-6)
    assert np.isnan(grid.statistic("cross_entropy")[0, -1]) and np.isnan(grid.statistic("rank")[0, -1])
    assert (grid.statistic("forward_kl")[0] == 0).all()
    assert row_labels(grid.rows, L) == ["output"]


def test_chunking_bounds_memory_and_changes_nothing() -> None:
    model = tiny_model("llama")
    adapter = ModelAdapter(model)
    forward = adapter.forward(IDS)
    rows = [adapter.num_layers, 0, 2]  # any order; the grid keeps the caller's
    targets = next_token_targets(IDS)
    lens = random_tuned_lens(model)
    whole = compute_grid(adapter, lens, forward, targets, rows)
    seen: list[int] = []
    original = adapter.decode

    def spy(h: torch.Tensor, **kwargs: object) -> torch.Tensor:
        out = original(h, **kwargs)  # type: ignore[arg-type]
        seen.append(out.numel())
        return out

    adapter.decode = spy  # type: ignore[method-assign]
    chunk_bytes = 4 * adapter.vocab_size * len(rows) * 2  # the float32 logits of two positions per chunk
    chunked = compute_grid(adapter, lens, forward, targets, rows, chunk_bytes=chunk_bytes)
    # One head GEMM per chunk, for both lens rows and the output row, two positions each.
    assert len(seen) == math.ceil(len(IDS) / 2) and max(seen) == 3 * 2 * adapter.vocab_size
    # GEMM shapes differ: equal up to rounding, and ids and ranks up to ties.
    t = targets.numpy()
    assert_same_cells(
        TargetCells(chunked.stats, chunked.top_ids, chunked.top_probs, t),
        TargetCells(whole.stats, whole.top_ids, whole.top_probs, t),
        grid_cell_logits(adapter, lens, forward.hidden, rows),
        tol=1e-5,
    )
    assert row_labels(chunked.rows, adapter.num_layers) == ["output", "0", "2"]
    single = compute_grid(adapter, lens, forward, targets, [2])
    np.testing.assert_allclose(single.stats[:, 0], whole.stats[:, 2], rtol=1e-5, atol=1e-5)


def test_the_accelerator_path_without_syncs_gives_the_default_grid() -> None:
    """sync_free (the default on a GPU) on a CPU: results kept on the device, every cell's exact
    form computed and selected without looking at it; the same cells as the default path."""
    model = tiny_model("llama", vocab_size=3100)  # 24 blocks of 128 and a tail: the block top-k sweep at k = 3
    adapter = ModelAdapter(model)
    forward, targets = adapter.forward(IDS), next_token_targets(IDS)
    rows = [adapter.num_layers, 0, 2, 1]
    lens = random_tuned_lens(model)
    default = compute_grid(adapter, lens, forward, targets, rows, top_k=3, keep_last_logits=True)
    free = compute_grid(
        adapter, lens, forward, targets, rows, top_k=3, keep_last_logits=True, sync_free=True, chunk_bytes=2**20
    )
    t = targets.numpy()
    assert_same_cells(
        TargetCells(free.stats, free.top_ids, free.top_probs, t),
        TargetCells(default.stats, default.top_ids, default.top_probs, t),
        grid_cell_logits(adapter, lens, forward.hidden, rows),
        tol=1e-5,
    )
    assert free.last_logits is not None and default.last_logits is not None
    torch.testing.assert_close(free.last_logits, default.last_logits)
    # And both against each cell's statistics computed alone, from logits decoded the plain way.
    cell = grid_cell_logits(adapter, lens, forward.hidden, rows)
    for column in range(len(IDS)):
        logits = torch.stack([cell(r, column) for r in range(len(rows))])
        ref = cell_statistics(logits, targets[column].expand(len(rows)), log_probs(logits[0]), 3)
        np.testing.assert_allclose(free.stats[:, :, column], ref.values.numpy(), rtol=1e-4, atol=1e-5)


def test_the_gemm_precision_is_an_option_that_leaves_the_default_alone() -> None:
    model = tiny_model("gpt2")
    adapter = ModelAdapter(model)
    forward, targets, rows = adapter.forward(IDS), next_token_targets(IDS), range(adapter.num_layers + 1)
    default = compute_grid(adapter, None, forward, targets, rows)
    same = compute_grid(adapter, None, forward, targets, rows, gemm_dtype=torch.float32)
    assert np.array_equal(default.stats, same.stats, equal_nan=True)
    assert np.array_equal(default.top_ids, same.top_ids) and np.array_equal(default.top_probs, same.top_probs)
    half = compute_grid(adapter, None, forward, targets, rows, gemm_dtype=torch.bfloat16, sync_free=True)
    assert half.stats.dtype == np.float32
    # bfloat16 logits carry about 3 significant digits: close, not equal.
    for name in ("entropy", "max_probability"):
        np.testing.assert_allclose(half.statistic(name), default.statistic(name), rtol=0.1, atol=0.05, err_msg=name)


@pytest.mark.parametrize("rows", [[], [0, 0], [-1], [4]])
def test_bad_rows_are_a_clear_error(rows: list[int]) -> None:
    adapter = ModelAdapter(tiny_model("gpt2"))
    with pytest.raises(ValueError, match=r"rows must be distinct indices in 0..3"):
        compute_grid(adapter, LogitLens(), adapter.forward(IDS), next_token_targets(IDS), rows)


def test_next_token_targets_shift_by_one_and_mark_the_last_missing() -> None:
    assert next_token_targets(torch.tensor([7, 8, 9])).tolist() == [8, 9, NO_TARGET]


def test_kept_last_logits_are_the_last_columns_logits_in_row_order() -> None:
    model = tiny_model("gpt2")
    adapter = ModelAdapter(model)
    forward = adapter.forward(IDS)
    L = adapter.num_layers
    grid = compute_grid(adapter, LogitLens(), forward, next_token_targets(IDS), [L, 1], keep_last_logits=True)
    assert grid.last_logits is not None and grid.last_logits.shape == (2, adapter.vocab_size)
    with torch.no_grad():
        torch.testing.assert_close(grid.last_logits[0], adapter.output_logits(forward.hidden[L, -1]))
        torch.testing.assert_close(grid.last_logits[1], adapter.unembed(forward.hidden[1, -1]))


def test_no_lens_is_the_logit_lens() -> None:
    adapter = ModelAdapter(tiny_model("gpt2"))
    forward, targets, rows = adapter.forward(IDS), next_token_targets(IDS), range(adapter.num_layers + 1)
    default = compute_grid(adapter, None, forward, targets, rows)
    logit = compute_grid(adapter, LogitLens(), forward, targets, rows)
    assert np.array_equal(default.stats, logit.stats, equal_nan=True)
    assert np.array_equal(default.top_ids, logit.top_ids)


# --- pair grids (A/B) --------------------------------------------------------------------------

AGREE = DIFF_STATISTICS.index("top1_agree")


def pair_input(model: torch.nn.Module, lens: TunedLens | None = None) -> GridInput:
    adapter = ModelAdapter(model)
    return GridInput(adapter, lens, adapter.forward(IDS))


def test_a_pair_grid_is_both_models_grids_and_the_pair_statistics_of_their_cells() -> None:
    a = pair_input(tiny_model("llama"))
    b_model = tiny_model("llama", seed=1)
    b = pair_input(b_model, random_tuned_lens(b_model))
    rows, targets = [0, 2, 3], next_token_targets(IDS)
    pair = compute_pair_grid(a, b, targets, rows, top_k=K, keep_last_logits=True)
    t = targets.numpy()
    cell_logits = {}
    for side, grid in (("a", pair.a), ("b", pair.b)):
        source = a if side == "a" else b
        alone = compute_grid(source.adapter, source.lens, source.forward, targets, rows, top_k=K, keep_last_logits=True)
        cell_logits[side] = grid_cell_logits(source.adapter, source.lens or LogitLens(), source.forward.hidden, rows)
        assert grid.rows == tuple(rows)
        assert_same_cells(
            TargetCells(grid.stats, grid.top_ids, grid.top_probs, t),
            TargetCells(alone.stats, alone.top_ids, alone.top_probs, t),
            cell_logits[side],
            tol=1e-5,
        )
        assert grid.last_logits is not None and alone.last_logits is not None
        torch.testing.assert_close(grid.last_logits, alone.last_logits, rtol=1e-5, atol=1e-5)
    assert pair.diff.shape == (len(DIFF_STATISTICS), len(rows), len(IDS)) and pair.diff.dtype == np.float32
    for r in range(len(rows)):
        for column in range(len(IDS)):
            expected = pair_statistics(cell_logits["a"](r, column), cell_logits["b"](r, column)).numpy()
            others = [i for i in range(len(DIFF_STATISTICS)) if i != AGREE]
            np.testing.assert_allclose(pair.diff[others, r, column], expected[others], rtol=1e-4, atol=1e-5)
            same_top = pair.a.top_ids[r, column, 0] == pair.b.top_ids[r, column, 0]
            assert pair.diff[AGREE, r, column] == float(same_top), "agreement is of the top-1 ids shown"
    assert (pair.diff[DIFF_STATISTICS.index("js")] > 0).all()


def test_a_pair_grid_without_syncs_gives_the_default_pair_grid() -> None:
    a = pair_input(tiny_model("llama", vocab_size=3100))
    b_model = tiny_model("llama", seed=1, vocab_size=3100)
    b = pair_input(b_model, random_tuned_lens(b_model))
    rows, targets = [3, 0, 2], next_token_targets(IDS)
    default = compute_pair_grid(a, b, targets, rows, top_k=3, keep_last_logits=True)
    free = compute_pair_grid(a, b, targets, rows, top_k=3, keep_last_logits=True, sync_free=True, chunk_bytes=2**20)
    t = targets.numpy()
    for side, source in (("a", a), ("b", b)):
        x, y = getattr(free, side), getattr(default, side)
        assert_same_cells(
            TargetCells(x.stats, x.top_ids, x.top_probs, t),
            TargetCells(y.stats, y.top_ids, y.top_probs, t),
            grid_cell_logits(source.adapter, source.lens or LogitLens(), source.forward.hidden, rows),
            tol=1e-5,
        )
        torch.testing.assert_close(x.last_logits, y.last_logits)
    np.testing.assert_allclose(free.diff, default.diff, rtol=1e-5, atol=1e-6)


def test_a_pair_grid_of_a_model_with_itself_is_exactly_zero() -> None:
    model = tiny_model("gpt2")
    a, b = pair_input(model), pair_input(model)
    pair = compute_pair_grid(a, b, next_token_targets(IDS), range(a.adapter.num_layers + 1))
    assert np.array_equal(pair.a.stats, pair.b.stats, equal_nan=True)
    assert (pair.diff[:AGREE] == 0).all() and (pair.diff[AGREE] == 1).all()


def test_a_pair_grid_runs_one_head_gemm_per_model_per_block_within_chunk_bytes() -> None:
    a, b = pair_input(tiny_model("gpt2")), pair_input(tiny_model("gpt2", seed=1))
    rows = [0, 1, 3]
    whole = compute_pair_grid(a, b, next_token_targets(IDS), rows)
    seen: dict[str, list[int]] = {"a": [], "b": []}
    for side, source in (("a", a), ("b", b)):
        original = source.adapter.decode
        # Each side stacks rows 0 and 1 and the output: one GEMM of [positions, 3, d] per block.
        source.adapter.decode = lambda h, o=original, s=side, **kw: seen[s].append(h.shape[0]) or o(h, **kw)  # type: ignore[method-assign]
    vocab = a.adapter.vocab_size
    chunk_bytes = 4 * vocab * (3 + 3) * 3  # both models' float32 logits of three positions per block
    chunked = compute_pair_grid(a, b, next_token_targets(IDS), rows, chunk_bytes=chunk_bytes)
    assert seen["a"] == seen["b"] == [3, 3, 3, 3]
    np.testing.assert_allclose(chunked.diff, whole.diff, rtol=1e-5, atol=1e-5)


def test_models_of_different_depth_are_paired_by_relative_depth() -> None:
    a = pair_input(tiny_model("gpt_neox", num_hidden_layers=4))
    b = pair_input(tiny_model("gpt_neox", num_hidden_layers=2, seed=1))
    targets = next_token_targets(IDS)
    pair = compute_pair_grid(a, b, targets, range(5))
    assert pair.b.rows == (0, 1, 1, 2, 2)  # 0, 0.5 → 1, 1, 1.5 → 2 (B's output), output → output
    alone = compute_grid(b.adapter, None, b.forward, targets, [0, 1, 2])
    for row, layer in enumerate(pair.b.rows):
        np.testing.assert_allclose(pair.b.stats[:, row], alone.stats[:, layer], rtol=1e-5, atol=1e-5)
    again = compute_pair_grid(a, b, targets, [1, 4], rows_b=[0, 2])  # explicit pairs override the rule
    np.testing.assert_allclose(again.b.stats[:, 0], alone.stats[:, 0], rtol=1e-5, atol=1e-5)


def test_the_relative_depth_rule_and_its_row_labels() -> None:
    assert aligned_layers(range(5), 4, 2) == [0, 1, 1, 2, 2]
    assert aligned_layers(range(3), 2, 4) == [0, 2, 4]
    assert aligned_layers(range(13), 12, 12) == list(range(13))
    assert aligned_layers([0, 11, 12], 12, 24) == [0, 22, 24]
    assert aligned_layers([1, 23, 24], 24, 12) == [1, 12, 12]  # 0.5 → 1 and 11.5 → 12: halves round up
    assert aligned_layers([6], 12, 5) == [3]  # 2.5 → 3 (Python's round would give 2)
    assert pair_row_labels([0, 3, 6], 6, 6) == ["0", "3", "output"]
    assert pair_row_labels([0, 3, 5, 6], 6, 12) == ["0 | 0", "3 | 6", "5 | 10", "output"]
    assert pair_row_labels([3, 4], 4, 2) == ["3 | output", "output"]


def test_sublayer_rows_sort_label_and_pair_by_the_depth_of_their_layer() -> None:
    """Row L + ℓ is "ℓ.attn", between rows ℓ - 1 and ℓ; the stride adds one under each shown layer ≥ 1."""
    assert stride_rows(4, 1, True) == [0, 5, 1, 6, 2, 7, 3, 8, 4]
    assert stride_rows(4, 3, True) == [0, 7, 3, 8, 4]
    assert stride_rows(4, 3) == [0, 3, 4]
    assert by_depth([4, 8, 0, 5, 1], 4) == [0, 5, 1, 8, 4]
    assert row_labels([0, 5, 1, 8, 4], 4) == ["0", "1.attn", "1", "4.attn", "output"]
    assert [translator(r, 4) for r in (0, 3, 5, 7, 8)] == [0, 3, 1, 3, None]
    assert aligned_layers([5, 6, 7, 8], 4, 2) == [3, 3, 4, 4]  # ℓ's pair's .attn row, never "0.attn"
    assert aligned_layers([13], 12, 2) == [3]  # 1.attn: round(1/6) = 0, so B's 1.attn
    assert pair_row_labels([5, 8, 4], 4, 2) == ["1.attn | 1.attn", "4.attn | 2.attn", "output"]


def test_sublayer_rows_need_a_forward_that_holds_them() -> None:
    model = tiny_model("gpt2")
    adapter = ModelAdapter(model)
    forward = adapter.forward(IDS)
    L = adapter.num_layers
    with pytest.raises(ValueError, match=f"0..{L}"):
        compute_grid(adapter, None, forward, next_token_targets(IDS), [0, L + 1])
    doubled = ModelForward(torch.cat([forward.hidden, forward.hidden[:L]]))  # row L + ℓ holds hidden[ℓ - 1]
    lens = TunedLens.from_model(model)
    with torch.no_grad():
        for p in lens.parameters():
            p.normal_(0, 0.3)
    grid = compute_grid(adapter, lens, doubled, next_token_targets(IDS), [L + 1, 2, 2 * L])
    # Row L + 1 reads hidden[0] through translator 1; 2L reads hidden[L - 1] through none.
    by_hand = compute_grid(adapter, _Remapped(lens, {0: 1}), forward, next_token_targets(IDS), [0])
    np.testing.assert_allclose(grid.stats[:, 0], by_hand.stats[:, 0], rtol=1e-5, atol=1e-5)
    logit = compute_grid(adapter, None, forward, next_token_targets(IDS), [L - 1])
    np.testing.assert_allclose(grid.stats[:, 2], logit.stats[:, 0], rtol=1e-5, atol=1e-5)


class _Remapped:
    """A lens that reads layer i through another layer's translator."""

    name = "tuned"

    def __init__(self, lens: TunedLens, remap: dict[int, int]) -> None:
        self.lens, self.remap = lens, remap

    def translate(self, hidden: torch.Tensor, layers: list[int]) -> torch.Tensor:
        return self.lens.translate(hidden, [self.remap.get(layer, layer) for layer in layers])


def test_a_pair_grid_refuses_models_that_cannot_be_compared() -> None:
    a = pair_input(tiny_model("gpt2"))
    other_vocab = pair_input(tiny_model("gpt2", vocab_size=97))
    with pytest.raises(ValueError, match="A's unembedding has 96 tokens, B's 97"):
        compute_pair_grid(a, other_vocab, next_token_targets(IDS), [0])
    shorter = GridInput(a.adapter, None, ModelForward(a.forward.hidden[:, :5]))
    with pytest.raises(ValueError, match="cover 12 and 5 positions"):
        compute_pair_grid(a, shorter, next_token_targets(IDS), [0])
    with pytest.raises(ValueError, match="rows_b must pair one layer of model B with each of the 2 rows"):
        compute_pair_grid(a, a, next_token_targets(IDS), [0, 1], rows_b=[0])
    with pytest.raises(ValueError, match=r"rows must be indices in 0..3"):
        compute_pair_grid(a, a, next_token_targets(IDS), [0, 1], rows_b=[0, 4])


# --- the tie-aware comparison itself (tests/grid_checks.py) -----------------------------------

_RANK = STATISTICS.index("rank")
TIED = torch.tensor([4.0, 2.0, 2.0 + 1e-6, 1.0 + 1e-6, 1.0, -3.0])
"""Tokens 1 and 2 are tied up to 1e-6, and so are 3 and 4."""


def one_cell(logits: torch.Tensor, target: int, k: int) -> TargetCells:
    got = cell_statistics(logits[None, None], torch.tensor([target]), log_probs(logits)[None], k)
    return TargetCells(got.values.numpy(), got.top_ids.numpy(), got.top_probs.numpy(), np.array([target]))


def swap(logits: torch.Tensor, i: int, j: int) -> torch.Tensor:
    order = list(range(len(logits)))
    order[i], order[j] = j, i
    return logits[order]


def test_grid_checks_accept_tied_tokens_in_either_order_or_either_at_the_boundary() -> None:
    a, b = one_cell(TIED, 1, 4), one_cell(swap(swap(TIED, 1, 2), 3, 4), 1, 4)
    assert a.top_ids.ravel().tolist() == [0, 2, 1, 3] and b.top_ids.ravel().tolist() == [0, 1, 2, 4]
    assert (a.stats[_RANK].item(), b.stats[_RANK].item()) == (3.0, 2.0), "the tie moves the target's rank"
    assert_same_cells(a, b, lambda r, t: TIED, tol=1e-5)


def test_grid_checks_reject_a_real_difference_in_probabilities_ids_or_ranks() -> None:
    a = one_cell(TIED, 1, 4)
    logits = lambda r, t: TIED  # noqa: E731
    other = one_cell(swap(TIED, 0, 1), 1, 4)  # token 1 becomes the most likely: not a tie
    with pytest.raises(AssertionError):
        assert_same_cells(a, other, logits, tol=1e-5)
    relabelled = TargetCells(a.stats, a.top_ids[..., [1, 0, 2, 3]], a.top_probs, a.targets)  # same probabilities
    with pytest.raises(AssertionError, match="not a tie"):
        assert_same_cells(a, relabelled, logits, tol=1e-5)
    outside = TargetCells(a.stats, a.top_ids.copy(), a.top_probs, a.targets)
    outside.top_ids[..., 3] = 5  # token 5 is far less likely than the 4th: not a boundary tie
    with pytest.raises(AssertionError, match="not a tie"):
        assert_same_cells(a, outside, logits, tol=1e-5)
    for delta, target in [(2.0, 1), (1.0, 0)]:  # more than the one tied token; a target with no tie at all
        base = one_cell(TIED, target, 4)
        stats = base.stats.copy()
        stats[_RANK] += delta
        with pytest.raises(AssertionError, match="tied with target"):
            assert_same_cells(base, TargetCells(stats, base.top_ids, base.top_probs, base.targets), logits, tol=1e-5)
