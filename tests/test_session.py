"""LensSession: incremental results equal a fresh recompute, the cache is really reused, and bad
input gets a clear error or a documented behaviour."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from grid_checks import (
    assert_near_float32,
    assert_same_cells,
    assert_same_grid,
    session_cell_logits,
    session_cells,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tiny_models import NaNLens, random_lens, tiny_model, tiny_tokenizer
from torch import nn

from lens_widget import LensMismatchError, LogitLens, ModelAdapter, TunedLens
from lens_widget.errors import InvalidLensError
from lens_widget.payload import apply_update, payload_of
from lens_widget.session import LensSession
from lens_widget.statistics import DIFF_STATISTICS, STATISTICS

VOCAB = 400
TOKENIZER = tiny_tokenizer(VOCAB)
TEXT = "The quick brown fox jumps over the lazy dog. Paris is the capital of France."


def model(family: str = "gpt_neox", dtype: torch.dtype = torch.float32, **extra: object) -> nn.Module:
    extra.setdefault("max_position_embeddings", 512)
    return tiny_model(family, vocab_size=VOCAB, dtype=dtype, **extra)


def session(m: nn.Module | None = None, **kwargs: object) -> LensSession:
    return LensSession(m if m is not None else model(), TOKENIZER, **kwargs)  # type: ignore[arg-type]


def assert_equals_fresh(s: LensSession, fresh: LensSession, tol: float = 1e-4) -> None:
    """A session on a new model instance, given the final text at once, has the same grid."""
    fresh.set_text(s.text)
    assert_same_grid(s, fresh, tol=tol)


def fail_once(m: nn.Module) -> None:
    """The model's next forward pass raises (an out-of-memory mid-update, say); later ones run."""
    armed = {"fail": True}

    def explode(module: nn.Module, args: object, out: object) -> None:
        if armed["fail"]:
            armed["fail"] = False
            raise RuntimeError("injected failure")

    m.get_input_embeddings().register_forward_hook(explode)


class PositionCounter:
    """Counts the positions the model's embedding sees: the model's real work, not a timing."""

    def __init__(self, m: nn.Module) -> None:
        self.calls: list[int] = []
        m.get_input_embeddings().register_forward_hook(lambda mod, args, out: self.calls.append(args[0].numel()))


def test_first_text_gives_a_full_grid_of_every_row() -> None:
    s = session()
    update = s.set_text(TEXT)
    n = len(TOKENIZER(TEXT).input_ids)
    assert update.kind == "full" and update.col_start == 0 and update.n_tokens == n
    assert update.rows == tuple(range(s.num_layers + 1))
    stats, ids, _probs = s.grid_arrays()
    assert stats.shape == (len(STATISTICS), s.num_layers + 1, n) and ids.shape == (s.num_layers + 1, n, 10)


def test_append_runs_the_model_on_exactly_one_new_position() -> None:
    m = model()
    s = session(m)
    s.set_text("The quick brown fox jumps over the lazy")
    counter = PositionCounter(m)
    before = len(s.tokens.ids)
    update = s.set_text("The quick brown fox jumps over the lazy dog")
    assert len(s.tokens.ids) == before + 1
    assert counter.calls == [1]
    assert update.kind == "columns" and list(update.changed_columns) == [before]
    assert_equals_fresh(s, session(model()))


def test_append_patches_the_previous_columns_cross_entropy_without_a_second_gemm() -> None:
    m = model()
    s = session(m)
    s.set_text("Paris is the capital of")
    unembeds: list[int] = []
    head = m.get_output_embeddings()
    head.register_forward_hook(lambda mod, args, out: unembeds.append(args[0].numel() // args[0].shape[-1]))
    update = s.set_text("Paris is the capital of France")
    # One head call covering the new columns of every row (lens rows and the output row together),
    # and none for the previous column, whose kept logits give its new CE and rank.
    assert unembeds == [(s.num_layers + 1) * len(update.changed_columns)]
    assert payload_of(update)["grids"][0]["patch"], "the previous column's CE and rank are sent"
    assert_equals_fresh(s, session(model()))


def test_an_edit_in_the_middle_reruns_only_the_suffix() -> None:
    m = model()
    s = session(m)
    s.set_text(TEXT)
    counter = PositionCounter(m)
    edited = TEXT.replace("lazy", "sleepy")
    update = s.set_text(edited)
    old_ids, new_ids = TOKENIZER(TEXT).input_ids, TOKENIZER(edited).input_ids
    first = next(i for i, (a, b) in enumerate(zip(old_ids, new_ids, strict=False)) if a != b)
    assert update.col_start == first
    assert counter.calls == [len(s.tokens.ids) - first]
    fresh = session(model())
    fresh.set_text(edited)
    assert_same_grid(s, fresh)


def test_a_stride_change_computes_only_missing_rows_and_keeps_the_output_row() -> None:
    m = model(num_hidden_layers=6)
    s = session(m, layer_stride=3)
    s.set_text(TEXT)
    assert s.rows == [0, 3, 6]
    counter = PositionCounter(m)
    update = s.set_layer_stride(2)
    assert counter.calls == [], "no model run for a stride change"
    assert update.kind == "rows" and update.rows == (2, 4)
    assert s.rows == [0, 2, 3, 4, 6]
    again = s.set_layer_stride(3)
    assert again.rows == () and s.rows == [0, 2, 3, 4, 6]
    s.set_text(TEXT + " More")
    assert s.rows == [0, 3, 6], "an edit recomputes only the displayed rows"
    assert_equals_fresh(s, session(model(num_hidden_layers=6), layer_stride=3))


def test_a_lens_switch_reruns_no_model() -> None:
    m = model()
    s = session(m)
    s.set_text(TEXT)
    lens = TunedLens.from_model(m)
    with torch.no_grad():
        for p in lens.parameters():
            p.normal_(0, 0.3)
    counter = PositionCounter(m)
    update = s.set_lens(lens)
    assert counter.calls == [] and update.kind == "rows" and update.rows == tuple(range(s.num_layers))
    fresh = session(model(), lens=lens)
    fresh.set_text(TEXT)
    assert_same_grid(s, fresh)
    s.set_text(TEXT + " And")  # the append after a switch uses the switched lens's kept logits
    fresh.set_text(TEXT + " And")
    assert_same_grid(s, fresh)
    s.set_lens(None)
    logit = session(model())
    logit.set_text(s.text)
    assert_same_grid(s, logit)
    assert isinstance(s.lens, LogitLens)


def test_the_payload_stream_rebuilds_the_sessions_state() -> None:
    s = session(model(num_hidden_layers=4), layer_stride=2)
    state = apply_update(None, payload_of(s.set_text("Hello")))
    for change in [
        lambda: s.set_text("Hello world"),
        lambda: s.set_layer_stride(1),
        lambda: s.set_text("Hello there world"),
        lambda: s.set_layer_stride(4),
        lambda: s.set_text("Hello"),
        lambda: s.set_text(""),
        lambda: s.set_text("Again 🙂"),
    ]:
        state = apply_update(state, payload_of(change()))
        assert state.rows == s.rows
        stats, ids, _probs = s.grid_arrays()
        np.testing.assert_allclose(state.grids[0].stats, stats, rtol=1e-3, atol=1e-3)
        assert np.array_equal(state.grids[0].top_ids, ids)
        assert state.token_ids.tolist() == s.tokens.ids


def test_empty_and_whitespace_texts_are_empty_or_real_grids() -> None:
    s = session()
    update = s.set_text("")
    assert update.n_tokens == 0 and s.grid_arrays()[0].shape[2] == 0
    update = s.set_text("   \n\t ")
    assert update.n_tokens == len(TOKENIZER("   \n\t ").input_ids) > 0
    s.set_text("")
    assert s.tokens.ids == [] and s.set_text("x").n_tokens == 1


def test_text_longer_than_max_tokens_is_cut_with_a_notice() -> None:
    s = session(max_tokens=16)
    update = s.set_text(TEXT * 3)
    assert update.n_tokens == 16
    notice = payload_of(update)["header"]["notice"]
    assert "showing the first 16" in notice and str(len(TOKENIZER(TEXT * 3).input_ids)) in notice
    assert payload_of(update)["header"]["total_tokens"] > 16


def test_a_huge_text_is_bounded_and_fast_to_refuse_nothing() -> None:
    s = session(max_tokens=64)
    update = s.set_text("word " * 20_000)  # 100k characters
    assert update.n_tokens == 64 and "showing the first 64" in payload_of(update)["header"]["notice"]


def test_invalid_surrogates_are_tokenized_as_replacement_characters() -> None:
    s = session()
    update = s.set_text("bad \ud800 surrogate")
    assert update.n_tokens > 0
    assert s.text == "bad \ud800 surrogate", "the user's text is kept as typed"


def test_max_tokens_above_the_context_is_refused() -> None:
    with pytest.raises(ValueError, match="max_tokens = 1000 exceeds the model's context of 512 tokens"):
        session(max_tokens=1000)


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True, None])
def test_bad_strides_are_a_clear_error(bad: object) -> None:
    with pytest.raises(ValueError, match="layer_stride must be a positive integer"):
        session(layer_stride=bad)
    s = session()
    with pytest.raises(ValueError, match="layer_stride must be a positive integer"):
        s.set_layer_stride(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("k", "message"), [(0, "top_k must be a positive integer"), (VOCAB + 1, "at most the vocabulary size 400")]
)
def test_bad_top_k_is_a_clear_error(k: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        session(top_k=k)


def test_non_text_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="text must be a str, got int"):
        session().set_text(5)  # type: ignore[arg-type]


