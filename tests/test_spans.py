"""Ranges of the text carried through edits, in UTF-16 units."""

from __future__ import annotations

import random

import pytest

from lens_widget.spans import carry, changed_region, utf16_length


def test_the_changed_region_is_in_utf16_units() -> None:
    assert changed_region("abc", "abc") == (3, 3, 3)
    assert changed_region("Hello world", "Hello brave world") == (6, 6, 12)
    assert changed_region("aaa", "aa") == (2, 3, 2)  # the suffix never overlaps the prefix
    assert changed_region("🙂x", "🙂yx") == (2, 2, 3)  # the emoji is two units
    assert utf16_length("🙂x") == 3


def test_clip_keeps_what_is_left_outside_the_edit() -> None:
    old, new = "Paris is the capital", "Paris was the capital"
    spans = [(0, 5), (5, 12), (12, 20)]  # "Paris", " is the", " capital"
    assert carry(spans, old, new, "clip") == [(0, 5), (5, 6), (8, 13), (13, 21)]
    # "is" became "was": the edit is "i" → "wa" (the "s" is common to both), so only the "s" stays.
    assert carry([(6, 8)], old, new, "clip") == [(8, 9)]
    assert carry([(6, 8)], old, "Paris be the capital", "clip") == []
    assert carry(spans, old, old, "clip") == spans


def test_stretch_gives_the_edit_to_the_range_it_falls_in() -> None:
    old = "<u>Hi</u><a>Yo</a>"
    spans = [(3, 5), (12, 14)]  # "Hi", "Yo"
    assert carry(spans, old, "<u>Hi there</u><a>Yo</a>", "stretch") == [(3, 11), (18, 20)]  # typed at the end
    assert carry(spans, old, "<u>H</u><a>Yo</a>", "stretch") == [(3, 4), (11, 13)]
    assert carry(spans, old, "<u></u><a>Yo</a>", "stretch") == [(3, 3), (10, 12)]  # emptied: kept, empty
    assert carry([(0, 4), (4, 4)], "<a>:", "<a>:Hello", "stretch") == [(0, 4), (4, 9)]  # an empty reply grows
    adjacent = [(0, 5), (5, 10)]
    assert carry(adjacent, "aaaaabbbbb", "aaaaaXYZbbb", "stretch") == [(0, 5), (5, 11)]


@pytest.mark.parametrize("inside", ["clip", "stretch"])
def test_carried_ranges_stay_ordered_disjoint_and_inside_the_text(inside: str) -> None:
    rng = random.Random(0)
    text = "The quick 🙂 brown fox jumps over the lazy dog"
    spans = [(0, 4), (4, 10), (10, 13), (20, 30), (30, utf16_length(text))]
    for _ in range(300):
        i = rng.randrange(len(text) + 1)
        j = min(len(text), i + rng.randrange(4))
        new = text[:i] + rng.choice(["", "x", "🙂", "new words"]) + text[j:]
        spans = carry(spans, text, new, inside)  # type: ignore[arg-type]
        text = new
        ends = [x for span in spans for x in span]
        assert ends == sorted(ends) and all(b > a or (inside == "stretch" and b == a) for a, b in spans)
        assert not spans or spans[-1][1] <= utf16_length(text)
