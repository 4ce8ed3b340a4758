"""column.py: the selected column in full, for the trajectory panel."""

from __future__ import annotations

import numpy as np
import pytest
from test_grid import random_tuned_lens
from tiny_models import tiny_model, tiny_tokenizer

from lens_widget import LensSession

VOCAB = 400
TEXT = "The dog sat on the mat."


def test_the_column_follows_pins_through_every_lens_and_searches_the_vocabulary() -> None:
    model = tiny_model("llama", vocab_size=VOCAB)
    s = LensSession(model, tiny_tokenizer(VOCAB), random_tuned_lens(model), top_k=5)
    s.set_text(TEXT)
    s.set_lens(None)  # read through both lenses now: the column has a curve for each
    detail = s.column(3)
    assert detail.curves == ("a/logit", "a/tuned")
    _, top_ids, _ = s.grid_arrays()
    assert {line.ids[0] for line in detail.lines} == set(top_ids[:, 3, 0].tolist())  # top-1 at some row
    for line in detail.lines:
        row = list(top_ids[:, 3, 0]).index(line.ids[0])
        assert line.rank["a/logit"][row] == 1
    s.set_pins([s.make_pin("dog")])
    pinned = s.column(3).lines
    assert [line.label for line in pinned] == ["dog"]
    np.testing.assert_allclose(pinned[0].logp["a/logit"], s._tracks[0].cells.pins[0, :, 3], rtol=1e-4, atol=1e-5)
    found = s.column(3, "th").found
    assert found and all(f.text.lstrip(" ").lower().startswith("th") for f in found)
    assert [f.probability for f in found] == sorted((f.probability for f in found), reverse=True)
    with pytest.raises(ValueError, match="column must be"):
        s.column(99)