def test_a_mismatched_lens_is_refused_and_the_session_keeps_working() -> None:
    s = session()
    s.set_text(TEXT)
    other = TunedLens.from_model(tiny_model("gpt_neox", vocab_size=VOCAB, hidden_size=64))
    with pytest.raises(LensMismatchError, match="d_model = 64"):
        s.set_lens(other)
    assert s.set_text(TEXT + "!").kind == "columns"


def test_an_exception_mid_update_leaves_the_session_consistent() -> None:
    m = model()
    s = session(m)
    s.set_text(TEXT)
    fail_once(m)
    with pytest.raises(RuntimeError, match="injected failure"):
        s.set_text(TEXT + " More words")
    update = s.set_text(TEXT + " More words")
    assert update.kind == "full", "after a failure the view is sent the whole state"
    fresh = session(model())
    fresh.set_text(TEXT + " More words")
    assert_same_grid(s, fresh)


@pytest.mark.parametrize("family", ["llama", "mistral", "gemma2", "gpt2"])
def test_incremental_equals_fresh_across_families_including_sliding_windows(family: str) -> None:
    # mistral and gemma2 have an 8-token sliding window here: edits beyond it recompute from the start.
    s = session(model(family))
    for text in ["Paris is", "Paris is the capital of France.", "Paris is a city in France.", "Paris"]:
        s.set_text(text)
        fresh = session(model(family))
        fresh.set_text(text)
        assert_same_grid(s, fresh)


# --- property test: any edit sequence ends where a fresh session on the final text starts --------

ALPHABET = st.sampled_from([*list("abcdefghij ,.\n\t"), "é", "東", "🙂", "the", " capital", "Paris"])
EDIT = st.tuples(
    st.sampled_from(["insert", "delete", "replace"]),
    st.floats(0, 1),
    st.floats(0, 1),
    st.lists(ALPHABET, max_size=4).map("".join),
)


def apply_edit(text: str, edit: tuple[str, float, float, str]) -> str:
    op, at, length, piece = edit
    i = int(at * len(text))
    j = min(len(text), i + int(length * 6))
    if op == "insert":
        return text[:i] + piece + text[i:]
    if op == "delete":
        return text[:i] + text[j:]
    return text[:i] + piece + text[j:]


F64 = model(dtype=torch.float64)
F64_FRESH = model(dtype=torch.float64)
F64_B = {  # model B of an A/B session, and an identical copy for the fresh one
    "same depth": (model(dtype=torch.float64, seed=1), model(dtype=torch.float64, seed=1)),
    "shallower": tuple(model(dtype=torch.float64, seed=2, num_hidden_layers=2) for _ in range(2)),
}


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    start=st.lists(ALPHABET, max_size=12).map("".join),
    edits=st.lists(EDIT, max_size=8),
    stride=st.integers(1, 3),
    b=st.sampled_from([None, *F64_B]),
)
def test_any_edit_sequence_equals_a_fresh_session_on_the_final_text(
    start: str, edits: list, stride: int, b: str | None
) -> None:
    # float64 weights: the incremental path (cached attention) and a fresh forward then differ by
    # ~1e-16, so near-ties (which the comparison allows) are rare and real differences stand out.
    # With a model B (A/B), both grids and the diff are compared, tie-aware (grid_checks.py).
    model_b, fresh_b = F64_B[b] if b else (None, None)
    s = LensSession(F64, TOKENIZER, model_b=model_b, layer_stride=stride)
    text = start
    s.set_text(text)
    for edit in edits:
        text = apply_edit(text, edit)
        s.set_text(text)
    fresh = LensSession(F64_FRESH, TOKENIZER, model_b=fresh_b, layer_stride=stride)
    fresh.set_text(text)
    assert_same_grid(s, fresh, tol=1e-3)  # the float16 payload's tolerance


def test_float32_incremental_matches_fresh_within_float16_tolerance() -> None:
    s = session()
    text = ""
    for piece in ["The", " quick", " brown", " fox", " 🙂", " jumps", "\n", "over"]:
        text += piece
        s.set_text(text)
    text = text.replace("brown", "red")
    s.set_text(text)
    fresh = session(model())
    fresh.set_text(text)
    assert_same_grid(s, fresh, tol=1e-3)


def test_stride_and_lens_changes_before_any_text_then_text() -> None:
    m = model(num_hidden_layers=4)
    s = session(m, layer_stride=4)
    assert s.set_layer_stride(2).n_tokens == 0
    assert s.set_lens(TunedLens.from_model(m)).n_tokens == 0
    update = s.set_text(TEXT)
    assert update.kind == "full" and s.rows == [0, 2, 4]
    fresh = session(model(num_hidden_layers=4), layer_stride=2)
    fresh.set_text(TEXT)
    assert_same_grid(s, fresh)


