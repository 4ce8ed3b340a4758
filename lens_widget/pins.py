"""Pinned items: the tokens a user follows across layers, alone or as sets.

A pinned item is a token, or a set of tokens whose probabilities add up: what a model means by a word
is spread over the ways it can start writing it ("dog", " dog", " do", "d", …). A set is built from a
word the way Wendler et al. build their language curves ("Do Llamas Work in English?", 2024; the
epfl-dlab/llm-latent-language notebooks): every vocabulary entry that, once stripped of the
tokenizer's space marker, is a non-empty prefix of the word, with and without the leading space; and,
when the word starts with a character of several UTF-8 bytes, the first token the tokenizer writes it
with (a byte token, for byte-level vocabularies).

The session computes each item's log-probability in every cell (statistics.pinned_log_probs); this
module only decides which token ids an item is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

MAX_PINS = 12
"""Items pinned at once: each is a line in the trajectory panel and a float per cell on the wire."""
MAX_TOKENS = 1024
"""Token ids in one item."""
MAX_LABEL = 40
SPACE_MARKERS = ("▁", "Ġ", " ")
"""How tokenizers write a leading space in their vocabulary: SentencePiece, byte-level BPE, plain."""


class PinError(ValueError):
    """A pin that cannot be made: an empty word, an unknown token id, too many items."""


@dataclass(frozen=True)
class Pin:
    """One pinned item: a label and the token ids whose probabilities it adds up."""

    label: str
    ids: tuple[int, ...]
    words: tuple[str, ...] = ()
    """The words it was built from (empty when pinned by token id)."""

    def as_trait(self, strings: Sequence[str]) -> dict[str, Any]:
        """What the `pins` trait holds for it: the view shows the set's token strings."""
        return {
            "label": self.label,
            "ids": list(self.ids),
            "words": list(self.words),
            "tokens": [strings[i] if i < len(strings) else f"<{i}>" for i in self.ids],
        }


def strip_space(text: str) -> str:
    """`text` without one leading space marker."""
    for marker in SPACE_MARKERS:
        if text.startswith(marker):
            return text[len(marker) :]
    return text


def word_token_ids(word: str, strings: Sequence[str], raw: Sequence[str], tokenizer: Any) -> list[int]:
    """The token set of `word`: ids whose text (`strings`, as decoded) or vocabulary entry (`raw`,
    where a lone token's decoding drops its space, as SentencePiece's does), stripped of one leading
    space marker, is a non-empty prefix of the word; and the first token of the word's own encoding
    when it starts with a multi-byte character."""
    word = word.strip()
    if not word:
        raise PinError("a pinned word must have a character other than spaces")
    ids = []
    for i, (text, entry) in enumerate(zip(strings, raw, strict=False)):
        for candidate in (strip_space(text), strip_space(entry) if isinstance(entry, str) else ""):
            if candidate and word.startswith(candidate):
                ids.append(i)
                break
    if len(word[0].encode("utf-8")) > 1:
        encoded = tokenizer.encode(word, add_special_tokens=False)
        if encoded and encoded[0] < len(strings):
            ids.append(int(encoded[0]))
    if not ids:
        raise PinError(f"no token of the vocabulary begins the word {word!r}")
    return sorted(set(ids))


def make_pin(
    items: Sequence[str | int],
    label: str | None,
    strings: Sequence[str],
    raw: Sequence[str],
    tokenizer: Any,
) -> Pin:
    """One pinned item from words (token sets) and token ids, all added up together."""
    if not items:
        raise PinError("pin needs at least one word or token id")
    ids: list[int] = []
    words: list[str] = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, (int, str)):
            raise PinError(f"pin takes words (str) or token ids (int), got {type(item).__name__}")
        if isinstance(item, int):
            if not 0 <= item < len(strings):
                raise PinError(f"token id {item} is not in the vocabulary of {len(strings)} ids")
            ids.append(item)
        else:
            words.append(item.strip())
            ids.extend(word_token_ids(item, strings, raw, tokenizer))
    ids = sorted(set(ids))
    if len(ids) > MAX_TOKENS:
        raise PinError(f"a pinned item may have at most {MAX_TOKENS} tokens, this one has {len(ids)}")
    if label is None:
        label = "+".join(words) if words else "+".join(strings[i] for i in ids)
    if not isinstance(label, str) or not label.strip() or len(label) > MAX_LABEL:
        raise PinError(f"a pin's label must be a non-empty string of at most {MAX_LABEL} characters, got {label!r}")
    return Pin(label, tuple(ids), tuple(words))


def pin_of_trait(entry: Any) -> Pin:
    """A Pin from one entry of the widget's `pins` trait ({label, ids, words?})."""
    if not isinstance(entry, dict) or not isinstance(entry.get("label"), str) or not isinstance(entry.get("ids"), list):
        raise PinError(f"a pinned item must be {{label: str, ids: [int, ...]}}, got {entry!r}")
    ids = entry["ids"]
    if not ids or any(isinstance(i, bool) or not isinstance(i, int) for i in ids):
        raise PinError(f"a pinned item's ids must be token ids (at least one), got {ids!r}")
    words = entry.get("words") or []
    return Pin(entry["label"], tuple(sorted(set(ids))), tuple(str(w) for w in words))


def check_pins(pins: Sequence[Pin]) -> tuple[Pin, ...]:
    """Pins a session can hold: at most MAX_PINS, labels distinct."""
    pins = tuple(pins)
    if len(pins) > MAX_PINS:
        raise PinError(f"at most {MAX_PINS} items can be pinned at once; unpin one first")
    labels = [p.label for p in pins]
    if len(set(labels)) != len(labels):
        raise PinError(f"pinned labels must be distinct, got {labels}")
    return pins
