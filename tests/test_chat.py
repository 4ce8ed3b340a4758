"""Chat transcripts: the template's rendering and the role of each part of it, held to the tokenizer's own
apply_chat_template (its assistant mask, its offsets), and a chat widget's messages, text and roles
kept in step through edits from Python, typing and text appended at the end (generation)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from test_widget import edit, recording_comm  # noqa: F401
from tiny_models import tiny_model, tiny_tokenizer

from lens_widget import LensWidget, chat
from lens_widget.spans import utf16_length
from lens_widget.text import utf16_offsets

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
    "{% if m['role'] == 'assistant' %}{% generation %}{{ m['content'] }}{% endgeneration %}"
    "{% else %}{{ m['content'] }}{% endif %}"
    "{% if not (loop.last and continue_final_message) %}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
"""ChatML, with the assistant's content marked for return_assistant_tokens_mask."""

MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "user"},  # a content that is also the text of a role's header
    {"role": "assistant", "content": "The capital 🙂 of France."},
    {"role": "user", "content": "user"},  # the same content twice
    {"role": "assistant", "content": ""},
    {"role": "user", "content": "Naïve café: more?"},
]


def chat_tokenizer(template: str = CHATML) -> Any:
    tokenizer = tiny_tokenizer(400)
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    tokenizer.chat_template = template
    return tokenizer


TOKENIZER = chat_tokenizer()
MODEL = tiny_model("llama", vocab_size=len(TOKENIZER), max_position_embeddings=256)


def piece(text: str, start: int, end: int) -> str:
    """text[start:end] in UTF-16 units."""
    return text.encode("utf-16-le", "surrogatepass")[2 * start : 2 * end].decode("utf-16-le", "surrogatepass")


def check_roles(text: str, roles: list[dict[str, Any]]) -> None:
    """Ordered, disjoint, covering the text; message ranges empty or not, the template's never empty."""
    at = 0
    for r in roles:
        assert r["start"] == at and r["end"] >= r["start"], roles
        assert r["end"] > r["start"] or r["message"] is not None
        at = r["end"]
    assert at == utf16_length(text)


@pytest.mark.parametrize(
    "options",
    [{}, {"add_generation_prompt": True}, {"continue_final_message": True}],
    ids=["plain", "generation_prompt", "continue"],
)
def test_the_rendering_is_the_templates_own_and_the_roles_are_its_assistant_mask(options: dict[str, bool]) -> None:
    transcript = chat.render(TOKENIZER, MESSAGES, **options)
    assert transcript.text == TOKENIZER.apply_chat_template(MESSAGES, tokenize=False, **options)
    check_roles(transcript.text, transcript.roles)
    # transformers gives no mask with continue_final_message; that text is the plain one up to the
    # final message's end (ChatML closes it with <|im_end|>), whose mask it takes.
    masked = {} if options.get("continue_final_message") else options
    encoded = TOKENIZER.apply_chat_template(
        MESSAGES, tokenize=True, return_dict=True, return_assistant_tokens_mask=True, **masked
    )
    # apply_chat_template returns no offsets here: the tokens' own, from the tokenizer, of the same ids.
    offsets = TOKENIZER(transcript.text, return_offsets_mapping=True, add_special_tokens=False)
    n = len(offsets["input_ids"])
    assert offsets["input_ids"] == encoded["input_ids"][:n]
    mask = list(encoded["assistant_masks"])[:n]
    assert sum(mask) > 0
    spans = utf16_offsets(transcript.text, np.asarray(offsets["offset_mapping"]))
    shown = chat.token_roles(transcript.roles, spans)
    assert [int(transcript.roles[k]["role"] == "assistant") for k in shown] == mask
    special = set(TOKENIZER.all_special_ids)
    assert [transcript.roles[k]["special"] for k in shown] == [i in special for i in offsets["input_ids"]]
    for r in transcript.roles:
        if r["message"] is not None and r["message"] < len(MESSAGES):
            assert piece(transcript.text, r["start"], r["end"]) == MESSAGES[r["message"]]["content"]
            assert r["role"] == MESSAGES[r["message"]]["role"]
    shown_messages = sorted(r["message"] for r in transcript.roles if r["message"] is not None)
    open_turn = options.get("add_generation_prompt", False)
    assert shown_messages == list(range(len(MESSAGES) + open_turn))