def test_a_model_that_returns_no_cache_is_recomputed_not_continued_blindly() -> None:
    m = model()
    s = session(m)
    s.set_text("Paris is the")
    s._track("a").cache = None  # as if the model had returned none
    counter = PositionCounter(m)
    s.set_text("Paris is the capital")
    assert counter.calls == [len(s.tokens.ids)], "the whole text is run again"
    assert_equals_fresh(s, session(model()))


def bos_tokenizer() -> object:
    """The tiny BPE with a BOS token prepended, as Llama's and Gemma's tokenizers do."""
    from tokenizers import processors

    tok = tiny_tokenizer(VOCAB)
    backend = tok.backend_tokenizer
    bos = "<|endoftext|>"
    backend.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", special_tokens=[(bos, tok.convert_tokens_to_ids(bos))]
    )
    return tok


def test_a_tokenizer_that_adds_bos_keeps_it_as_column_zero_through_edits() -> None:
    tok = bos_tokenizer()
    s = LensSession(model(), tok)
    update = s.set_text("")
    assert update.n_tokens == 1, "an empty text is just the BOS token, a real one-column grid"
    assert s.tokens.spans.tolist() == [[0, 0]]
    s.set_text("Paris is")
    s.set_text("Paris is the capital")
    assert s.tokens.ids[0] == tok.convert_tokens_to_ids("<|endoftext|>")
    fresh = LensSession(model(), tok)
    assert_equals_fresh(s, fresh)


def test_shrinking_the_text_frees_the_dropped_positions() -> None:
    s = session()
    s.set_text(TEXT * 3)
    big = s._track("a").hidden.untyped_storage().nbytes()
    update = s.set_text(TEXT[:20])  # a prefix: only the cut word's last token can change
    assert update.kind == "columns" and update.col_start >= len(s.tokens.ids) - 1
    track = s._track("a")
    assert track.hidden.shape[1] == len(s.tokens.ids)
    assert track.hidden.untyped_storage().nbytes() == track.hidden.numel() * track.hidden.element_size() < big
    assert track.columns == len(s.tokens.ids)


# --- sliding windows: a text as long as the window can still be edited ------------------------

SLIDING = {  # family → overrides that give it sliding-window layers of window 8
    "mistral": {},
    "gemma2": {},
    "gemma3_text": {},
    "qwen2": {"use_sliding_window": True, "sliding_window": 8, "max_window_layers": 0},
    "phi3": {"sliding_window": 8},
    "starcoder2": {"sliding_window": 8},
}
WINDOW = 8


@pytest.mark.parametrize("family", SLIDING)
def test_edits_of_a_text_that_fills_the_sliding_window_equal_a_fresh_session(family: str) -> None:
    def make() -> LensSession:
        return session(model(family, **SLIDING[family]), max_tokens=WINDOW)

    s = make()
    s.set_text(TEXT)
    cache = s._track("a").cache
    assert any(cache.is_sliding) and cache.get_seq_length() == WINDOW == len(s.tokens.ids)
    assert {layer.sliding_window for layer in cache.layers if layer.is_sliding} == {WINDOW}
    end = int(s.tokens.spans[-1, 1])  # the text up to here is exactly WINDOW tokens
    exact = TEXT[:end]
    for text in [exact, exact[:-1] + "Z", exact[:4] + "Z" + exact[4:], TEXT[:4] + "é" + TEXT[4:], exact]:
        s.set_text(text)  # edits of the last token, in the middle, and back
        assert_equals_fresh(s, make())


# --- non-finite logits are drawn as invalid, never as confident ------------------------------


def test_cells_of_a_nan_lens_row_are_nan_in_every_statistic_and_the_notice_names_the_row() -> None:
    s = session(model(num_hidden_layers=4), lens=NaNLens(2), layer_stride=2)
    update = s.set_text(TEXT)
    stats, _ids, probs = s.grid_arrays()
    broken = s.rows.index(2)
    assert np.isnan(stats[:, broken]).all() and np.isnan(probs[broken]).all()
    fine = [i for i in range(len(s.rows)) if i != broken]
    assert np.isfinite(stats[:, fine, :-1]).all()
    assert "row 2:" in payload_of(update)["header"]["notice"]
    # A later update that carries only finite rows still names the kept invalid one.
    update = s.set_layer_stride(1)
    assert update.rows == (1, 3)
    assert "row 2:" in payload_of(update)["header"]["notice"]


def test_a_nan_model_weight_makes_later_rows_and_every_forward_kl_nan_and_says_so() -> None:
    m = model()
    with torch.no_grad():
        m.gpt_neox.layers[1].mlp.dense_4h_to_h.weight.fill_(torch.nan)
    s = session(m)
    update = s.set_text(TEXT)
    stats, _ids, probs = s.grid_arrays()
    entropy, kl = STATISTICS.index("entropy"), STATISTICS.index("forward_kl")
    # hidden_states[2] is block 1's output: row 2 and the output are invalid, rows 0 and 1 are not,
    # but their forward KL compares them with the invalid output.
    assert np.isfinite(stats[entropy, :2]).all() and np.isnan(stats[:, 2:]).all() and np.isnan(probs[2:]).all()
    assert np.isnan(stats[kl]).all()
    notice = payload_of(update)["header"]["notice"]
    assert "rows 2, output:" in notice and "forward KL" in notice


def test_a_nan_notice_comes_with_the_max_tokens_notice() -> None:
    s = session(lens=NaNLens(0), max_tokens=8)
    notice = payload_of(s.set_text(TEXT))["header"]["notice"]
    assert "showing the first 8" in notice and "row 0:" in notice and "forward KL" not in notice


def nan_tuned_lens(m: nn.Module) -> TunedLens:
    lens = TunedLens.from_model(m)
    with torch.no_grad():
        lens.layer_translators[1].bias[3] = torch.nan
    return lens


def test_a_tuned_lens_with_non_finite_parameters_is_refused_when_given() -> None:
    m = model()
    with pytest.raises(InvalidLensError, match=r"layer_translators\.1\.bias holds NaN or infinite values"):
        session(m, lens=nan_tuned_lens(m))
    s = session(m)
    s.set_text(TEXT)
    with pytest.raises(InvalidLensError, match="NaN or infinite"):
        s.set_lens(nan_tuned_lens(m))
    assert s.set_text(TEXT + "!").kind == "columns", "the refusal left the session as it was"


def test_a_lens_weight_that_overflows_the_models_dtype_is_refused() -> None:
    m = model(dtype=torch.float16)
    lens = TunedLens.from_model(model()).float()
    with torch.no_grad():
        lens.layer_translators[0].weight[0, 0] = 1e6  # finite in float32, infinite in float16
    with pytest.raises(InvalidLensError, match=r"layer_translators\.0\.weight .*float16"):
        session(m, lens=lens)
    assert lens.layer_translators[0].weight.dtype == torch.float32, "a refused lens is left as it was"
    assert session(model(), lens=lens).lens is lens, "and still serves a float32 model"


# --- inputs refused at construction, with what to do ---------------------------------------


def test_a_tokenizer_with_more_ids_than_the_model_is_refused_naming_both_sizes() -> None:
    big = tiny_tokenizer(1000)
    assert len(big) > VOCAB
    with pytest.raises(ValueError, match=rf"tokenizer has {len(big)} tokens .* model's vocabulary has {VOCAB}"):
        LensSession(model(), big)


