"""A conversation rendered with the tokenizer's own chat template, and whose each part of the text is.

The widget analyses text, so a conversation becomes the text the model would read:
`tokenizer.apply_chat_template(messages, tokenize=False, ...)`. Its roles are ranges of that text,
[start, end) in UTF-16 code units like the token spans the view gets (text.Tokens), so the view maps
them to columns without converting: each message's content (role "system", "user", "assistant", or
whatever role the message has), and the template's own text between them (role "template"), cut
where it holds one of the tokenizer's special tokens (special: true). Every message the template
shows has a range, an empty one for empty content, so that carrying the ranges through an edit
(spans.carry, "stretch") can grow it. A generation prompt (add_generation_prompt, the last message
not the assistant's) ends the text with the assistant's open turn: an empty assistant range at the
end, whose message index is one past the last message, so that text written there becomes the
assistant's message.

Where each content lies is found by rendering the conversation a second time with a marker in place
of each content: the template's text between the markers, with the real contents put back in their
place, must give the real rendering, and then the ranges are exact whatever the contents say (a
content equal to a role's name, or to another message's). A template that rewrites what it shows
(trims it, drops a reasoning block) fails that check; each content is then looked for in order,
after the template's text that precedes it. A message the template does not show at all has no range.

Generation continues the assistant's turn: `open_assistant_turn` renders the conversation so that it
ends inside an assistant message (an empty one appended when the last message is someone else's),
so text appended to the end of the rendering falls in that message's range when carried with
"stretch", and the conversation follows what the model writes.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from .spans import Span, carry

TEMPLATE = "template"
"""The role of the template's own text (headers, separators, special tokens)."""
_MARKER = "\ue000lens-widget-{}\ue001"
_MARKERS = re.compile("\ue000lens-widget-(\\d+)\ue001")


class NoChatTemplateError(ValueError):
    """The tokenizer has no chat template to render a conversation with."""


class Transcript(NamedTuple):
    """A conversation as text, and the roles of its parts (the `roles` trait's entries)."""

    text: str
    roles: list[dict[str, Any]]


def check_template(tokenizer: Any) -> None:
    """Refuse a tokenizer with no chat template before any work is done, naming it, since a model's
    base tokenizer (no template) and its instruct one are easily confused."""
    if not getattr(tokenizer, "chat_template", None):
        name = getattr(tokenizer, "name_or_path", "") or "(no name_or_path)"
        raise NoChatTemplateError(
            f"{type(tokenizer).__name__} {name!r} has no chat template: give the tokenizer of a chat model, or set "
            "tokenizer.chat_template to a Jinja template"
        )


def check_messages(messages: Any) -> list[dict[str, Any]]:
    """A conversation the template and the widget can both read: dicts with a string role and a string
    content (the view shows the content's range; a list of content blocks has none)."""
    if not isinstance(messages, (list, tuple)):
        raise TypeError(f"messages must be a list of {{'role', 'content'}} dicts, got {type(messages).__name__}")
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise TypeError(f"message {i} must be a dict with 'role' and 'content', got {type(message).__name__}")
        for key in ("role", "content"):
            if not isinstance(message.get(key), str):
                raise TypeError(f"message {i} needs a string {key!r}, got {message.get(key)!r:.80}")
    return [dict(message) for message in messages]


def render(
    tokenizer: Any,
    messages: Sequence[dict[str, Any]],
    *,
    add_generation_prompt: bool = False,
    continue_final_message: bool = False,
) -> Transcript:
    """The conversation as the template renders it, with the roles of its parts (module docstring)."""
    check_template(tokenizer)
    messages = check_messages(messages)
    options = {"add_generation_prompt": add_generation_prompt, "continue_final_message": continue_final_message}
    text = tokenizer.apply_chat_template(messages, tokenize=False, **options)
    marked = [{**m, "content": _MARKER.format(i)} for i, m in enumerate(messages)]
    skeleton = tokenizer.apply_chat_template(marked, tokenize=False, **options) if messages else ""
    found = _contents(text, skeleton, [m["content"] for m in messages])
    places = [(messages[i]["role"], start, end, i) for i, (start, end) in found]
    if add_generation_prompt and not continue_final_message and (not messages or messages[-1]["role"] != "assistant"):
        places.append(("assistant", len(text), len(text), len(messages)))  # the open turn the prompt asks for
    return Transcript(text, roles_of(text, places, special_tokens(tokenizer)))


