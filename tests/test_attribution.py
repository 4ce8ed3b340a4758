"""Direct logit attribution: the components add up to the cell's logit, each head's share is its own,
and the one-token recompute from the cache is the text's forward."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_models import FAMILIES, random_lens, tiny_model, tiny_tokenizer

from lens_widget import LensSession
from lens_widget.adapter import ModelAdapter
from lens_widget.attribution import AttributionError, block_states, layout_of

VOCAB = 400
TEXT = "The quick brown fox jumps over the lazy dog"


def _session(family: str, dtype: torch.dtype = torch.float32, tuned: bool = True, **config: object) -> LensSession:
    model = tiny_model(family, vocab_size=VOCAB, dtype=dtype, **config)
    lens = random_lens(model) if tuned else None
    session = LensSession(model, tiny_tokenizer(VOCAB), lens)
    session.set_text(TEXT)
    return session


def _reference_logit(session: LensSession, row: int, position: int, token: int) -> float:
    """The cell's logit in float64, from the session's hidden state through the lens, the final norm
    and the head as modules (no attribution code), and the model's logit post-processing by hand."""
    track = session._track("a")
    adapter = track.adapter
    h = track.hidden[row, position].double()[None, None]
    with torch.no_grad():
        if row == adapter.num_layers:
            x = adapter.head_input(h)
        else:
            x = adapter.final_norm(session.lens.translate(h, [row]) if session.lens.name == "tuned" else h)
        z = float(adapter.head(x).double()[0, 0, token])
    config = adapter.model.config
    z *= getattr(config, "logit_scale", None) or 1.0
    z /= getattr(config, "logits_scaling", None) or 1.0
    cap = getattr(config, "final_logit_softcapping", None)
    return math.tanh(z / cap) * cap if cap else z


@pytest.mark.parametrize(
    ("family", "config"),
    [
        ("gpt2", {}),
        ("gpt_neox", {}),  # parallel residual
        ("falcon", {}),  # parallel residual, LayerNorm
        ("llama", {}),
        ("gemma2", {"final_logit_softcapping": 30.0}),  # soft-capped head, post-attention norms
        ("cohere", {}),  # scaled head (logit_scale), parallel
        ("granite", {}),  # divided head (logits_scaling)
        ("bloom", {}),  # attention and MLP that add the residual themselves
    ],
)
def test_components_sum_to_the_logit_in_float64(family: str, config: dict[str, object]) -> None:
    session = _session(family, torch.float64, **config)
    L = session.num_layers
    for row in range(L + 1):
        for position in (0, 4, len(session.tokens.ids) - 1):
            a = session.attribution(row, position)
            reference = _reference_logit(session, row, position, a.token_id)
            # RMSNorms compute in float32 even in a float64 model: their families agree to ~1e-7.
            assert a.total == pytest.approx(reference, rel=1e-6, abs=1e-6), (row, position)
            assert a.values.sum() == pytest.approx(a.total, rel=1e-12, abs=1e-12)
            assert a.logit == pytest.approx(reference, rel=1e-5, abs=1e-5)  # the grid's float32 logit


@pytest.mark.parametrize("family", FAMILIES)
def test_components_sum_to_the_cells_logit_in_float32(family: str) -> None:
    session = _session(family)
    L = session.num_layers
    for row in (0, 1, L, L + 1, 2 * L):  # layer rows, the output and the ℓ.attn rows
        a = session.attribution(row, 3)
        assert a.total == pytest.approx(a.logit, rel=1e-4, abs=1e-4), (family, row)
        blocks = a.heads.shape[0]
        written = row if row <= L else row - L  # blocks whose heads wrote to the row
        assert np.isfinite(a.heads[:written]).all() and np.isnan(a.heads[written:]).all()
        mlps = row if row <= L else row - L - 1
        assert np.isfinite(a.mlps[:mlps]).all() and np.isnan(a.mlps[mlps:]).all()
        assert blocks == L


def test_the_top1_token_is_the_cells() -> None:
    session = _session("gpt2")
    _, top_ids, _ = session.grid_arrays()
    for index, row in enumerate(session.rows):
        a = session.attribution(row, 5)
        assert a.token_id == int(top_ids[index, 5, 0])
        assert a.token == session.token_strings()[a.token_id]
        assert a.label == session.row_labels[index]


def test_a_head_share_is_what_removing_that_head_removes() -> None:
    """Independent of the decomposition: zero one head's slice of GPT-2's c_proj input in a forward
    pass; what the residual loses is that head's output, and its logit share is that vector through
    ln_f with its scale at the cell (written out by hand) and the token's unembedding row."""
    session = _session("gpt2", torch.float64, tuned=False)
    model = session._track("a").adapter.model
    block, head, position, row, token = 1, 2, 6, 2, 11
    a = session.attribution(row, position, token)
    ids = torch.tensor([session.tokens.ids])
    attn = model.transformer.h[block].attn
    size = attn.head_dim

    def zero_head(module: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        z = args[0].clone()
        z[..., head * size : (head + 1) * size] = 0
        return (z,)

    outputs: list[torch.Tensor] = []
    hook = attn.c_proj.register_forward_hook(lambda m, args, out: outputs.append(out[0, position]))
    with torch.no_grad():
        model(ids)
        with attn.c_proj.register_forward_pre_hook(zero_head):
            model(ids)
    hook.remove()
    o = outputs[0] - outputs[1]  # the head's output at the position
    ln = model.transformer.ln_f
    with torch.no_grad():
        residual = model(ids, output_hidden_states=True).hidden_states[row][0, position]
        sigma = torch.sqrt(residual.var(unbiased=False) + ln.eps)
        share = float(((o - o.mean()) / sigma * ln.weight) @ model.lm_head.weight[token])
    assert a.heads[block, head] == pytest.approx(share, rel=1e-9, abs=1e-9)
    assert a.heads[block + 1 :].size == 0 or np.isnan(a.heads[block + 1 :]).all()


def test_the_cache_cut_gives_the_texts_own_forward_and_leaves_the_cache_alone() -> None:
    session = _session("llama")
    track = session._track("a")
    adapter: ModelAdapter = track.adapter
    layout = layout_of(adapter)
    ids = list(session.tokens.ids)
    length = track.cache.get_seq_length()
    for position in (0, 3, len(ids) - 1):
        cut = block_states(adapter, layout, ids, position, track.cache)
        whole = block_states(adapter, layout, ids, position, None)
        for key in cut:
            for x, y in zip(cut[key], whole[key], strict=True):
                torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-5)
    assert track.cache.get_seq_length() == length
    # The session goes on as if nothing happened: an append equals a fresh session.
    session.set_text(TEXT + " again")
    fresh = LensSession(adapter.model, session.tokenizer, session.lens)
    fresh.set_text(TEXT + " again")
    np.testing.assert_allclose(session.grid_arrays()[0], fresh.grid_arrays()[0], rtol=1e-4, atol=1e-4)


