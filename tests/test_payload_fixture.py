"""The recorded payload stream decodes in Python to the state recorded with it (the TypeScript
decoder is held to the same file in js/payload.test.ts)."""

from __future__ import annotations

import json
import math

import numpy as np
from payload_fixture import FIXTURE, from_jsonable

from lens_widget.payload import apply_update, decode_vocabulary


def test_the_recorded_stream_rebuilds_the_recorded_state() -> None:
    fixture = json.loads(FIXTURE.read_text())
    state = None
    kinds = []
    for payload in from_jsonable(fixture["updates"]):
        kinds.append(payload["header"]["kind"])
        state = apply_update(state, payload)
    assert kinds == ["full", "columns", "rows", "columns", "columns"]
    expected = fixture["expected"]
    assert state is not None and state.rows == expected["rows"] and state.n_tokens == expected["n_tokens"]
    stats = np.array([math.nan if x == "NaN" else x for x in expected["stats"]], dtype=np.float32)
    np.testing.assert_array_equal(state.grids[0].stats.ravel(), stats)
    assert state.grids[0].top_ids.ravel().tolist() == expected["top_ids"]
    assert state.token_spans.ravel().tolist() == expected["token_spans"]
    assert len(decode_vocabulary(from_jsonable(fixture["vocabulary"]))) == 400