def open_assistant_turn(tokenizer: Any, messages: Sequence[dict[str, Any]]) -> Transcript:
    """The conversation rendered to end inside an assistant message, for generation to continue: the
    last message when it is the assistant's, else an empty one appended. The caller keeps the messages
    as this returns them in the roles ("message" indexes `with_assistant_turn(messages)`)."""
    return render(tokenizer, with_assistant_turn(messages), continue_final_message=True)


def with_assistant_turn(messages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The messages, ending with an assistant message (an empty one appended where needed)."""
    messages = check_messages(messages)
    if messages and messages[-1]["role"] == "assistant":
        return messages
    return [*messages, {"role": "assistant", "content": ""}]


def special_tokens(tokenizer: Any) -> list[str]:
    """The tokenizer's special tokens as text, longest first (so that one found inside another's text
    does not cut it)."""
    found = set(getattr(tokenizer, "all_special_tokens", []) or [])
    added = getattr(tokenizer, "added_tokens_decoder", {}) or {}
    found.update(t.content for t in added.values() if getattr(t, "special", False))
    return sorted((t for t in found if t), key=lambda t: (-len(t), t))


def roles_of(text: str, places: list[tuple[str, int, int, int]], specials: Sequence[str]) -> list[dict[str, Any]]:
    """The roles of `text`: each message's range (role, start, end, message index, in code points),
    and the template's text around them, cut at special tokens; ordered, in UTF-16 units."""
    places = sorted(places, key=lambda p: (p[1], p[2]))
    units = _Units(text)
    pattern = re.compile("|".join(map(re.escape, specials))) if specials else None
    out: list[dict[str, Any]] = []

    def template(start: int, end: int) -> None:
        at = start
        for match in pattern.finditer(text, start, end) if pattern else ():
            if match.start() > at:
                out.append(_role(TEMPLATE, units.of(at), units.of(match.start()), False, None))
            out.append(_role(TEMPLATE, units.of(match.start()), units.of(match.end()), True, None))
            at = match.end()
        if end > at:
            out.append(_role(TEMPLATE, units.of(at), units.of(end), False, None))

    at = 0
    for role, start, end, index in places:
        template(at, start)
        out.append(_role(role, units.of(start), units.of(end), False, index))
        at = end
    template(at, len(text))
    return out


def carry_roles(roles: list[dict[str, Any]], old: str, new: str, specials: Sequence[str]) -> list[dict[str, Any]]:
    """The roles after an edit of the text: each message's range stretched through it (spans.carry:
    typing inside or at the end of a message stays that message's; an emptied message keeps an empty
    range), the template's text found again around them."""
    messages = [r for r in roles if r.get("message") is not None]
    spans: list[Span] = [(int(r["start"]), int(r["end"])) for r in messages]
    moved = carry(spans, old, new, "stretch")
    units = _Units(new)
    places = [
        (str(r["role"]), units.point(start), units.point(end), int(r["message"]))
        for r, (start, end) in zip(messages, moved, strict=True)
    ]
    return roles_of(new, places, specials)


def following(messages: list[dict[str, Any]], roles: list[dict[str, Any]], text: str) -> list[dict[str, Any]]:
    """The messages with each content read from its range of `text` (what was typed there); a message
    with no range keeps its content. The open turn after a generation prompt (message index one past
    the last) becomes a message once something is written in it."""
    units = _Units(text)
    out = [dict(m) for m in messages]
    for r in roles:
        index = r.get("message")
        content = text[units.point(r["start"]) : units.point(r["end"])]
        if index is not None and 0 <= index < len(out):
            out[index]["content"] = content
        elif index == len(out) and content:
            out.append({"role": r["role"], "content": content})
    return out