def test_an_id_beyond_the_models_vocabulary_is_refused_by_set_text_and_the_session_keeps_working() -> None:
    tok = tiny_tokenizer(VOCAB)
    s = LensSession(tiny_model("gpt_neox", vocab_size=VOCAB + 1, max_position_embeddings=512), tok)
    s.set_text(TEXT)
    tok.add_tokens(["<new-a>", "<new-b>"])  # ids VOCAB and VOCAB + 1: the last is beyond the model
    with pytest.raises(ValueError, match=rf"token id {VOCAB + 1} \('<new-b>'\) .* vocabulary of {VOCAB + 1}"):
        s.set_text(TEXT + "<new-b>")
    assert s.text == TEXT and s.set_text(TEXT + "<new-a>").kind == "columns"


def test_a_tokenizer_of_another_model_is_warned_of_naming_both_and_the_ids_that_differ() -> None:
    """Its vocabulary fits, so nothing else catches it: the warning needs names that disagree and a
    special token whose id the model's config does not have."""
    other = model()
    other.config._name_or_path = "org/model-a"
    tok = tiny_tokenizer(VOCAB)  # eos 0, where the tiny config says 2
    tok.name_or_path = "org/model-b"
    with pytest.warns(UserWarning, match=r"'org/model-b'.*the model's \('org/model-a'\).*eos 0 \(config: 2\)"):
        LensSession(other, tok)


@pytest.mark.filterwarnings("error::UserWarning")
def test_a_tokenizer_is_not_warned_of_when_its_name_is_another_spelling_or_its_ids_agree() -> None:
    from lens_widget.bundled import load_demo

    demo, demo_tok, _ = load_demo()  # named by a folder while the model is lens-widget-demo/final
    assert demo_tok.name_or_path != demo.config.name_or_path
    LensSession(demo, demo_tok)
    unnamed = tiny_tokenizer(VOCAB)  # no name_or_path: nothing to compare
    LensSession(model(), unnamed)
    listed = model()
    listed.config._name_or_path = "org/model-a"
    listed.config.eos_token_id = [2, 0]  # a list of end tokens, as Llama 3 has
    unnamed.name_or_path = "org/model-b"
    LensSession(listed, unnamed)


def test_a_slow_tokenizer_is_refused_at_construction_saying_how_to_load_a_fast_one() -> None:
    from transformers import ByT5Tokenizer

    with pytest.raises(TypeError, match=r"ByT5Tokenizer is a slow tokenizer.*use_fast=True"):
        LensSession(model(), ByT5Tokenizer())


@pytest.mark.parametrize("bad", [None, "gpt2", nn.Linear(2, 2).weight])
def test_something_that_is_not_a_model_is_a_type_error(bad: object) -> None:
    with pytest.raises(TypeError, match=r"model must be a transformers causal LM \(a torch\.nn\.Module\), got"):
        LensSession(bad, TOKENIZER)  # type: ignore[arg-type]


def test_a_torch_module_that_is_not_a_causal_lm_says_what_a_model_must_be() -> None:
    """An nn.Module without transformers' config and embeddings fails on its first attribute, deep in the
    session; the refusal says what is accepted and how to load it."""
    from transformers import AutoModel

    base = AutoModel.from_config(model().config)  # no LM head
    for bad, why in ((nn.Linear(4, 4), "Linear has no `config`"), (base, "has no output embedding")):
        with pytest.raises(TypeError, match=rf"model must be a transformers causal LM.*AutoModelForCausalLM.*{why}"):
            LensSession(bad, TOKENIZER)
    with pytest.raises(TypeError, match=r"model_b must be a transformers causal LM.*nnsight LanguageModel"):
        LensSession(model(), TOKENIZER, model_b=nn.Linear(4, 4))


def test_an_unavailable_device_is_named() -> None:
    m = model()
    devices = ["cuda:99"] + ([] if torch.cuda.is_available() else ["cuda"])
    for device in devices:
        with pytest.raises(RuntimeError, match=rf"device {device!r} is not available"):
            LensSession(m, TOKENIZER, device=device)
    assert next(m.parameters()).device.type == "cpu", "the model was not moved"
    with pytest.raises(ValueError, match="device 'gpu' is not a torch device"):
        LensSession(m, TOKENIZER, device="gpu")


# --- huge texts: a keystroke costs what max_tokens allows, not what the text is ------------


class RecordingTokenizer:
    """The test tokenizer, recording how many characters each call tokenizes."""

    def __init__(self, tokenizer: object) -> None:
        self.tokenizer = tokenizer
        self.lengths: list[int] = []

    def __call__(self, text: str, **kwargs: object) -> object:
        self.lengths.append(len(text))
        return self.tokenizer(text, **kwargs)  # type: ignore[operator]

    def __len__(self) -> int:
        return len(self.tokenizer)  # type: ignore[arg-type]

    def __getattr__(self, name: str) -> object:
        return getattr(self.tokenizer, name)


def test_a_keystroke_in_a_huge_text_tokenizes_only_what_max_tokens_needs() -> None:
    tok = RecordingTokenizer(TOKENIZER)
    s = LensSession(model(), tok, max_tokens=64)
    text = "Paris is the capital of France. " * 100_000  # 3.2M characters
    update = s.set_text(text)
    update = s.set_text(text + "x")
    assert max(tok.lengths) < 20_000, "a prefix of the 3.2M characters is enough for 64 tokens"
    assert update.n_tokens == 64 and not s.tokens.total_exact
    full = len(TOKENIZER(text[:100_000]).input_ids) * 32  # the count, tokenized here by the test
    assert abs(s.tokens.total - full) < 0.01 * full
    assert f"about {s.tokens.total:,} tokens" in payload_of(update)["header"]["notice"]
    assert s.tokens.ids == TOKENIZER(text[:2000]).input_ids[:64]


# --- A/B: two models over the same text, and the diff of each pair of cells ---------------------

DIFF = {name: i for i, name in enumerate(DIFF_STATISTICS)}


def ab_session(a: nn.Module | None = None, b: nn.Module | None = None, **kwargs: object) -> LensSession:
    return LensSession(
        a if a is not None else model(), TOKENIZER, model_b=b if b is not None else model(seed=1), **kwargs
    )  # type: ignore[arg-type]


def test_a_model_diffed_with_itself_has_exactly_zero_divergence_and_delta_and_agrees_everywhere() -> None:
    m = model()
    s = LensSession(m, TOKENIZER, model_b=m, layer_stride=2)
    for text in [TEXT, TEXT.replace("lazy", "sleepy"), TEXT + " Berlin"]:
        s.set_text(text)
    s.set_layer_stride(1)
    diff = s.diff_arrays()
    assert diff is not None and diff.shape == (len(DIFF_STATISTICS), s.num_layers + 1, len(s.tokens.ids))
    divergences = diff[[DIFF["kl_ab"], DIFF["kl_ba"], DIFF["js"]]]
    assert (divergences == 0).all() and (diff[DIFF["top1_agree"]] == 1).all()
    stats_a, ids_a, _ = s.grid_arrays("a")
    stats_b, ids_b, _ = s.grid_arrays("b")
    delta = stats_b - stats_a
    assert (delta[~np.isnan(delta)] == 0).all() and np.array_equal(np.isnan(stats_a), np.isnan(stats_b))
    assert np.isnan(stats_a[STATISTICS.index("cross_entropy"), :, -1]).all(), "only the last column is missing"
    assert np.array_equal(ids_a, ids_b)


