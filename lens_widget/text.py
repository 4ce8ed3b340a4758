"""Text to tokens with character spans the browser can use, and the strings of a vocabulary.

Spans are in UTF-16 code units, because that is how JavaScript indexes the text box's string:
Python counts code points, so any character outside the Basic Multilingual Plane (most emoji)
would otherwise shift every later span by one.

Only as much of the text is tokenized as the first `max_tokens` tokens need: a prefix, cut where a
word ends and grown until it holds a margin of tokens beyond those kept. Tokenizers decide a token
from its word and a few characters around it, so the kept tokens are those of the whole text, and a
keystroke in a 5 MB text costs what one in a short text does. The tokens left out are then estimated.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_WORD_END = re.compile(r"(?<=\S)\s")

_MARGIN_TOKENS = 32
"""Tokens a prefix must hold beyond those kept, so that none kept is near where the prefix was cut."""
_CHARS_PER_TOKEN = 8
"""First guess at the characters per token (most text has 3 to 5), sizing the first prefix."""
_MIN_PREFIX = 8192
"""Characters tokenized at least (a millisecond's work), so that the estimate of the rest has a sample."""
_WORD_SEARCH = 1024
"""How far past the wanted length a word end is looked for before cutting mid-word."""


@dataclass(frozen=True)
class Tokens:
    """A tokenized text, cut to the session's bound."""

    ids: list[int]
    """Token ids, at most the session's max_tokens."""
    spans: np.ndarray
    """uint32 [len(ids), 2]: [start, end) of each token in the text, in UTF-16 code units."""
    total: int
    """Tokens the whole text has, more than len(ids) when the text was cut: exact when `total_exact`,
    else an estimate (still more than len(ids)) from the tokens per character of the prefix that was
    tokenized, for the whole text was not."""
    total_exact: bool = True


def cut_notice(tokens: Tokens, max_tokens: int) -> str:
    """What the view says of a text cut at max_tokens (empty when it was not)."""
    n = len(tokens.ids)
    if tokens.total <= n:
        return ""
    about = "" if tokens.total_exact else "about "
    return (
        f"The text has {about}{tokens.total:,} tokens; showing the first {n} (max_tokens = {max_tokens}). "
        "Text after that is not analysed."
    )


def without_lone_surrogates(text: str) -> str:
    """Lone surrogates (half an emoji, which a browser can send) as U+FFFD: one UTF-16 unit for one,
    so spans into the text stay right, and the text can be encoded as UTF-8 again."""
    return _LONE_SURROGATE.sub("\ufffd", text)


def check_tokenizer(tokenizer: Any) -> None:
    """Refuse a slow tokenizer: only fast ones report the character spans the view needs."""
    if not getattr(tokenizer, "is_fast", False):
        raise TypeError(
            f"{type(tokenizer).__name__} is a slow tokenizer, which cannot report token spans; "
            "load a fast one (AutoTokenizer.from_pretrained(..., use_fast=True))."
        )


def tokenize(tokenizer: Any, text: str, max_tokens: int, add_special_tokens: bool = True) -> Tokens:
    """The first `max_tokens` tokens as the model would see the text (special tokens included), with
    spans, tokenizing only a prefix when that is enough (see the module's docstring).

    add_special_tokens: the tokenizer's own (a BOS, say); off for a chat template's rendering, which
    holds its own, as apply_chat_template tokenizes it.

    Lone surrogates (which a browser can send, and which Rust tokenizers refuse) are tokenized as
    U+FFFD; the text itself is untouched and spans still index it.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    check_tokenizer(tokenizer)
    wanted = max_tokens + _MARGIN_TOKENS
    end = _cut(text, max(_MIN_PREFIX, _CHARS_PER_TOKEN * wanted))
    while True:
        prefix = without_lone_surrogates(text[:end])
        encoded = tokenizer(prefix, return_offsets_mapping=True, add_special_tokens=add_special_tokens, verbose=False)
        ids = list(encoded["input_ids"])
        if end == len(text) or len(ids) >= wanted:
            break
        # Too few tokens: grow at the rate seen so far, at least doubling.
        end = _cut(text, max(2 * end, int(1.5 * wanted * end / max(len(ids), 1))))
    offsets = np.asarray(encoded["offset_mapping"], dtype=np.int64).reshape(-1, 2)[:max_tokens]
    spans = utf16_offsets(prefix, offsets).astype(np.uint32)
    if end == len(text):
        return Tokens(ids=ids[:max_tokens], spans=spans, total=len(ids))
    estimate = max(len(ids), round(len(ids) * len(text) / end))
    return Tokens(ids=ids[:max_tokens], spans=spans, total=estimate, total_exact=False)


def _cut(text: str, length: int) -> int:
    """Where to end a prefix of about `length` characters: at the end of a word if one ends soon
    after (so that the last word is whole, as in the full text), else at `length`."""
    if length >= len(text):
        return len(text)
    found = _WORD_END.search(text, length, length + _WORD_SEARCH)
    return found.start() if found else length


def utf16_offsets(text: str, offsets: np.ndarray) -> np.ndarray:
    """Code-point offsets into `text` as UTF-16 code-unit offsets."""
    if not text.isascii():
        astral = np.fromiter((ord(c) > 0xFFFF for c in text), dtype=np.int64, count=len(text))
        before = np.concatenate([[0], np.cumsum(astral)])
        return offsets + before[np.clip(offsets, 0, len(text))]
    return offsets


def vocabulary(tokenizer: Any, size: int) -> list[str]:
    """How each token id reads as text, for ids 0 … size-1 (the model's vocabulary can be larger
    than the tokenizer's: those ids read `<id>`).

    A token that is only part of a UTF-8 character decodes to U+FFFD, which would make every such
    token look alike; those read as their bytes instead (`<0xE2><0x80>`), as SentencePiece names them.
    """
    known = min(size, len(tokenizer))
    strings = tokenizer.batch_decode([[i] for i in range(known)], clean_up_tokenization_spaces=False)
    raw = tokenizer.convert_ids_to_tokens(list(range(known)))
    out = []
    for text, token in zip(strings, raw, strict=True):
        if "\ufffd" in text and isinstance(token, str) and "\ufffd" not in token:
            text = _byte_label(token)
        out.append(without_lone_surrogates(text))
    return out + [f"<{i}>" for i in range(known, size)]


def _byte_level_alphabet() -> dict[str, int]:
    """GPT-2's byte-level BPE alphabet: printable bytes stand for themselves, the other bytes for
    the characters from U+0100 up, in byte order."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table = {chr(b): b for b in printable}
    extra = 0
    for b in range(256):
        if b not in printable:
            table[chr(256 + extra)] = b
            extra += 1
    return table


_BYTE_LEVEL = _byte_level_alphabet()


def _byte_label(token: str) -> str:
    """A partial-character token as text where its bytes decode, `<0xNN>` where they do not."""
    if not all(c in _BYTE_LEVEL for c in token):
        return token  # e.g. SentencePiece's own "<0xE2>"
    data = bytes(_BYTE_LEVEL[c] for c in token)
    text = data.decode("utf-8", errors="replace")
    if "\ufffd" not in text:
        return text
    return "".join(f"<0x{b:02X}>" for b in data)
