"""Pinned items: their token sets, and their log-probability in every cell against a float64
reference computed from the model's own hidden states, the lens and the head (test_grid.py's)."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from test_grid import random_tuned_lens, reference_grid
from tiny_models import tiny_model, tiny_tokenizer

from lens_widget import LensSession
from lens_widget.payload import apply_update, payload_of
from lens_widget.pins import MAX_PINS, Pin, PinError, make_pin, word_token_ids

TEXT = "The dog sat on the mat. Le chien dort."
VOCAB = 400


def session(family: str = "gpt2", lens: str = "logit", **options: object) -> tuple[LensSession, torch.nn.Module]:
    model = tiny_model(family, vocab_size=VOCAB)
    tokenizer = tiny_tokenizer(VOCAB)
    tuned = random_tuned_lens(model) if lens == "tuned" else None
    return LensSession(model, tokenizer, tuned, top_k=5, **options), model  # type: ignore[arg-type]


def raw_tokens(s: LensSession) -> list[str]:
    return [str(t) for t in s.tokenizer.convert_ids_to_tokens(list(range(len(s.token_strings()))))]


def reference_pins(family: str, model: torch.nn.Module, lens: object, ids: list[int], pins: list[Pin]) -> np.ndarray:
    """float64 [P, L + 1, T]: each item's probability, summed over its tokens, in every cell."""
    p = reference_grid(family, model, lens, torch.tensor(ids))["p"]  # type: ignore[arg-type]
    return np.stack([p[..., list(pin.ids)].sum(-1).numpy() for pin in pins])


def assert_pins_match(s: LensSession, family: str, model: torch.nn.Module, lens: object, key: str = "a") -> None:
    pins = s._track(key).cells.pins
    assert pins is not None and pins.shape == (len(s.pins), len(s.rows), len(s.tokens.ids))
    want = reference_pins(family, model, lens, s.tokens.ids, list(s.pins))[:, s.layers(key)]
    np.testing.assert_allclose(np.exp(pins), want, rtol=2e-4, atol=2e-6)


def test_a_word_is_every_token_that_begins_it_with_and_without_its_space() -> None:
    s, _ = session()
    strings = s.token_strings()
    ids = word_token_ids("dog", strings, raw_tokens(s), s.tokenizer)
    texts = {strings[i] for i in ids}
    assert all(t.strip() and "dog".startswith(t.removeprefix(" ")) for t in texts), texts
    assert {t.removeprefix(" ") for t in texts} >= {"d"} and any(t.startswith(" ") for t in texts)
    for word in ("dog", " dog"):
        first = s.tokenizer.encode(word)[0]
        assert first in ids, f"the first token of {word!r} ({strings[first]!r}) starts the word"


def test_a_sentencepiece_vocabulary_is_read_through_its_space_marker() -> None:
    """SentencePiece decodes a lone "▁dog" to "dog": the marker in the vocabulary entry says it had a space."""
    strings = ["d", "dog", "og", "x", "do", "dogs"]
    raw = ["d", "▁dog", "og", "x", "▁do", "▁dogs"]
    assert word_token_ids("dog", strings, raw, tokenizer=None) == [0, 1, 4]


def test_a_word_starting_with_a_multibyte_character_takes_its_first_byte_token() -> None:
    s, _ = session()
    ids = word_token_ids("狗狗", s.token_strings(), raw_tokens(s), s.tokenizer)
    assert s.tokenizer.encode("狗狗")[0] in ids


def test_bad_pins_are_refused_with_a_reason() -> None:
    s, _ = session()
    cases: list[tuple[tuple[object, ...], str]] = [
        ((), "at least one"),
        (("   ",), "other than spaces"),
        ((10**6,), "not in the vocabulary"),
        ((1.5,), "words"),
    ]
    for items, match in cases:
        with pytest.raises(PinError, match=match):
            s.make_pin(*items)  # type: ignore[arg-type]
    with pytest.raises(PinError, match="distinct"):
        s.set_pins([Pin("x", (1,)), Pin("x", (2,))])
    with pytest.raises(PinError, match=f"at most {MAX_PINS}"):
        s.set_pins([Pin(str(i), (i,)) for i in range(MAX_PINS + 1)])
    s.set_text(TEXT)
    before = s.grid_arrays()[0].copy()
    with pytest.raises(PinError, match="beyond the vocabulary"):
        s.set_pins([Pin("far", (10**6,))])
    np.testing.assert_array_equal(s.grid_arrays()[0], before)  # a refused pin leaves the picture as it was
    assert make_pin(["dog", 5], None, s.token_strings(), raw_tokens(s), s.tokenizer).label == "dog"


