"""tuned-lens's `plot_lens` and `compare_models`, called as the seed notebook calls them, return live
widgets whose payloads decode (where tuned-lens's own compare_models crashed)."""

from __future__ import annotations

from typing import Any

import comm
import numpy as np
import pytest
import torch
from tiny_models import tiny_model, tiny_tokenizer

from lens_widget import LensMismatchError, LogitLens, TunedLens
from lens_widget.compat import compare_models, plot_lens
from lens_widget.payload import apply_update

VOCAB = 400
tokenizer = tiny_tokenizer(VOCAB)


class SilentComm(comm.base_comm.BaseComm):
    def publish_msg(self, msg_type: str, data: Any = None, metadata: Any = None, buffers: Any = None, **_: Any) -> None:
        pass


@pytest.fixture(autouse=True)
def no_frontend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(comm, "create_comm", lambda **kwargs: SilentComm(**kwargs))


def models() -> tuple[Any, Any]:
    a = tiny_model("gpt_neox", vocab_size=VOCAB, max_position_embeddings=256, seed=0)
    b = tiny_model("gpt_neox", vocab_size=VOCAB, max_position_embeddings=256, seed=1)
    return a, b


def test_the_seed_calls_verbatim_return_widgets_whose_payloads_decode_with_real_divergences() -> None:
    model_a, model_b = models()
    model = model_a
    lens = TunedLens.from_model(model)
    input_ids = tokenizer("The capital of France is Paris", return_tensors="pt").input_ids

    single = plot_lens(
        model, tokenizer, lens, layer_stride=1, input_ids=input_ids, start_pos=0, end_pos=5, statistic="entropy"
    )
    ab = compare_models(
        model_a=model_a,
        model_b=model_b,
        tokenizer=tokenizer,
        lens=lens,
        layer_stride=1,
        input_ids=input_ids,
        start_pos=0,
        end_pos=5,
        divergence="kl",
    )

    state = apply_update(None, single.snapshot)
    assert state.n_tokens == input_ids.shape[1] and single.token_range == [0, 5] and single.statistic == "entropy"
    ab_state = apply_update(None, ab.snapshot)
    assert len(ab_state.grids) == 2 and ab_state.diff is not None
    assert ab.mode == "diff" and ab.diff_statistic == "kl_ab"
    kl = ab_state.diff[ab_state.header["diff"].index("kl_ab")]
    assert np.nanmax(kl) > 1e-3, "two different models really differ"
    assert ab.error == "" and single.error == ""


@pytest.mark.parametrize("input_ids", ["tensor_1xT", "tensor_T", "list", "nested_list", "numpy_1xT", "numpy_T"])
def test_input_ids_may_be_a_tensor_of_either_shape_or_a_list(input_ids: str) -> None:
    ids = tokenizer("Paris is the capital").input_ids
    given = {
        "tensor_1xT": torch.tensor([ids]),
        "tensor_T": torch.tensor(ids),
        "list": ids,
        "nested_list": [ids],
        "numpy_1xT": np.array([ids]),
        "numpy_T": np.array(ids),
    }[input_ids]
    widget = plot_lens(models()[0], tokenizer, None, input_ids=given)
    assert widget.session.tokens.ids == ids


def test_lens_may_be_a_logit_lens_or_none_and_statistics_take_tuned_lens_names() -> None:
    model = models()[0]
    assert plot_lens(model, tokenizer, LogitLens(), input_ids=[5, 6, 7], statistic="kl").statistic == "forward_kl"
    assert plot_lens(model, tokenizer, None, input_ids=[5, 6, 7], statistic="max_probability").lens == "logit"


@pytest.mark.parametrize(("divergence", "shown"), [("kl", "kl_ab"), ("kl_reverse", "kl_ba"), ("js", "js")])
def test_divergence_names(divergence: str, shown: str) -> None:
    a, b = models()
    widget = compare_models(model_a=a, model_b=b, tokenizer=tokenizer, input_ids=[5, 6, 7], divergence=divergence)
    assert widget.diff_statistic == shown


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda m: plot_lens(m, tokenizer, None, input_ids=[5, 6], statistic="perplexity"), "statistic must be one of"),
        (lambda m: compare_models(model_a=m, model_b=m, tokenizer=tokenizer, divergence="tv"), "divergence must be"),
        (lambda m: plot_lens(m, tokenizer, None, input_ids=[5, 6], start_pos=3, end_pos=2), "end_pos"),
        (lambda m: plot_lens(m, tokenizer, None, input_ids=torch.zeros(2, 3, dtype=torch.long)), r"\[T\] or \[1, T\]"),
    ],
)
def test_bad_arguments_are_clear_errors(call: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call(models()[0])


@pytest.mark.parametrize(
    ("given", "named"),
    [
        (torch.tensor([[5.0, 6.7, 7.0]]), r"5\.0 at position 0, 6\.7 at position 1, 7\.0 at position 2"),  # 6.7 was 6
        ([5, 6.5, 7], r"6\.5 at position 1"),
        (np.array([5.0, 6.0]), r"5\.0 at position 0, 6\.0 at position 1"),  # floats, even whole ones
        (torch.tensor([True, False]), r"True at position 0, False at position 1"),  # bools are not ids
        ([5, -1, 7], r"-1 at position 1"),  # was an OverflowError
        (torch.tensor([5, len(tokenizer), 10**6]), rf"{len(tokenizer)} at position 1, 1000000 at position 2"),
    ],
)
@pytest.mark.parametrize("drop_in", ["plot_lens", "compare_models"])
def test_ids_that_are_not_token_ids_are_refused_naming_them(given: Any, named: str, drop_in: str) -> None:
    """Floats were truncated, bools read as 0/1, ids past the vocabulary dropped with only a warning."""
    a, b = models()
    call = {
        "plot_lens": lambda: plot_lens(a, tokenizer, None, input_ids=given),
        "compare_models": lambda: compare_models(a, b, tokenizer, input_ids=given),
    }[drop_in]
    limit = len(tokenizer) - 1
    with pytest.raises(ValueError, match=rf"input_ids must be integer token ids 0\.\.{limit}; got {named}"):
        call()


def test_a_shared_lens_that_does_not_fit_b_says_how_to_give_b_its_own() -> None:
    a = tiny_model("gpt_neox", vocab_size=VOCAB, max_position_embeddings=256, seed=0)
    shallow = tiny_model("gpt_neox", vocab_size=VOCAB, max_position_embeddings=256, seed=1, num_hidden_layers=2)
    with pytest.raises(LensMismatchError, match=r"model B .*lens_b="):
        compare_models(model_a=a, model_b=shallow, tokenizer=tokenizer, lens=TunedLens.from_model(a), input_ids=[5, 6])
    widget = compare_models(
        model_a=a, model_b=shallow, tokenizer=tokenizer, lens=TunedLens.from_model(a), lens_b=LogitLens(), input_ids=[5]
    )
    assert widget.session.lens_of("b").name == "logit"
    assert compare_models(model_a=a, model_b=shallow, tokenizer=tokenizer, input_ids=[5], mode="b").mode == "b"


def test_ids_that_do_not_round_trip_warn_and_show_the_retokenized_text() -> None:
    ids = tokenizer("Paris").input_ids
    split = [tokenizer.convert_tokens_to_ids(c) for c in "Paris"]  # the same text, as single characters
    assert split != ids
    with pytest.warns(UserWarning, match="tokenizes to other ids"):
        widget = plot_lens(models()[0], tokenizer, None, input_ids=split)
    assert widget.session.tokens.ids == ids
