"""Letting the model write: the next token's choice, and the text a generated token adds.

Generation goes through the session's incremental path: each new token is an append, one model step
and one column of lens work, the cheapest update there is. What is appended is token ids, not text:
re-tokenizing the text would not always give back the tokens the model chose (a BPE merges " the" and
"re" into " there"), and then the picture would not show what the model wrote. The text grows by what
the tokens decode to; the next edit by a person re-tokenizes it, as any edit does.

The next token comes from the model's own logits at the last position (or, to see what the model
would have said had it stopped at layer ℓ, from that row's lens prediction): greedy at temperature 0,
else sampled from softmax(logits / temperature), cut to the top-p nucleus when asked.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

CONTEXT_TOKENS = 8
"""Tokens of context decoded with a new one, so that a tokenizer that joins or cleans up across tokens
(SentencePiece's leading space, byte-level pieces of one character) gives the new token's own text."""


@dataclass(frozen=True)
class Sampling:
    """How the next token is chosen, checked once for a whole generation."""

    temperature: float = 0.0
    top_p: float | None = None
    seed: int | None = None
    generator: torch.Generator | None = field(default=None, compare=False)

    @classmethod
    def of(cls, temperature: Any, top_p: Any, seed: Any = None) -> Sampling:
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature >= 0:
            raise ValueError(f"temperature must be a number >= 0 (0: greedy), got {temperature!r}")
        if not math.isfinite(temperature):
            raise ValueError(f"temperature must be finite, got {temperature!r}")
        if top_p is not None and (isinstance(top_p, bool) or not isinstance(top_p, (int, float)) or not 0 < top_p <= 1):
            raise ValueError(f"top_p must be a number in (0, 1], or None, got {top_p!r}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(f"seed must be an integer or None, got {seed!r}")
        generator = None
        if temperature > 0:
            generator = torch.Generator()
            if seed is None:
                generator.seed()
            else:
                generator.manual_seed(seed)
        return cls(float(temperature), None if top_p is None else float(top_p), seed, generator)

    def choose(self, logits: torch.Tensor) -> int:
        """The next token from float logits [vocab] (NaN logits are refused: a broken model or lens
        must not write silently)."""
        logits = logits.detach().float().cpu()
        if not torch.isfinite(logits).any() or torch.isnan(logits).any():
            raise ValueError("the logits to choose the next token from are not finite (NaN): check the model and lens")
        if self.temperature == 0:
            return int(logits.argmax())
        probs = torch.softmax(logits / self.temperature, dim=-1)
        if self.top_p is not None and self.top_p < 1:
            ordered, order = probs.sort(descending=True)
            keep = ordered.cumsum(0) - ordered < self.top_p  # the smallest set reaching top_p, at least one
            probs = torch.zeros_like(probs).scatter_(0, order[keep], ordered[keep])
        return int(torch.multinomial(probs, 1, generator=self.generator))


def stop_strings(stop: Any) -> tuple[str, ...]:
    """`stop` as non-empty strings: None, one string, or a sequence of them."""
    if stop is None:
        return ()
    items = [stop] if isinstance(stop, str) else stop
    if not isinstance(items, Sequence) or not all(isinstance(s, str) and s for s in items):
        raise ValueError(f"stop must be a non-empty string, a list of them, or None, got {stop!r}")
    return tuple(items)


def eos_ids(model: Any, tokenizer: Any) -> frozenset[int]:
    """The ids that end a generation: the model's generation config's EOS, else the tokenizer's."""
    config = getattr(model, "generation_config", None)
    found = getattr(config, "eos_token_id", None)
    if found is None:
        found = getattr(tokenizer, "eos_token_id", None)
    if found is None:
        return frozenset()
    return frozenset(int(i) for i in (found if isinstance(found, (list, tuple)) else [found]))


def decoded(tokenizer: Any, context: Sequence[int], new: Sequence[int]) -> tuple[str, bool]:
    """The text `new` adds after `context` (its last CONTEXT_TOKENS ids), U+FFFD for a character it
    holds only half of, and whether it ends in such a half (a byte-level token that is half an emoji)."""
    window = list(context[-CONTEXT_TOKENS:])
    kwargs = {"skip_special_tokens": False, "clean_up_tokenization_spaces": False}
    before = tokenizer.decode(window, **kwargs) if window else ""
    after = tokenizer.decode(window + list(new), **kwargs)
    half = after.endswith("\ufffd") and not before.endswith("\ufffd")
    if not after.startswith(before):  # a decoder that rewrites the context (rare): the new tokens alone
        return tokenizer.decode(list(new), **kwargs), half
    return after[len(before) :], half


def piece(tokenizer: Any, context: Sequence[int], new: Sequence[int]) -> str | None:
    """The text `new` adds after `context`, or None while it ends in half a character: the caller
    waits for the rest."""
    text, half = decoded(tokenizer, context, new)
    return None if half else text


@dataclass
class Generation:
    """One generation under way: its settings, what it has written, and why it ended."""

    sampling: Sampling
    stops: tuple[str, ...]
    remaining: int
    model: str
    row: int | None
    """The row whose prediction is followed (None: the model's own output)."""
    eos: frozenset[int]
    tokenizer: Any
    context: list[int]
    """The last ids before the generation, decoded with what it writes (piece's reason)."""
    ids: list[int] = field(default_factory=list)
    text: str = ""
    ended: str = ""
    """Why it stopped: "" while it goes on, else "max_new_tokens", "eos", "stop", "max_tokens",
    "stopped" (asked), "typing" (a person typed), "error"."""

    def next(self, session: Any) -> tuple[int, str]:
        """Choose the next token from the session's last position and say the text it adds (empty for
        a token that is half a character: its other half brings the character)."""
        token = self.sampling.choose(session.next_logits(self.model, self.row))
        self.ids.append(token)
        whole, half = decoded(self.tokenizer, self.context, self.ids)
        self.remaining -= 1
        if token in self.eos:
            self.ended = "eos"
        elif any(stop in whole for stop in self.stops):
            self.ended = "stop"
        elif self.remaining <= 0:
            self.ended = "max_new_tokens"
        elif len(session.tokens.ids) + 1 >= session.max_tokens:
            self.ended = "max_tokens"
        # Half a character waits for its other half, unless this is the last token.
        text = self.text if half and not self.ended else whole
        added = text[len(self.text) :] if text.startswith(self.text) else text[_common(text, self.text) :]
        self.text += added
        return token, added


def _common(a: str, b: str) -> int:
    n = min(len(a), len(b))
    return next((i for i in range(n) if a[i] != b[i]), n)