@pytest.mark.parametrize("lens", ["logit", "tuned"])
@pytest.mark.parametrize("family", ["gpt2", "llama", "gemma2"])
def test_pinned_probabilities_match_float64_in_every_cell(family: str, lens: str) -> None:
    s, model = session(family, lens)
    tuned = s.lens if lens == "tuned" else None
    the = s.tokenizer.encode(" the")[0]
    s.set_pins([s.make_pin("dog"), s.make_pin(the), s.make_pin("chien", "dog", label="both")])
    s.set_text(TEXT)  # pinned before the text: computed with the cells, chunk by chunk
    assert_pins_match(s, family, model, tuned)
    late = LensSession(model, s.tokenizer, tuned, top_k=5)  # type: ignore[arg-type]
    late.set_text(TEXT)
    late.set_pins(list(s.pins))  # pinned after: its tokens' columns of the head on the kept states
    np.testing.assert_allclose(late._tracks[0].cells.pins, s._tracks[0].cells.pins, rtol=1e-4, atol=1e-5)


def test_pins_follow_random_edits_a_stride_change_a_lens_switch_and_pending_columns() -> None:
    s, model = session("llama", layer_stride=2)
    s.set_text(TEXT)
    s.set_pins([s.make_pin("dog"), s.make_pin("mat", label="m")])
    rng = random.Random(4)
    text = TEXT
    for step in range(8):
        at = rng.randrange(len(text) + 1)
        text = text[:at] + rng.choice(["dog ", "", "x", " le chien"]) + text[at + rng.randrange(3) :]
        s.set_text(text, visible=(0, 4) if step % 2 else None)
        if step == 3:
            s.set_layer_stride(1)
        if step == 5:
            s.set_pins([s.pins[1], s.make_pin("sat"), s.pins[0]])  # reordered, one new
    s.finish()
    assert_pins_match(s, "llama", model, None)
    s.set_lens(random_tuned_lens(model))
    assert_pins_match(s, "llama", model, s.lens)
    s.set_pins([])
    assert s._tracks[0].cells.pins is not None and s._tracks[0].cells.pins.shape[0] == 0


def test_ab_pins_are_each_models_own() -> None:
    a, b = tiny_model("gpt2", vocab_size=VOCAB, seed=0), tiny_model("gpt2", vocab_size=VOCAB, seed=1)
    s = LensSession(a, tiny_tokenizer(VOCAB), model_b=b, top_k=5)
    s.set_text(TEXT)
    s.set_pins([s.make_pin("dog")])
    s.set_text(TEXT + " The dog")
    assert_pins_match(s, "gpt2", a, None, "a")
    assert_pins_match(s, "gpt2", b, None, "b")


def test_the_snapshot_carries_the_pins_as_the_session_holds_them() -> None:
    s, model = session("gpt2")
    s.set_pins([s.make_pin("dog"), s.make_pin("the")])
    state = apply_update(None, payload_of(s.set_text(TEXT)))
    state = apply_update(state, payload_of(s.set_text(TEXT + " dog")))
    assert state.header["pins"] == ["dog", "the"]
    assert state.grids[0].pins is not None
    want = reference_pins("gpt2", model, None, s.tokens.ids, list(s.pins))[:, s.rows]
    np.testing.assert_allclose(np.exp(state.grids[0].pins), want, rtol=2e-4, atol=2e-6)


def test_the_widget_pins_and_unpins_and_keeps_the_pins_trait_and_statistic_in_step() -> None:
    from lens_widget import LensWidget

    model = tiny_model("gpt2", vocab_size=VOCAB)
    w = LensWidget(model, tiny_tokenizer(VOCAB), text=TEXT)
    label = w.pin("dog")
    assert label == "dog" and [p["label"] for p in w.pins] == ["dog"] and w.pins[0]["tokens"]
    w.statistic = "pin:dog"
    assert w.snapshot["header"]["pins"] == ["dog"]
    with pytest.raises(Exception, match="diff_statistic must be one of"):
        w.diff_statistic = "pin:dog"  # the diff mode shows B − A of an item: "delta:pin:dog"
    with pytest.raises(PinError, match="distinct"):
        w.pin("dog")
    assert [p["label"] for p in w.pins] == ["dog"], "a refused pin changes nothing"
    w.pins = [*w.pins, {"label": "the", "ids": [w.session.tokenizer.encode(" the")[0]]}]  # set directly
    assert [p.label for p in w.session.pins] == ["dog", "the"] and not w.error
    w.pins = [{"label": "bad", "ids": []}]
    assert "Could not pin" in w.error and [p.label for p in w.session.pins] == ["dog", "the"]
    assert [p["label"] for p in w.pins] == ["dog", "the"], "the trait is put back"
    w.unpin("dog")
    assert w.statistic == "entropy", "the unpinned item's statistic falls back"
    with pytest.raises(ValueError, match="not pinned"):
        w.unpin("cat")
    w.unpin()
    assert w.pins == [] and w.snapshot["header"]["pins"] == []
    with pytest.raises(Exception, match="statistic must be one of"):
        w.statistic = "pin:dog"