def test_a_template_that_rewrites_contents_or_drops_a_message_is_read_by_looking_in_order() -> None:
    template = (
        "{% for m in messages %}{% if m['role'] != 'system' %}[{{ m['role'] }}] {{ m['content'] | trim }}\n"
        "{% endif %}{% endfor %}"
    )
    tokenizer = chat_tokenizer(template)
    messages = [
        {"role": "system", "content": "hidden"},
        {"role": "user", "content": "  user  "},
        {"role": "assistant", "content": "user"},
    ]
    transcript = chat.render(tokenizer, messages)
    assert transcript.text == "[user] user\n[assistant] user\n"
    check_roles(transcript.text, transcript.roles)
    places = {r["message"]: (r["start"], r["end"]) for r in transcript.roles if r["message"] is not None}
    assert places == {1: (7, 11), 2: (24, 28)}  # the system message is not shown


def test_a_tokenizer_with_no_chat_template_is_refused_by_name_before_any_work() -> None:
    plain = tiny_tokenizer(400)
    plain.name_or_path = "tiny/base-model"
    with pytest.raises(chat.NoChatTemplateError, match=rf"{type(plain).__name__} 'tiny/base-model' has no chat"):
        LensWidget.chat(MODEL, plain, MESSAGES)
    with pytest.raises(ValueError, match="has no chat template"):
        LensWidget(MODEL, plain, messages=MESSAGES)
    with pytest.raises(ValueError, match="not both"):
        LensWidget(MODEL, TOKENIZER, text="x", messages=MESSAGES)


def test_a_chat_widget_analyses_the_rendering_with_its_roles() -> None:
    widget = LensWidget.chat(MODEL, TOKENIZER, MESSAGES)
    transcript = chat.render(TOKENIZER, MESSAGES, add_generation_prompt=True)
    assert widget.text == transcript.text and widget.roles == transcript.roles
    assert widget.messages == MESSAGES
    assert widget.session.tokens.ids == TOKENIZER.apply_chat_template(MESSAGES, add_generation_prompt=True)["input_ids"]
    assert "roles" in widget.get_state(drop_defaults=True)  # saved notebooks and pages draw the band


