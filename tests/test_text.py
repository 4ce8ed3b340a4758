"""Tokenization with spans a browser can use."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tiny_models import tiny_tokenizer

from lens_widget import text as text_module
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


# --- a long text is tokenized only as far as the cut needs ------------------------------------


def with_template(tokenizer: Any, single: str) -> Any:
    """`tokenizer` with a post-processor that adds special tokens, e.g. "<s> $A" or "<s> $A </s>"."""
    from tokenizers import processors

    specials = [t for t in single.split() if t != "$A"]
    tokenizer.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single=single, special_tokens=[(t, tokenizer.convert_tokens_to_ids(t)) for t in specials]
    )
    return tokenizer


def sentencepiece_like_tokenizer() -> Any:
    """Llama's fast tokenizer layout: spaces are "▁", the whole text is one piece for the BPE model
    (no pre-tokenizer split), bytes fall back to <0xNN>, and "<s>" starts every text."""
    from tiny_models import _CORPUS
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE(byte_fallback=True))
    backend.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="first", split=True)  # for training only
    trainer = trainers.BpeTrainer(
        vocab_size=600, special_tokens=["<unk>", "<s>", "</s>", *(f"<0x{b:02X}>" for b in range(256))]
    )
    backend.train_from_iterator([_CORPUS] * 8, trainer)
    backend.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="first", split=False)
    backend.decoder = decoders.Metaspace(prepend_scheme="first", split=False)
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    return with_template(tok, "<s> $A")


TOKENIZERS = {
    "byte-level BPE": TOKENIZER,
    "BOS and EOS": with_template(tiny_tokenizer(400), "<|endoftext|> $A <|endoftext|>"),
    "SentencePiece-like with BOS": sentencepiece_like_tokenizer(),
}
PIECES = [
    "the",
    " capital",
    " of",
    " France",
    ".",
    " ",
    "  ",
    "\n",
    "\n\n",
    "\t",
    "é",
    "東京",
    "🙂",
    "3.14",
    "<|endoftext|>",
    "=" * 40,
    "a" * 300,
    " " * 70,
    "Paris",
    "def main(): return 42",
]


def full_cut(tokenizer: Any, text: str, max_tokens: int) -> tuple[list[int], np.ndarray]:
    """The first max_tokens tokens of the whole text, tokenized whole: what the cut must equal."""
    encoded = tokenizer(text, return_offsets_mapping=True, add_special_tokens=True)
    spans = utf16_offsets(text, np.asarray(encoded["offset_mapping"], dtype=np.int64).reshape(-1, 2))
    return list(encoded["input_ids"][:max_tokens]), spans[:max_tokens]


@pytest.mark.parametrize("name", TOKENIZERS)
@settings(max_examples=60, deadline=None)
@given(pieces=st.lists(st.sampled_from(PIECES), min_size=1, max_size=60), repeat=st.integers(1, 400), data=st.data())
def test_the_kept_tokens_of_a_long_text_are_the_first_of_a_full_tokenization(
    name: str, pieces: list[str], repeat: int, data: st.DataObject
) -> None:
    tokenizer = TOKENIZERS[name]
    text = "".join(pieces) * repeat
    max_tokens = data.draw(st.integers(1, 300))
    # Small first prefixes too, so that growing and cutting at odd places are exercised on short texts.
    first = data.draw(st.sampled_from([(text_module._MIN_PREFIX, text_module._CHARS_PER_TOKEN), (0, 1), (0, 3)]))
    with mock.patch.multiple(text_module, _MIN_PREFIX=first[0], _CHARS_PER_TOKEN=first[1]):
        tokens = tokenize(tokenizer, text, max_tokens)
    ids, spans = full_cut(tokenizer, text, max_tokens)
    assert tokens.ids == ids
    assert np.array_equal(tokens.spans, spans)
    if tokens.total_exact:
        assert tokens.total == len(tokenizer(text).input_ids)
    else:
        assert tokens.total > max_tokens == len(tokens.ids)


@pytest.mark.parametrize("name", TOKENIZERS)
def test_a_text_far_longer_than_the_cut_keeps_exactly_its_first_tokens_and_estimates_the_rest(name: str) -> None:
    tokenizer = TOKENIZERS[name]
    unit = "Paris is the capital of France; 東京 🙂 is far.\n\tdef main(): return 42  # code " + "=" * 30 + " "
    text = unit * 20_000  # 1.6M characters
    counted = len(tokenizer(unit * 1000).input_ids) * 20  # the whole count, from a twentieth of the text
    for max_tokens in (1, 7, 512, 2048):
        tokens = tokenize(tokenizer, text, max_tokens)
        ids, spans = full_cut(tokenizer, text[:200_000], max_tokens)
        assert tokens.ids == ids and np.array_equal(tokens.spans, spans)
        assert not tokens.total_exact and abs(tokens.total - counted) < 0.05 * counted  # an estimate


def test_a_short_text_is_counted_exactly() -> None:
    tokens = tokenize(TOKENIZER, "the capital " * 50, 10)
    assert tokens.total_exact and tokens.total == len(TOKENIZER("the capital " * 50).input_ids)