def test_two_different_models_give_each_its_own_grid_and_non_zero_divergences() -> None:
    s = ab_session()
    s.set_text(TEXT)
    for model_name, seed in (("a", 0), ("b", 1)):
        alone = session(model(seed=seed))
        alone.set_text(TEXT)
        assert_same_cells(session_cells(s, model_name), session_cells(alone), session_cell_logits(alone))
    diff = s.diff_arrays()
    assert diff is not None
    assert (diff[DIFF["kl_ab"]] > 0).all() and (diff[DIFF["kl_ba"]] > 0).all()
    assert ((diff[DIFF["js"]] > 0) & (diff[DIFF["js"]] <= np.log(2))).all()
    assert not np.array_equal(diff[DIFF["kl_ab"]], diff[DIFF["kl_ba"]])
    assert set(np.unique(diff[DIFF["top1_agree"]])) <= {0.0, 1.0}
    assert s.is_ab and s.models == ("a", "b") and not session().is_ab


def test_an_ab_append_runs_each_model_on_exactly_one_new_position_and_patches_both() -> None:
    a, b = model(), model(seed=1)
    s = ab_session(a, b)
    s.set_text("The quick brown fox jumps over the lazy")
    counters = PositionCounter(a), PositionCounter(b)
    heads: list[int] = []
    for m in (a, b):
        m.get_output_embeddings().register_forward_hook(lambda mod, args, out: heads.append(args[0].shape[1]))
    before = len(s.tokens.ids)
    update = s.set_text("The quick brown fox jumps over the lazy dog")
    assert len(s.tokens.ids) == before + 1
    assert [c.calls for c in counters] == [[1], [1]]
    assert heads == [1, 1], "one head GEMM per model, for the one new column (the patch uses kept logits)"
    assert update.kind == "columns" and list(update.changed_columns) == [before]
    assert all(grid["patch"] for grid in payload_of(update)["grids"]), "both models' previous column is patched"
    assert payload_of(update)["diff"], "the new column's diff is sent"
    assert_equals_fresh(s, ab_session())


def test_an_ab_edit_in_the_middle_reruns_only_the_suffix_of_both_models() -> None:
    a, b = model(), model(seed=1)
    s = ab_session(a, b)
    s.set_text(TEXT)
    counters = PositionCounter(a), PositionCounter(b)
    edited = TEXT.replace("lazy", "sleepy")
    update = s.set_text(edited)
    suffix = len(s.tokens.ids) - update.col_start
    assert 0 < update.col_start and [c.calls for c in counters] == [[suffix], [suffix]]
    assert_equals_fresh(s, ab_session())


def test_the_ab_payload_stream_rebuilds_both_grids_and_the_diff() -> None:
    s = ab_session(model(num_hidden_layers=4), model(seed=1, num_hidden_layers=4), layer_stride=2)
    update = s.set_text("Hello")
    state = apply_update(None, payload_of(update))
    assert [g["name"] for g in payload_of(update)["header"]["grids"]] == list(s.names)
    assert payload_of(update)["header"]["diff"] == list(DIFF_STATISTICS)
    for change in [
        lambda: s.set_text("Hello world"),
        lambda: s.set_layer_stride(1),
        lambda: s.set_text("Hello there world"),
        lambda: s.set_lens(random_lens(s._track("b").adapter.model), "b"),
        lambda: s.set_layer_stride(4),
        lambda: s.set_text("Hello"),
        lambda: s.set_text(""),
        lambda: s.set_text("Again 🙂"),
    ]:
        state = apply_update(state, payload_of(change()))
        assert state.rows == s.rows and state.token_ids.tolist() == s.tokens.ids
        for grid, name in zip(state.grids, s.models, strict=True):
            stats, ids, _probs = s.grid_arrays(name)
            np.testing.assert_allclose(grid.stats, stats, rtol=1e-3, atol=1e-3)
            assert np.array_equal(grid.top_ids, ids)
        assert state.diff is not None
        np.testing.assert_allclose(state.diff, s.diff_arrays(), rtol=1e-3, atol=1e-3)


def test_models_of_different_depth_are_aligned_by_relative_depth_with_both_indices_in_each_label() -> None:
    deep, shallow = model(num_hidden_layers=4), model(seed=1, num_hidden_layers=2)
    s = ab_session(deep, shallow)
    update = s.set_text(TEXT)
    assert s.rows == [0, 1, 2, 3, 4] and s.layers("b") == [0, 1, 1, 2, 2] and s.layers("a") == s.rows
    labels = ["0 | 0", "1 | 1", "2 | 1", "3 | output", "output"]
    assert s.row_labels == labels and payload_of(update)["header"]["row_labels"] == labels
    alone = session(model(seed=1, num_hidden_layers=2))
    alone.set_text(TEXT)
    stats_b, stats_alone = s.grid_arrays("b")[0], alone.grid_arrays()[0]
    for row, layer in enumerate(s.layers("b")):
        np.testing.assert_allclose(stats_b[:, row], stats_alone[:, layer], rtol=1e-4, atol=1e-4)
    s.set_layer_stride(3)
    update = s.set_text(TEXT + " More")
    assert s.rows == [0, 3, 4] and payload_of(update)["header"]["row_labels"] == ["0 | 0", "3 | output", "output"]
    assert_equals_fresh(s, ab_session(model(num_hidden_layers=4), model(seed=1, num_hidden_layers=2), layer_stride=3))
    reverse = ab_session(shallow, deep)
    reverse.set_text(TEXT)
    assert reverse.layers("b") == [0, 2, 4] and reverse.row_labels == ["0 | 0", "1 | 2", "output"]


def test_models_of_the_same_depth_keep_the_plain_labels() -> None:
    s = ab_session()
    assert payload_of(s.set_text(TEXT))["header"]["row_labels"] == ["0", "1", "2", "output"]


def test_models_with_different_vocabularies_are_refused_naming_both_sizes() -> None:
    other = tiny_model("gpt_neox", vocab_size=VOCAB + 8, max_position_embeddings=512)
    message = rf"share a vocabulary: model A .* of {VOCAB} tokens, model B .* of {VOCAB + 8}"
    with pytest.raises(ValueError, match=message):
        ab_session(model(), other)


def test_a_tokenizer_that_does_not_fit_model_b_is_refused_naming_model_b() -> None:
    tok = tiny_tokenizer(VOCAB)
    tok.add_tokens(["<extra>"])
    wider = tiny_model("gpt_neox", vocab_size=VOCAB + 1, max_position_embeddings=512)
    narrower = tiny_model("gpt_neox", vocab_size=VOCAB + 1, max_position_embeddings=512, seed=1)
    with torch.no_grad():  # same unembedding size, one input embedding row fewer
        narrower.resize_token_embeddings(VOCAB)
        narrower.get_output_embeddings().weight = nn.Parameter(torch.randn(VOCAB + 1, 32))
    message = rf"tokenizer has {VOCAB + 1} tokens but model B's \(.*\) vocabulary has {VOCAB}"
    with pytest.raises(ValueError, match=message):
        LensSession(wider, tok, model_b=narrower)