def recorded_updates(widget: LensWidget, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The session's updates from set_text, in order, as the widget asks for them."""
    updates: list[Any] = []
    set_text = widget.session.set_text

    def recording(text: str, visible: Any = None) -> Any:
        updates.append(set_text(text, visible))
        return updates[-1]

    monkeypatch.setattr(widget.session, "set_text", recording)
    return updates


def test_editing_a_message_renders_again_and_recomputes_only_from_the_first_changed_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    widget = LensWidget.chat(MODEL, TOKENIZER, MESSAGES)
    updates = recorded_updates(widget, monkeypatch)
    edited = [*MESSAGES[:-1], {"role": "user", "content": "Naïve café: and Berlin?"}]
    widget.messages = edited
    fresh = chat.render(TOKENIZER, edited, add_generation_prompt=True)
    assert widget.text == fresh.text and widget.roles == fresh.roles
    ids = TOKENIZER.apply_chat_template(edited, add_generation_prompt=True)["input_ids"]
    assert widget.session.tokens.ids == ids
    (update,) = updates
    old_ids = TOKENIZER.apply_chat_template(MESSAGES, add_generation_prompt=True)["input_ids"]
    kept = next(i for i, (a, b) in enumerate(zip(old_ids, ids, strict=False)) if a != b)
    assert update.kind == "columns" and update.col_start == kept > len(ids) // 2
    again = LensWidget.chat(MODEL, TOKENIZER, edited)
    np.testing.assert_allclose(widget.grid_data().values, again.grid_data().values, rtol=1e-5, atol=1e-5)


def test_a_conversation_that_cannot_be_rendered_leaves_the_widget_as_it_was() -> None:
    widget = LensWidget.chat(MODEL, TOKENIZER, MESSAGES)
    text, roles = widget.text, widget.roles
    with pytest.raises(TypeError, match="content"):
        widget.messages = [{"role": "user", "content": ["not", "text"]}]
    assert widget.messages == MESSAGES and widget.text == text and widget.roles == roles


def test_typing_inside_a_message_edits_that_message_and_carries_the_roles() -> None:
    widget = LensWidget.chat(MODEL, TOKENIZER, MESSAGES)
    system = next(r for r in widget.roles if r["message"] == 0)
    text = widget.text
    typed = text[: system["start"]] + "Please b" + text[system["start"] + 1 :]  # "Be brief." -> "Please be brief."
    edit(widget, typed, 1)
    assert widget.text == typed and widget.session.text == typed
    assert widget.messages[0] == {"role": "system", "content": "Please be brief."}
    assert widget.messages[1:] == MESSAGES[1:]
    check_roles(typed, widget.roles)
    for r in widget.roles:
        if r["message"] is not None and r["message"] < len(MESSAGES):
            assert piece(typed, r["start"], r["end"]) == widget.messages[r["message"]]["content"]
    # Typing at the start of the empty assistant message makes it the assistant's.
    empty = next(r for r in widget.roles if r["message"] == 4)
    typed2 = piece(typed, 0, empty["start"]) + "Yes." + piece(typed, empty["start"], utf16_length(typed))
    edit(widget, typed2, 2)
    assert widget.messages[4] == {"role": "assistant", "content": "Yes."}
    # Typing in the template's own text changes no message.
    edit(widget, typed2.replace("<|im_start|>user\nuser", "<|im_start|>usr\nuser", 1), 3)
    assert widget.messages[1:] == [MESSAGES[1], MESSAGES[2], MESSAGES[3], widget.messages[4], MESSAGES[5]]
    assert widget.messages[0]["content"] == "Please be brief."


def test_text_appended_after_the_generation_prompt_becomes_the_assistants_message() -> None:
    widget = LensWidget.chat(MODEL, TOKENIZER, MESSAGES)
    widget.text = widget.text + "Yes 🙂"
    assert widget.messages == [*MESSAGES, {"role": "assistant", "content": "Yes 🙂"}]
    last = widget.roles[-1]
    assert (last["role"], last["message"], last["end"]) == ("assistant", len(MESSAGES), utf16_length(widget.text))
    widget.text = widget.text + " and more."
    assert widget.messages[-1] == {"role": "assistant", "content": "Yes 🙂 and more."}


def test_the_open_assistant_turn_takes_what_is_appended_at_the_end() -> None:
    closed = [*MESSAGES[:3]]  # ends with the assistant's (closed) message
    transcript = chat.open_assistant_turn(TOKENIZER, closed)
    assert transcript.text == TOKENIZER.apply_chat_template(closed, tokenize=False, continue_final_message=True)
    assert transcript.roles[-1]["role"] == "assistant" and transcript.roles[-1]["end"] == utf16_length(transcript.text)
    asked = chat.open_assistant_turn(TOKENIZER, MESSAGES)  # ends with the user's: an empty assistant message after it
    opened = [*MESSAGES, {"role": "assistant", "content": ""}]
    assert asked.text == TOKENIZER.apply_chat_template(opened, tokenize=False, continue_final_message=True)
    assert asked.roles[-1] == {**asked.roles[-1], "role": "assistant", "message": len(MESSAGES)}
    assert asked.roles[-1]["start"] == asked.roles[-1]["end"] == utf16_length(asked.text)

    widget = LensWidget.chat(MODEL, TOKENIZER, closed, add_generation_prompt=False)
    widget.chat_sync.open_assistant_turn()
    assert widget.text == transcript.text and widget.roles == transcript.roles
    widget.text = widget.text + " Berlin too."
    assert widget.messages == [*closed[:2], {"role": "assistant", "content": "The capital 🙂 of France. Berlin too."}]


def test_roles_carried_through_random_edits_stay_ordered_and_cover_the_text() -> None:
    """Pure: carry_roles and following on random edits (deletions across messages and the template,
    insertions with emoji), with no model: each message reads what its range holds."""
    rng = np.random.default_rng(0)
    transcript = chat.render(TOKENIZER, MESSAGES, add_generation_prompt=True)
    text, roles, messages = transcript.text, transcript.roles, [dict(m) for m in MESSAGES]
    specials = chat.special_tokens(TOKENIZER)
    for _ in range(200):
        a, b = sorted(rng.integers(0, len(text) + 1, size=2).tolist())
        b = min(b, a + int(rng.integers(0, 6)))
        new = text[:a] + "".join(rng.choice(list("ab 🙂🚀\n"), size=int(rng.integers(0, 4)))) + text[b:]
        roles = chat.carry_roles(roles, text, new, specials)
        messages = chat.following(messages, roles, new)
        text = new
        check_roles(text, roles)
        for r in roles:
            if r["message"] is not None and r["message"] < len(messages):
                assert piece(text, r["start"], r["end"]) == messages[r["message"]]["content"]
    assert sorted(r["message"] for r in roles if r["message"] is not None) == list(range(len(MESSAGES) + 1))


def test_typing_at_the_end_of_a_message_extends_it() -> None:
    transcript = chat.render(TOKENIZER, MESSAGES)
    user = next(r for r in transcript.roles if r["message"] == 5)
    text = transcript.text
    new = piece(text, 0, user["end"]) + " Now!" + piece(text, user["end"], utf16_length(text))
    roles = chat.carry_roles(transcript.roles, text, new, chat.special_tokens(TOKENIZER))
    assert chat.following(MESSAGES, roles, new)[5]["content"] == "Naïve café: more? Now!"


def test_generating_in_a_chat_writes_the_assistants_message_as_model_generate_would() -> None:
    widget = LensWidget.chat(MODEL, TOKENIZER, MESSAGES)
    ids = TOKENIZER.apply_chat_template(MESSAGES, add_generation_prompt=True)["input_ids"]
    widget.generate(max_new_tokens=12)
    mask = torch.ones(1, len(ids), dtype=torch.long)
    out = MODEL.generate(torch.tensor([ids]), attention_mask=mask, max_new_tokens=12, do_sample=False)
    expected = out[0, len(ids) :].tolist()
    assert widget.session.tokens.ids[len(ids) :] == expected
    written = TOKENIZER.decode(expected, clean_up_tokenization_spaces=False)
    assert widget.messages == [*MESSAGES, {"role": "assistant", "content": written}]
    assert widget.roles[-1]["role"] == "assistant" and widget.roles[-1]["end"] == utf16_length(widget.text)
    # A conversation that ends with the assistant's closed message is opened first: the reply continues it.
    closed = LensWidget.chat(MODEL, TOKENIZER, MESSAGES[:3], add_generation_prompt=False)
    closed.generate(max_new_tokens=3)
    assert closed.messages[-1]["content"].startswith(MESSAGES[2]["content"]) and len(closed.messages) == 3


def test_a_chat_is_tokenized_as_apply_chat_template_does_with_no_second_bos() -> None:
    from tokenizers import processors

    tokenizer = chat_tokenizer()
    tokenizer.add_special_tokens({"bos_token": "<s>"})
    bos = tokenizer.convert_tokens_to_ids("<s>")
    tokenizer._tokenizer.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", bos)])
    tokenizer.chat_template = "{{ bos_token }}" + CHATML
    model = tiny_model("llama", vocab_size=len(tokenizer), max_position_embeddings=256)
    widget = LensWidget.chat(model, tokenizer, MESSAGES)
    ids = tokenizer.apply_chat_template(MESSAGES, add_generation_prompt=True)["input_ids"]
    assert widget.session.tokens.ids == ids and ids.count(bos) == 1
    plain = LensWidget(model, tokenizer, text="Paris")
    assert plain.session.tokens.ids[0] == bos, "plain text still gets the tokenizer's BOS"


def test_a_token_with_no_text_of_its_own_takes_the_range_it_stands_in() -> None:
    """An added BOS, or the first half of a character the model wrote (its span is empty): the role of
    the range it stands in, as js/roles.ts draws it."""
    roles = [chat._role("template", 0, 4, False, None), chat._role("assistant", 4, 9, False, 1)]
    spans = np.array([[0, 0], [4, 4], [6, 6], [9, 9], [0, 4], [5, 9]])
    assert chat.token_roles(roles, spans) == [0, 1, 1, 1, 0, 1]
    closed = [chat._role("user", 0, 4, False, 0), chat._role("template", 4, 6, False, None)]
    assert chat.token_roles(closed, np.array([[4, 4], [7, 7]])) == [1, -1]