def token_roles(roles: Sequence[dict[str, Any]], spans: np.ndarray) -> list[int]:
    """For each token span [start, end) (UTF-16 units), the index of the role range that covers most
    of it (the first of equals), or -1 (no range). A token with no text of its own (an added BOS, the
    first half of a character the model wrote) takes the range it stands in: the last that starts at or
    before it, if it has not ended there (or ends the text). js/roles.ts draws the band by the same rule."""
    out: list[int] = []
    first = 0
    starts = [r["start"] for r in roles]
    for start, end in np.asarray(spans, dtype=np.int64).reshape(-1, 2).tolist():
        if end == start:
            i = bisect.bisect_right(starts, start) - 1
            inside = i >= 0 and (start < roles[i]["end"] or (start == roles[i]["end"] and i == len(roles) - 1))
            out.append(i if inside else -1)
            continue
        while first < len(roles) and roles[first]["end"] <= start:
            first += 1
        best, most = -1, 0
        k = first
        while k < len(roles) and roles[k]["start"] < end:
            overlap = min(end, roles[k]["end"]) - max(start, roles[k]["start"])
            if overlap > most:
                best, most = k, overlap
            k += 1
        out.append(best)
    return out


def _role(role: str, start: int, end: int, special: bool, message: int | None) -> dict[str, Any]:
    return {"role": role, "start": start, "end": end, "special": special, "message": message}


def _contents(text: str, skeleton: str, contents: list[str]) -> list[tuple[int, Span]]:
    """Where each shown message's content lies in `text` (code points), by message index: from the
    skeleton (the rendering with markers) when its template text and the contents give `text`, else
    looked for in order after the template text that precedes each."""
    markers = list(_MARKERS.finditer(skeleton))
    order = [int(m.group(1)) for m in markers]
    gaps = [
        skeleton[a:b]
        for a, b in zip([0, *(m.end() for m in markers)], [*(m.start() for m in markers), None], strict=True)
    ]
    if len(set(order)) == len(order) and all(0 <= i < len(contents) for i in order):
        rebuilt, at, exact = gaps[0], len(gaps[0]), []
        for i, gap in zip(order, gaps[1:], strict=True):
            exact.append((i, (at, at + len(contents[i]))))
            rebuilt += contents[i] + gap
            at += len(contents[i]) + len(gap)
        if rebuilt == text:
            return exact
    found: list[tuple[int, Span]] = []
    at = 0
    seen: set[int] = set()
    for i, gap in zip(order, gaps, strict=False):
        if i in seen or not 0 <= i < len(contents):
            continue
        seen.add(i)
        at = at + len(gap) if text.startswith(gap, at) else at
        content = contents[i]
        for wanted in dict.fromkeys((content, content.strip())):
            start = at if text.startswith(wanted, at) else text.find(wanted, at) if wanted else -1
            if start >= 0:
                found.append((i, (start, start + len(wanted))))
                at = start + len(wanted)
                break
    return found


class _Units:
    """Code-point and UTF-16 positions of one text, both ways."""

    def __init__(self, text: str) -> None:
        self.ascii = text.isascii()
        if not self.ascii:
            wide = np.fromiter((ord(c) > 0xFFFF for c in text), dtype=np.int64, count=len(text))
            self.offsets = np.concatenate([[0], np.cumsum(1 + wide)])

    def of(self, point: int) -> int:
        """The UTF-16 offset of a code-point offset."""
        return point if self.ascii else int(self.offsets[point])

    def point(self, unit: int) -> int:
        """The code-point offset of a UTF-16 offset (one inside a surrogate pair: the pair's end)."""
        return unit if self.ascii else int(np.searchsorted(self.offsets, unit, side="left"))