def test_b_uses_a_lens_unless_given_its_own_and_set_lens_switches_one_model() -> None:
    a, b = model(), model(seed=1)
    lens_a = random_lens(a)
    s = ab_session(a, b, lens=lens_a)
    assert s.lens_of("a") is lens_a and s.lens_of("b") is lens_a and s.lens is lens_a
    s.set_text(TEXT)
    with pytest.warns(UserWarning, match="unembedding hash"):  # alone, B with A's lens is warned about
        tuned_b = session(model(seed=1), lens=lens_a)
    tuned_b.set_text(TEXT)
    assert_same_cells(session_cells(s, "b"), session_cells(tuned_b), session_cell_logits(tuned_b))
    stats_a = s.grid_arrays("a")[0].copy()
    diff_before = s.diff_arrays().copy()  # type: ignore[union-attr]
    counters = PositionCounter(a), PositionCounter(b)
    update = s.set_lens(None, "b")
    assert [c.calls for c in counters] == [[], []], "a lens switch runs no model"
    assert isinstance(s.lens_of("b"), LogitLens) and s.lens_of("a") is lens_a
    assert update.kind == "rows" and update.rows == tuple(range(s.num_layers))
    np.testing.assert_allclose(s.grid_arrays("a")[0], stats_a, rtol=1e-5, atol=1e-5)
    assert not np.allclose(s.diff_arrays(), diff_before), "the diff follows B's new lens"
    assert_equals_fresh(s, ab_session(model(), model(seed=1), lens=lens_a, lens_b=LogitLens()))
    with pytest.warns(UserWarning, match="unembedding hash"):  # a lens_b of another model's is warned about
        own = ab_session(model(), model(seed=1), lens_b=lens_a)
    assert isinstance(own.lens_of("a"), LogitLens) and own.lens_of("b") is lens_a


def test_a_tuned_lens_that_does_not_fit_model_b_is_refused_naming_model_b() -> None:
    a, deeper = model(), model(seed=1, num_hidden_layers=4)
    lens = TunedLens.from_model(a)
    with pytest.raises(LensMismatchError, match=r"model B \(.*\(B\)\): lens num_hidden_layers = 3 .* = 4"):
        ab_session(a, deeper, lens=lens)
    s = ab_session(a, deeper, lens=lens, lens_b=TunedLens.from_model(deeper))
    s.set_text(TEXT)
    with pytest.raises(LensMismatchError, match=r"model B"):
        s.set_lens(lens, "b")
    assert s.set_text(TEXT + "!").kind == "columns", "the refusal left the session as it was"


def test_a_shared_tuned_lens_is_copied_for_a_model_of_another_dtype_not_moved_away_from_a() -> None:
    a, b16 = model(), model(seed=1, dtype=torch.float16)
    lens = TunedLens.from_model(a)
    s = ab_session(a, b16, lens=lens)
    assert s.lens_of("a") is lens and next(lens.parameters()).dtype == torch.float32
    lens_b = s.lens_of("b")
    assert isinstance(lens_b, TunedLens) and next(lens_b.parameters()).dtype == torch.float16
    s.set_text(TEXT)
    assert np.isfinite(s.diff_arrays()[:, :, :-1]).all()  # type: ignore[index]


def test_names_label_the_models_and_are_distinct() -> None:
    a, b = model(), model(seed=1)
    assert ab_session(a, b).names == ("GPTNeoXForCausalLM", "GPTNeoXForCausalLM (B)")
    assert ab_session(a, b, names=("base", "tuned")).names == ("base", "tuned")
    assert ab_session(a, b, names=["x", "x"]).names == ("x", "x (B)")
    a.config.name_or_path, b.config.name_or_path = "org/base", "org/tuned"
    assert ab_session(a, b).names == ("org/base", "org/tuned")
    assert LensSession(a, TOKENIZER, name="mine").names == ("mine",)
    for bad in ["ab", ("only one",), ("a", ""), ("a", 2)]:
        with pytest.raises(ValueError, match="names must be 2 non-empty strings"):
            ab_session(a, b, names=bad)
    with pytest.raises(ValueError, match="not both"):
        ab_session(a, b, name="x", names=("y", "z"))


def test_a_nan_row_of_model_b_is_named_with_the_model() -> None:
    s = ab_session(lens_b=NaNLens(1))
    notice = payload_of(s.set_text(TEXT))["header"]["notice"]
    assert "row 1 of model B (GPTNeoXForCausalLM (B)):" in notice and "model A" not in notice
    diff = s.diff_arrays()
    assert diff is not None and np.isnan(diff[:, 1]).all() and np.isfinite(diff[:, [0, 2, 3]]).all()


def test_model_names_and_arguments_are_checked() -> None:
    s = session()
    with pytest.raises(ValueError, match=r"model must be one of \('a',\), got 'b'"):
        s.grid_arrays("b")
    assert s.diff_arrays() is None and payload_of(s.full_update())["diff"] == b""
    with pytest.raises(ValueError, match="lens_b is model B's lens: pass model_b too"):
        LensSession(model(), TOKENIZER, lens_b=LogitLens())
    with pytest.raises(TypeError, match=r"model_b must be a transformers causal LM"):
        LensSession(model(), TOKENIZER, model_b="gpt2")  # type: ignore[arg-type]


def test_the_shorter_context_of_the_two_models_bounds_max_tokens() -> None:
    short = model(seed=1, max_position_embeddings=64)
    assert ab_session(model(), short).max_tokens == 64
    with pytest.raises(ValueError, match="max_tokens = 100 exceeds the model's context of 64 tokens"):
        ab_session(model(), short, max_tokens=100)


def test_an_exception_in_model_b_rolls_both_models_back() -> None:
    b = model(seed=1)
    s = ab_session(model(), b)
    s.set_text(TEXT)
    fail_once(b)
    with pytest.raises(RuntimeError, match="injected failure"):
        s.set_text(TEXT + " More words")
    assert s.set_text(TEXT + " More words").kind == "full"
    assert_equals_fresh(s, ab_session())


# --- the columns on screen first (pending columns) ---------------------------------------------------