def test_a_pinned_or_named_token_and_model_b() -> None:
    a_model = tiny_model("gpt2", vocab_size=VOCAB, seed=0)
    b_model = tiny_model("gpt2", vocab_size=VOCAB, seed=1, num_hidden_layers=5)
    session = LensSession(a_model, tiny_tokenizer(VOCAB), model_b=b_model)
    session.set_text(TEXT)
    strings = session.token_strings()
    token = strings.index("Ġthe") if "Ġthe" in strings else 50
    by_id = session.attribution(3, 4, token)
    by_text = session.attribution(3, 4, strings[token])
    assert by_id.token_id == by_text.token_id == token
    np.testing.assert_array_equal(by_id.values, by_text.values)
    b = session.attribution(3, 4, token, model="b")
    assert b.heads.shape[0] == 5 and (b.row, b.label) == (3, "output")  # B read at its own output
    assert b.total == pytest.approx(b.logit, rel=1e-4, abs=1e-4)
    assert b.model == session.names[1]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s: s.attribution(99, 0), "row must be from 0 to 6"),
        (lambda s: s.attribution(1, 500), "position must be a token index"),
        (lambda s: s.attribution(1, -1), "position must be a token index"),
        (lambda s: s.attribution(1, 0, 10_000), "token id must be from 0"),
        (lambda s: s.attribution(1, 0, "no such token!"), "is not one token of the vocabulary"),
        (lambda s: s.attribution(1, 0, 1.5), "token must be a token id"),
        (lambda s: s.attribution("1", 0), "row must be a layer index"),
        (lambda s: s.attribution(1, 0, model="c"), "model must be one of"),
    ],
)
def test_bad_arguments_are_refused_clearly(call: object, message: str) -> None:
    session = _session("gpt2")
    with pytest.raises((AttributionError, ValueError), match=message):
        call(session)  # type: ignore[operator]
    assert session.attribution(1, 0).total == pytest.approx(session.attribution(1, 0).logit, abs=1e-4)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("family", ["gpt2", "llama", "gemma2", "gpt_neox", "bloom"])
def test_half_precision_models_add_up_within_their_precision(family: str, dtype: torch.dtype) -> None:
    session = _session(family, dtype)
    for row in range(2 * session.num_layers + 1):
        a = session.attribution(row, 4)
        assert a.total == pytest.approx(a.logit, rel=2e-2, abs=2e-2), (row, a.total, a.logit)


@pytest.mark.parametrize("family", ["gpt_neox", "llama", "gpt2"])
def test_a_model_placed_by_accelerate_gives_the_in_memory_numbers(family: str, tmp_path: Path) -> None:
    """Every block, the final norm and the head offloaded (to the CPU or the disk): their weights are
    brought in for the attribution as for the model's own forward."""
    from test_placement import TOKENIZER, cpu_offloaded, disk_offloaded, model

    m = model(family)
    reference = LensSession(m, TOKENIZER)
    reference.set_text(TEXT)
    for placed in (cpu_offloaded(m), disk_offloaded(m, tmp_path)):
        session = LensSession(placed, TOKENIZER)
        session.set_text(TEXT)
        for row in (1, session.num_layers, session.num_layers + 2):
            a, b = session.attribution(row, 5), reference.attribution(row, 5)
            assert a.token_id == b.token_id
            np.testing.assert_allclose(a.values, b.values, rtol=1e-4, atol=1e-4)
            assert a.total == pytest.approx(a.logit, rel=1e-4, abs=1e-4)


def test_an_attn_row_reads_the_kept_state_when_the_rows_are_shown() -> None:
    """With sublayers on, an ℓ.attn cell's logit comes from the state the session kept for it (what
    its grid decoded); without, from the recomputed block input plus attention share: the same."""
    session = _session("llama")
    L = session.num_layers
    without = [session.attribution(L + sub, 5) for sub in range(1, L + 1)]
    session.set_sublayers(True)
    _, top_ids, _ = session.grid_arrays()
    for sub, before in zip(range(1, L + 1), without, strict=True):
        a = session.attribution(L + sub, 5)
        assert a.label == f"{sub}.attn" and a.token_id == before.token_id
        assert a.token_id == int(top_ids[session.rows.index(L + sub), 5, 0])
        assert a.logit == pytest.approx(before.logit, rel=1e-4, abs=1e-4)
        assert a.total == pytest.approx(a.logit, rel=1e-4, abs=1e-4)
