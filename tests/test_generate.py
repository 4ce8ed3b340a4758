"""Generation: the model's own greedy choice token for token, each step's grid that of a fresh session
of the same tokens, and a widget that stays consistent when stopped, typed over, or failing."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest
import torch
from test_widget import answers, edit, message, recording_comm, visible  # noqa: F401
from tiny_models import tiny_model, tiny_tokenizer

from lens_widget import LensSession, LensWidget
from lens_widget.generate import Sampling, piece

VOCAB = 400
TOKENIZER = tiny_tokenizer(VOCAB)
PROMPT = "Paris is the capital of France. The quick brown"


def model(family: str, seed: int = 0, **config: Any) -> Any:
    return tiny_model(family, vocab_size=VOCAB, seed=seed, max_position_embeddings=256, n_positions=256, **config)


def reference(m: Any, ids: list[int], new: int, **settings: Any) -> list[int]:
    out = m.generate(
        torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long), max_new_tokens=new, **settings
    )
    return out[0, len(ids) :].tolist()


def fresh_grid(session: LensSession) -> LensSession:
    """A new session over the same token ids (not re-tokenized text), computed in one go."""
    fresh = LensSession(session._track("a").adapter.model, session.tokenizer, session.lens)
    fresh.append_tokens(session.tokens.ids, session.text)
    return fresh


def assert_same_grid(a: LensSession, b: LensSession) -> None:
    sa, ia, pa = a.grid_arrays()
    sb, ib, pb = b.grid_arrays()
    np.testing.assert_allclose(sa, sb, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(pa, pb, rtol=1e-4, atol=1e-5)
    assert (ia[:, :, 0] == ib[:, :, 0]).mean() > 0.99  # top-1, tolerant of exact ties


@pytest.mark.parametrize("family", ["gpt2", "llama", "gpt_neox"])
def test_greedy_generation_is_model_generate_token_for_token(family: str) -> None:
    m = model(family, seed=3)
    w = LensWidget(m, TOKENIZER, text=PROMPT)
    ids = list(w.session.tokens.ids)
    w.generate(max_new_tokens=20)
    written = w.session.tokens.ids[len(ids) :]
    expected = reference(m, ids, 20, do_sample=False)
    assert written == expected
    assert not w.generating and w.error == ""
    assert w.text == PROMPT + TOKENIZER.decode(written, clean_up_tokenization_spaces=False)
    assert w.generated == [[len(PROMPT), len(w.text), w.session.num_layers]]


def test_each_step_grid_is_a_fresh_sessions_of_the_same_tokens() -> None:
    m = model("gpt2", seed=1)
    w = LensWidget(m, TOKENIZER, text=PROMPT, lens=None)
    for _ in range(5):
        w.generate(max_new_tokens=1)
        assert_same_grid(w.session, fresh_grid(w.session))
    # Where the text's own tokens are the ones written, a session of the text itself agrees too.
    own = LensSession(m, TOKENIZER)
    own.set_text(w.text)
    if own.tokens.ids == w.session.tokens.ids:
        assert_same_grid(w.session, own)


def test_generation_ends_at_eos_a_stop_string_or_max_tokens() -> None:
    m = model("llama", seed=2)
    w = LensWidget(m, TOKENIZER, text=PROMPT)
    n = len(w.session.tokens.ids)
    first = reference(m, list(w.session.tokens.ids), 3, do_sample=False)
    m.generation_config.eos_token_id = first[1]
    w.generate(max_new_tokens=10)
    assert w.session.tokens.ids[n:] == first[:2], "the EOS token is written, then it stops"
    m.generation_config.eos_token_id = None
    text = w.text
    stop = TOKENIZER.decode(reference(m, list(w.session.tokens.ids), 2, do_sample=False)[1:])
    w.generate(max_new_tokens=10, stop=stop)
    assert w.text.endswith(stop) and len(w.session.tokens.ids) <= n + 2 + 2 + 1
    small = LensWidget(m, TOKENIZER, text=PROMPT, max_tokens=len(w.session.tokens.ids) + 3)
    small.generate(max_new_tokens=50)
    assert len(small.session.tokens.ids) == small.session.max_tokens and not small.generating
    with pytest.raises(ValueError, match="max_tokens"):
        small.session.append_tokens([5], "x")
    assert text in w.text


def test_sampling_is_repeatable_with_a_seed_and_the_nucleus_of_one_is_greedy() -> None:
    m = model("gpt2", seed=4)
    texts = []
    for _ in range(2):
        w = LensWidget(m, TOKENIZER, text=PROMPT)
        w.generate(max_new_tokens=8, temperature=1.5, seed=7)
        texts.append(w.text)
    assert texts[0] == texts[1]
    greedy, nucleus = LensWidget(m, TOKENIZER, text=PROMPT), LensWidget(m, TOKENIZER, text=PROMPT)
    greedy.generate(max_new_tokens=8)
    nucleus.generate(max_new_tokens=8, temperature=1.0, top_p=1e-6, seed=1)
    assert nucleus.text == greedy.text
    logits = torch.tensor([0.0, 3.0, 1.0])
    assert Sampling.of(0, None).choose(logits) == 1
    with pytest.raises(ValueError, match="not finite"):
        Sampling.of(0, None).choose(torch.tensor([float("nan"), 1.0]))


def test_a_layer_can_write_and_model_b_can_write() -> None:
    a, b = model("gpt2", seed=0), model("gpt2", seed=5)
    w = LensWidget(a, TOKENIZER, model_b=b, text=PROMPT)
    n = len(w.session.tokens.ids)
    expected = int(w.session.next_logits("a", 1).argmax())
    w.generate(max_new_tokens=1, layer=1)
    assert w.session.tokens.ids[n] == expected
    assert w.generated[-1][2] == 1, "the range says which row wrote it"
    ids = list(w.session.tokens.ids)
    w.generate(max_new_tokens=6, model="b")
    assert w.session.tokens.ids[len(ids) :] == reference(b, ids, 6, do_sample=False)
    sa, _, _ = w.session.grid_arrays("a")
    assert sa.shape[2] == len(w.session.tokens.ids), "A is read on B's tokens"


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"max_new_tokens": 0}, "max_new_tokens must be a positive integer"),
        ({"temperature": -1}, "temperature must be"),
        ({"top_p": 0}, "top_p must be"),
        ({"stop": [""]}, "stop must be"),
        ({"layer": 99}, "row must be a row of the grid"),
        ({"model": "b"}, "model must be one of"),
        ({"seed": "x"}, "seed must be"),
    ],
)
def test_bad_settings_are_refused_before_anything_changes(settings: dict[str, Any], message: str) -> None:
    w = LensWidget(model("gpt2"), TOKENIZER, text=PROMPT)
    with pytest.raises(ValueError, match=message):
        w.generate(**{"max_new_tokens": 3, **settings})
    assert w.text == PROMPT and not w.generating and w.generated == []
    empty = LensWidget(model("gpt2"), TOKENIZER)
    with pytest.raises(ValueError, match="no text to continue"):
        empty.generate()


def test_a_token_that_is_half_a_character_waits_for_the_rest() -> None:
    ids = TOKENIZER.encode("🙂")
    assert len(ids) >= 2, "the tiny tokenizer spells the emoji in byte pieces"
    context = TOKENIZER.encode("Paris ")
    assert piece(TOKENIZER, context, ids[:1]) is None
    assert piece(TOKENIZER, context, ids) == "🙂"


def run_steps(scenario: Any) -> Any:
    return asyncio.run(scenario())


def test_on_the_event_loop_it_writes_a_token_per_callback_and_the_stop_message_ends_it() -> None:
    async def scenario() -> tuple[LensWidget, list[int], int]:
        w = LensWidget(model("gpt2", seed=1), TOKENIZER, text=PROMPT)
        visible(w, 0, 400)  # a view: updates go to it as deltas, as typing's do
        n = len(w.session.tokens.ids)
        w.generate(max_new_tokens=200)
        assert w.generating and len(w.session.tokens.ids) == n, "generate() returns before the first token"
        counts = []
        for _ in range(3):
            await asyncio.sleep(0)
            counts.append(len(w.session.tokens.ids))
        message(w, {"type": "stop_generation", "view": "v"})
        stopped = len(w.session.tokens.ids)
        await asyncio.sleep(0.05)
        return w, counts, stopped

    w, counts, stopped = run_steps(scenario)
    assert counts == sorted(counts) and counts[-1] > counts[0], counts
    updates = [m["data"]["content"] for m in w.comm.sent if (m["data"] or {}).get("method") == "custom"]
    headers = [u["payload"]["header"] for u in updates if u.get("type") == "update"]
    columns = [h["n_tokens"] for h in headers]
    assert columns == list(range(columns[0], stopped + 1)), "one update per token, each one column more"
    assert {h["kind"] for h in headers} == {"columns"}, "each an append's delta, not a whole picture"
    assert len(w.session.tokens.ids) == stopped and not w.generating
    assert_same_grid(w.session, fresh_grid(w.session))


def test_typing_while_it_writes_stops_it_and_wins() -> None:
    async def scenario() -> LensWidget:
        w = LensWidget(model("llama", seed=1), TOKENIZER, text=PROMPT)
        w.generate(max_new_tokens=200)
        for _ in range(3):
            await asyncio.sleep(0)
        typed = PROMPT + " fox jumps"  # the person typed on the text they saw, without what came since
        edit(w, typed, 1)
        await asyncio.sleep(0.05)
        return w

    w = run_steps(scenario)
    assert w.text == PROMPT + " fox jumps" and not w.generating and w.error == ""
    assert w.generated == [], "what the model wrote was replaced by what the person typed"
    own = LensSession(w.session._track("a").adapter.model, TOKENIZER)
    own.set_text(w.text)
    assert w.session.tokens.ids == own.tokens.ids
    assert_same_grid(w.session, own)
    assert {"type": "edit_done", "view": "view-1", "edit": 1} in answers(w)


def test_an_error_in_the_middle_leaves_the_text_written_so_far_and_the_next_edit_recovers() -> None:
    m = model("gpt2", seed=1)
    w = LensWidget(m, TOKENIZER, text=PROMPT)
    calls = {"n": 0}

    def fail_on_the_third_token(module: Any, args: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("out of memory (simulated)")

    hook = m.transformer.register_forward_pre_hook(fail_on_the_third_token)
    try:
        w.generate(max_new_tokens=10)
    finally:
        hook.remove()
    assert "Could not generate the next token" in w.error and "simulated" in w.error
    assert not w.generating
    assert w.text.startswith(PROMPT) and w.session.text == w.text, "the picture is of the text written so far"
    assert w.generated and w.generated[0][1] == len(w.text)
    w.text = w.text + " again"
    assert w.error == ""
    own = LensSession(m, TOKENIZER)
    own.set_text(w.text)
    assert_same_grid(w.session, own)


def test_malformed_generate_messages_are_refused() -> None:
    w = LensWidget(model("gpt2"), TOKENIZER, text=PROMPT)
    for content in (
        {"type": "generate", "view": "v", "max_new_tokens": 0, "row": None},
        {"type": "generate", "view": "v", "max_new_tokens": 5, "row": "1"},
        {"type": "generate", "view": "v", "max_new_tokens": 5, "row": None, "model": "c"},
    ):
        message(w, content)
        assert w.error.startswith("Ignored a malformed message from the view") and w.text == PROMPT
    message(w, {"type": "generate", "view": "v", "max_new_tokens": 2, "row": None, "model": "a"})
    assert len(w.text) > len(PROMPT) and w.error == ""