VISIBLE = st.tuples(st.integers(0, 40), st.integers(0, 12)).map(lambda t: (t[0], t[0] + t[1]))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    start=st.lists(ALPHABET, max_size=12).map("".join),
    steps=st.lists(st.tuples(EDIT, VISIBLE, st.integers(0, 3), st.integers(1, 5)), max_size=6),
    b=st.sampled_from([None, "same depth"]),
)
def test_typing_with_the_visible_columns_first_equals_a_fresh_session_and_the_view_rebuilds_it(
    start: str, steps: list, b: str | None
) -> None:
    """Each edit computes only the changed columns on screen; some pending chunks run between edits, the
    rest at the end. The payloads rebuild the session's state at every step (pending flags included), and
    the finished grid is a fresh session's."""
    model_b, fresh_b = F64_B[b] if b else (None, None)
    s = LensSession(F64, TOKENIZER, model_b=model_b, layer_stride=2)
    text = start
    state = apply_update(None, payload_of(s.set_text(text)))
    for edit, visible, chunks, size in steps:
        text = apply_edit(text, edit)
        update = s.set_text(text, visible=visible)
        first, end = update.cell_start, update.cell_end
        assert update.col_start <= first <= end <= update.n_tokens
        assert end - first <= visible[1] - visible[0]
        state = apply_update(state, payload_of(update))
        for _ in range(chunks):
            cells = s.compute_pending(visible, max_columns=size)
            if cells is None:
                break
            assert cells.kind == "cells" and cells.cell_end - cells.cell_start <= size
            state = apply_update(state, payload_of(cells))
        flags = np.zeros(state.n_tokens, bool) if state.pending is None else state.pending
        assert s.pending == [tuple(r) for r in _runs_of(flags)]
    for cells in s.finish():
        state = apply_update(state, payload_of(cells))
    assert s.pending == [] and state.pending is None
    fresh = LensSession(F64_FRESH, TOKENIZER, model_b=fresh_b, layer_stride=2)
    fresh.set_text(text)
    assert_same_grid(s, fresh, tol=1e-3)
    stats, ids, _ = s.grid_arrays()
    np.testing.assert_allclose(state.grids[0].stats, stats, rtol=1e-3, atol=1e-3)
    assert np.array_equal(state.grids[0].top_ids, ids)
    if b:
        np.testing.assert_allclose(state.diff, s.diff_arrays(), rtol=1e-3, atol=1e-3)


def _runs_of(flags: np.ndarray) -> list[tuple[int, int]]:
    runs, start = [], None
    for i, flag in enumerate([*flags.tolist(), False]):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            runs.append((start, i))
            start = None
    return runs


def test_an_edit_computes_only_the_changed_columns_on_screen_and_the_rest_visible_first() -> None:
    s = session(model(num_hidden_layers=4))
    s.set_text(TEXT)
    edited = TEXT.replace("quick", "slow")
    update = s.set_text(edited, visible=(5, 9))
    keep = update.col_start
    assert keep <= 5 and (update.cell_start, update.cell_end) == (5, 9)
    n = len(s.tokens.ids)
    assert s.pending == ([(keep, 5), (9, n)] if keep < 5 else [(9, n)])
    assert len(payload_of(update)["grids"][0]["stats"]) == 2 * len(STATISTICS) * len(s.rows) * 4  # float16, 4 columns
    nxt = s.compute_pending(visible=(5, 9), max_columns=3)  # nothing on screen is pending: after it next
    assert nxt is not None and (nxt.cell_start, nxt.cell_end) == (9, 12)
    nxt = s.compute_pending(visible=(20, 30), max_columns=100)  # scrolled: the screen's columns first
    assert nxt is not None and nxt.cell_start == 20


def test_a_stride_or_lens_change_with_columns_pending_completes_them_and_sends_a_full_update() -> None:
    s = session(model(num_hidden_layers=4), layer_stride=2)
    s.set_text(TEXT)
    s.set_text(TEXT + " Berlin is", visible=(0, 3))
    assert s.pending
    update = s.set_layer_stride(1)
    assert update.kind == "full" and s.pending == [] and update.cell_end == len(s.tokens.ids)
    s.set_text(TEXT + " Berlin is big", visible=(0, 3))
    assert s.set_lens(None).kind == "full" and s.pending == []
    s.set_text(TEXT, visible=(0, 3))  # shorter: the dropped columns' pending work goes with them
    assert s.pending == []


def test_text_set_without_a_visible_range_leaves_nothing_pending() -> None:
    s = session(model(num_hidden_layers=4))
    s.set_text("Hello there, this is a test")
    s.set_text("Hello there, this is a test of it", visible=(0, 1))
    assert s.pending
    update = s.set_text("Hello there, this is a test of it all")
    assert s.pending == [] and update.kind == "full"


@pytest.mark.parametrize("bad", [(3, 1), (-1, 2), ("a", 2), (1,), (1, 2, 3)])
def test_a_bad_visible_range_is_a_clear_error(bad: object) -> None:
    s = session(model(num_hidden_layers=2))
    with pytest.raises(ValueError, match="visible must be"):
        s.set_text("Hello", visible=bad)  # type: ignore[arg-type]
    assert s.set_text("Hello").n_tokens > 0


def test_pending_placeholders_are_not_reported_as_non_finite_cells() -> None:
    s = session(model(num_hidden_layers=2))
    s.set_text(TEXT)
    update = s.set_text(TEXT + " and more", visible=(0, 0))
    assert s.pending and "Non-finite" not in payload_of(update)["header"]["notice"]


def test_small_updates_run_on_one_thread_and_the_thread_count_is_restored(monkeypatch: pytest.MonkeyPatch) -> None:
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        m = model(num_hidden_layers=2)
        seen: list[int] = []
        m.get_input_embeddings().register_forward_hook(lambda mod, args, out: seen.append(torch.get_num_threads()))
        s = session(m)
        s.set_text("Hello there")  # tiny: one thread
        assert seen[-1] == 1 and torch.get_num_threads() == 2
        monkeypatch.setattr("lens_widget.session.SMALL_WORK_MACS", 0)  # everything counts as large
        s.set_text("Hello there you")
        assert seen[-1] == 2 and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_an_update_encoded_late_still_describes_the_state_it_was_made_in() -> None:
    s = session(model(num_hidden_layers=2), layer_stride=2)
    first = s.set_text("Paris is the")
    fresh = session(s._tracks[0].adapter.model, layer_stride=2)
    expected = apply_update(None, payload_of(fresh.set_text("Paris is the")))
    s.set_text("Paris is the capital of France")
    s.set_layer_stride(1)  # later changes replace the arrays the first update refers to
    late = apply_update(None, payload_of(first))
    assert late.n_tokens == expected.n_tokens and late.rows == expected.rows
    np.testing.assert_allclose(late.grids[0].stats, expected.grids[0].stats, rtol=1e-3, atol=1e-3)
    assert "payload" not in vars(first), "the engine's update carries no wire format"


HALF_TOLERANCE = {torch.float16: 0.01, torch.bfloat16: 0.05}
"""The README's stated agreement of a half-precision session with float32, relative to |value| + 1,
for entropy, cross-entropy, forward KL and max probability (bfloat16 keeps 8 significant bits,
float16 11: measured on the demo model, 0.0028 and 0.025 at most)."""


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_a_half_precision_session_agrees_with_float32_within_the_stated_tolerance(dtype: torch.dtype) -> None:
    import copy

    from lens_widget import load_demo

    m, tokenizer, lens = load_demo("final")
    text = "Copy: A!2j!#u&NGApS&Mk\nPaste: A!2j!#u&NGApS&Mk\nadd 13 2 15\nThe built-in function len() returns"
    reference = LensSession(m, tokenizer, copy.deepcopy(lens))
    half = LensSession(copy.deepcopy(m).to(dtype), tokenizer, copy.deepcopy(lens))
    for t in (text[:40], text[:70], text.replace("add 13", "inc 14"), text):  # appends and a middle edit
        reference.set_text(t)
        half.set_text(t)
        assert_near_float32(half, reference, HALF_TOLERANCE[dtype])
    fresh = LensSession(copy.deepcopy(m).to(dtype), tokenizer, copy.deepcopy(lens))
    fresh.set_text(half.text)
    assert_same_grid(half, fresh, tol=HALF_TOLERANCE[dtype] / 10)  # incremental == fresh in half precision too


# --- rows after attention ("ℓ.attn", sub-layer rows) -----------------------------------------------


