"""Ranges of the text that say something about it (what the model wrote, whose message a part is),
carried through an edit of the text.

The ranges are [start, end) in UTF-16 code units, as the token spans the view gets (text.Tokens), so
the view maps them to columns without converting. An edit is seen as its one changed region (the
longest common prefix and suffix of the two texts): ranges before it stay, ranges after it move by the
change in length, and a range the edit touches either keeps what is left of it outside the edit
("clip": the model did not write what the person typed) or grows and shrinks with it ("stretch": a
message edited inside stays that message).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

Span = tuple[int, int]


def utf16_length(text: str) -> int:
    """The text's length in UTF-16 code units (a character beyond the BMP counts two)."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _units(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-16-le", "surrogatepass"), dtype=np.uint16)


def changed_region(old: str, new: str) -> tuple[int, int, int]:
    """(start, old_end, new_end) in UTF-16 units: old[start:old_end] became new[start:new_end]."""
    a, b = _units(old), _units(new)
    n = min(len(a), len(b))
    differs = np.flatnonzero(a[:n] != b[:n])
    prefix = int(differs[0]) if len(differs) else n
    room = n - prefix  # the suffix may not overlap the prefix in either text
    tail_differs = np.flatnonzero(a[len(a) - room :][::-1] != b[len(b) - room :][::-1]) if room else np.zeros(0)
    suffix = int(tail_differs[0]) if len(tail_differs) else room
    return prefix, len(a) - suffix, len(b) - suffix


def carry(spans: list[Span], old: str, new: str, inside: Literal["clip", "stretch"]) -> list[Span]:
    """`spans` (ordered, disjoint) over `old`, moved onto `new` (module docstring). What is left of a
    range outside the edit stays with it. Clipping drops what it empties. Stretching gives the new text
    to one range, the one the edit starts in (for a pure insertion: an empty range there first, else
    the one that ends there, so typing at the end of a message extends it), and keeps empty ranges,
    which can grow that way: an empty assistant message at the end of a chat takes the model's reply."""
    if old == new:
        return list(spans)
    start, old_end, new_end = changed_region(old, new)
    shift = new_end - old_end
    taker = _taker(spans, start, old_end) if inside == "stretch" else None
    out: list[Span] = []
    for index, (a, b) in enumerate(spans):
        left, right = (a, min(b, start)), (max(a, old_end) + shift, b + shift)
        if index == taker:
            out.append((min(a, start), right[1] if b > old_end else new_end))
        elif inside == "clip":
            out.extend(piece for piece in (left, right) if piece[1] > piece[0])
        elif left[1] > left[0] or right[1] > right[0]:
            out.append(left if left[1] > left[0] else right)
        else:  # empty, or all of it replaced: an empty range where it stood
            at = a if a < start else (a + shift if a > old_end else new_end)
            out.append((at, at))
    return out


def _taker(spans: list[Span], start: int, old_end: int) -> int | None:
    """The range that takes an edit's new text when stretching (carry)."""
    if start == old_end:
        for want in (lambda a, b: a == b == start, lambda a, b: b == start):
            found = next((i for i, (a, b) in enumerate(spans) if want(a, b)), None)
            if found is not None:
                return found
    return next((i for i, (a, b) in enumerate(spans) if a <= start < b), None)
