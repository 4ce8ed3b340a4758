"""Tokenization with spans a browser can use."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from tiny_models import tiny_tokenizer

from lens_widget.text import tokenize, utf16_offsets

TOKENIZER = tiny_tokenizer(400)


def js_slice(text: str, start: int, end: int) -> str:
    """What JavaScript's text.slice(start, end) returns: indices are UTF-16 code units."""
    units = text.encode("utf-16-le")
    return units[2 * start : 2 * end].decode("utf-16-le", errors="replace")


def test_spans_are_utf16_so_emoji_do_not_shift_later_tokens() -> None:
    text = "a🙂b 東京 the capital"
    tokens = tokenize(TOKENIZER, text, 100)
    last = tokens.spans[-1]
    assert js_slice(text, int(last[0]), int(last[1])) == " capital"
    assert int(tokens.spans[-1, 1]) == len(text.encode("utf-16-le")) // 2


def test_utf16_offsets_of_ascii_are_unchanged() -> None:
    offsets = np.array([[0, 3], [3, 5]])
    assert np.array_equal(utf16_offsets("hello", offsets), offsets)


def test_cut_at_max_tokens_keeps_the_total() -> None:
    tokens = tokenize(TOKENIZER, "the capital " * 50, 10)
    assert len(tokens.ids) == 10 and tokens.spans.shape == (10, 2) and tokens.total > 10


def test_a_slow_tokenizer_is_refused_with_what_to_do() -> None:
    with pytest.raises(TypeError, match="use_fast=True"):
        tokenize(SimpleNamespace(is_fast=False), "x", 10)


def test_lone_surrogates_keep_the_text_length() -> None:
    tokens = tokenize(TOKENIZER, "a\udc00b", 10)
    assert int(tokens.spans[-1, 1]) == 3


def test_partial_character_tokens_read_as_their_bytes_not_as_replacement_characters() -> None:
    from lens_widget.text import vocabulary

    strings = vocabulary(TOKENIZER, len(TOKENIZER))
    emoji = TOKENIZER("🙂", add_special_tokens=False).input_ids
    assert len(emoji) > 1, "the emoji is split into byte tokens"
    assert "".join(strings[i] for i in emoji) == "".join(f"<0x{b:02X}>" for b in "🙂".encode())
    assert not any("\ufffd" in s for s in strings)
    assert strings[TOKENIZER(" the", add_special_tokens=False).input_ids[0]] == " the"