def _attention_by_hand(family: str, m64: nn.Module, h: torch.Tensor, index: int) -> torch.Tensor:
    """Block `index`'s attention output for its input `h` [1, T, d], from its submodules called directly
    with a causal mask: no hooks, no knowledge of blocks.py."""
    T = h.shape[1]
    mask = torch.full((T, T), float("-inf"), dtype=h.dtype).triu(1)[None, None]
    positions = torch.arange(T)[None]
    if family == "gpt2":
        block = m64.transformer.h[index]
        return block.attn(block.ln_1(h), attention_mask=mask)[0]
    if family == "llama":
        block = m64.model.layers[index]
        rotary = m64.model.rotary_emb(h, positions)
        return block.self_attn(block.input_layernorm(h), attention_mask=mask, position_embeddings=rotary)[0]
    assert family == "gpt_neox"  # parallel: attention and MLP both read the block's input
    block = m64.gpt_neox.layers[index]
    rotary = m64.gpt_neox.rotary_emb(h, positions)
    return block.attention(block.input_layernorm(h), attention_mask=mask, position_embeddings=rotary)[0]


@pytest.mark.parametrize("family", ["gpt2", "llama", "gpt_neox"])
def test_rows_after_attention_are_the_input_plus_the_attention_output_decoded_by_the_lens(family: str) -> None:
    """ℓ.attn = hidden_states[ℓ-1] + block ℓ-1's attention output, computed by hand in float64, read
    through layer ℓ's translator (none for L.attn): the session's cells agree, ties aside."""
    import copy

    m = model(family)
    lens = random_lens(m)
    s = session(m, lens=lens, sublayers=True)
    s.set_text(TEXT)
    L = s.num_layers
    assert s.rows == [0, L + 1, 1, L + 2, 2, L + 3, 3] and s.row_labels[1] == "1.attn"
    m64, lens64 = copy.deepcopy(m).double(), copy.deepcopy(lens).double()
    adapter64 = ModelAdapter(m64)
    ids = torch.tensor([s.tokens.ids])
    with torch.no_grad():
        hidden = m64(ids, output_hidden_states=True).hidden_states
        stats, top_ids, _ = s.grid_arrays()
        entropy = STATISTICS.index("entropy")
        for ell in range(1, L + 1):
            h = hidden[ell - 1]
            mid = h + _attention_by_hand(family, m64, h, ell - 1)
            read = mid[0] + lens64.layer_translators[ell](mid[0]) if ell < L else mid[0]
            logp = torch.log_softmax(adapter64.unembed(read), dim=-1)
            row = s.rows.index(L + ell)
            reference = -(logp.exp() * logp).sum(-1).numpy()
            np.testing.assert_allclose(stats[entropy, row], reference, rtol=1e-3, atol=1e-4)
            top2 = logp.exp().topk(2, dim=-1).values
            clear = (top2[:, 0] - top2[:, 1] > 1e-3).numpy()  # ties may come out in either order
            assert clear.sum() > len(clear) // 2
            np.testing.assert_array_equal(top_ids[row, clear, 0], logp.argmax(-1).numpy()[clear])


def test_rows_after_attention_incremental_equal_a_fresh_session() -> None:
    """Appends, middle edits, deletions, a stride change and a lens switch keep the sub-layer states
    and cells as a fresh session computes them."""
    m = model(num_hidden_layers=4)
    tuned = random_lens(m)
    s = session(m, lens=tuned, sublayers=True)
    s.set_text("The quick brown fox")
    for change in [
        lambda: s.set_text("The quick brown fox jumps"),
        lambda: s.set_text("The slow brown fox jumps"),
        lambda: s.set_text("The slow fox"),
        lambda: s.set_layer_stride(3),
        lambda: s.set_text("The slow fox and the dog"),
        lambda: s.set_lens(None),
        lambda: s.set_text("The slow fox and a cat"),
        lambda: s.set_layer_stride(1),
    ]:
        change()
        fresh = session(m, lens=s.lens, layer_stride=s.layer_stride, sublayers=True)
        fresh.set_text(s.text)
        assert s.display_rows == fresh.display_rows
        for r in fresh.rows:
            assert r in s.rows
        keep = [s.rows.index(r) for r in fresh.rows]
        ours = [a[keep] if a.ndim == 3 and a.shape[0] == len(s.rows) else a[:, keep] for a in s.grid_arrays()]
        np.testing.assert_allclose(ours[0], fresh.grid_arrays()[0], rtol=1e-4, atol=1e-4)
        assert torch.equal(s._tracks[0].hidden, fresh._tracks[0].hidden) or torch.allclose(
            s._tracks[0].hidden, fresh._tracks[0].hidden, atol=1e-5
        )


def test_turning_rows_after_attention_on_recomputes_and_off_frees_them() -> None:
    m = model(num_hidden_layers=4)
    s = session(m)
    s.set_text(TEXT)
    plain = s.memory()["hidden_states"]
    update = s.set_sublayers(True)
    assert update.kind == "rows" and set(update.rows) == {5, 6, 7, 8}
    assert s.memory()["hidden_states"] == plain * 9 // 5
    assert_equals_fresh(s, session(m, sublayers=True))
    s.set_text(TEXT + " More")
    assert_equals_fresh(s, session(m, sublayers=True))
    update = s.set_sublayers(False)
    assert update.kind == "full" and s.rows == [0, 1, 2, 3, 4] and list(update.rows) == s.rows
    plain_now = session(m)
    plain_now.set_text(s.text)
    assert s.memory()["hidden_states"] == plain_now.memory()["hidden_states"]
    assert_equals_fresh(s, session(m))
    with pytest.raises(TypeError, match="sublayers"):
        s.set_sublayers("yes")  # type: ignore[arg-type]


def test_rows_after_attention_pair_by_relative_depth_in_ab() -> None:
    """B's ℓ.attn row pairs with A's as its layer rows do (grid.aligned_layers on ℓ); edits stay equal
    to a fresh A/B session, and the payload stream rebuilds the state."""
    a, b = model(num_hidden_layers=4), model(num_hidden_layers=2, seed=1)
    s = session(a, model_b=b, sublayers=True)
    state = apply_update(None, payload_of(s.set_text("Hello there")))
    assert s.layers("b") == [0, 3, 1, 3, 1, 4, 2, 4, 2]  # rows 0, 1.attn, 1, …, 4.attn, output
    assert s.row_labels[1] == "1.attn | 1.attn" and s.row_labels[-2] == "4.attn | 2.attn"
    for change in [
        lambda: s.set_text("Hello there world"),
        lambda: s.set_text("Hi there world"),
        lambda: s.set_sublayers(False),
        lambda: s.set_sublayers(True),
        lambda: s.set_layer_stride(2),
        lambda: s.set_text("Hi there, world"),
    ]:
        state = apply_update(state, payload_of(change()))
        assert state.rows == s.rows
        for g, key in enumerate(s.models):
            np.testing.assert_allclose(state.grids[g].stats, s.grid_arrays(key)[0], rtol=1e-3, atol=1e-3)
            assert np.array_equal(state.grids[g].top_ids, s.grid_arrays(key)[1])
    assert_equals_fresh(s, session(a, model_b=b, layer_stride=2, sublayers=True))
