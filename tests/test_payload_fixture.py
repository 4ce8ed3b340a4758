"""The recorded payload streams decode in Python to the states recorded with them (the TypeScript decoder
is held to the same files in js/payload.test.ts)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from payload_fixture import FIXTURE, FIXTURE_AB, from_jsonable

from lens_widget.payload import VERSION, ViewState, apply_update, decode_vocabulary
from lens_widget.statistics import DIFF_STATISTICS, STATISTICS


def _floats(values: list[float | str]) -> np.ndarray:
    return np.array([math.nan if x == "NaN" else x for x in values], dtype=np.float32)


def _replay(path: Path) -> tuple[dict[str, Any], ViewState, list[str]]:
    fixture = json.loads(path.read_text())
    state = None
    kinds = []
    for payload in from_jsonable(fixture["updates"]):
        assert payload["header"]["version"] == VERSION
        kinds.append(payload["header"]["kind"])
        state = apply_update(state, payload)
    assert state is not None
    return fixture, state, kinds


def _assert_state(state: ViewState, expected: dict[str, Any]) -> None:
    assert state.rows == expected["rows"] and state.n_tokens == expected["n_tokens"]
    assert state.header["row_labels"] == expected["row_labels"]
    assert len(state.grids) == len(expected["grids"])
    for meta, grid, want in zip(state.header["grids"], state.grids, expected["grids"], strict=True):
        assert meta["name"] == want["name"]
        np.testing.assert_array_equal(grid.stats.ravel(), _floats(want["stats"]))
        assert grid.top_ids.ravel().tolist() == want["top_ids"]
        np.testing.assert_array_equal(grid.top_probs.ravel(), _floats(want["top_probs"]))
        assert grid.pins is not None
        np.testing.assert_array_equal(grid.pins.ravel(), _floats(want["pins"]))
    assert state.header["pins"] == expected["pin_labels"] and len(expected["pin_labels"]) == 2
    assert state.header["diff"] == expected["diff_names"]
    if expected["diff"] is None:
        assert state.diff is None
    else:
        assert state.diff is not None
        np.testing.assert_array_equal(state.diff.ravel(), _floats(expected["diff"]))
    assert state.token_ids.tolist() == expected["token_ids"]
    assert state.token_spans.ravel().tolist() == expected["token_spans"]
    pending = np.zeros(state.n_tokens, bool) if state.pending is None else state.pending
    assert pending.astype(int).tolist() == expected["pending"]


@pytest.mark.parametrize("path", [FIXTURE, FIXTURE_AB], ids=["one model", "A/B"])
def test_the_recorded_stream_rebuilds_the_recorded_state(path: Path) -> None:
    fixture, state, _ = _replay(path)
    _assert_state(state, fixture["expected"])
    vocabulary = from_jsonable(fixture["vocabulary"])
    assert len(decode_vocabulary(vocabulary)) == 400
    assert [info["name"] for info in vocabulary["statistics"]] == [*STATISTICS, *DIFF_STATISTICS]


def test_the_one_model_stream_has_every_kind_of_update_and_no_diff() -> None:
    _, state, kinds = _replay(FIXTURE)
    assert kinds == ["full", "columns", "rows", "columns", "columns", "cells", "columns"]
    assert len(state.grids) == 1 and state.header["diff"] == [] and state.diff is None


def test_the_ab_stream_carries_two_different_models_and_their_diff() -> None:
    """Recorded from one A/B session on two different tiny models: the diff is not trivially zero, and
    each grid is its own model's."""
    _, state, kinds = _replay(FIXTURE_AB)
    assert kinds == ["full", "columns", "rows", "columns", "columns", "cells"]
    assert state.pending is not None and 0 < state.pending.sum() < state.n_tokens
    assert len(state.grids) == 2 and state.header["diff"] == list(DIFF_STATISTICS)
    assert state.diff is not None and state.diff.shape == (len(DIFF_STATISTICS), len(state.rows), state.n_tokens)
    done = ~state.pending  # the pending columns' placeholders are NaN
    kl_ab, kl_ba, js, agree = (state.diff[DIFF_STATISTICS.index(name)][:, done] for name in DIFF_STATISTICS)
    assert np.isnan(state.diff[:, :, state.pending]).all()
    assert (kl_ab > 0).any() and (kl_ba > 0).any() and (js > 0).any()
    tolerance = 2**-10  # float16 rounding of the sent values
    assert (js >= 0).all() and (js <= math.log(2) * (1 + tolerance)).all()
    assert set(np.unique(agree).tolist()) <= {0.0, 1.0}
    top1_a, top1_b = state.grids[0].top_ids[:, done, 0], state.grids[1].top_ids[:, done, 0]
    np.testing.assert_array_equal(agree, (top1_a == top1_b).astype(np.float32))
    assert not np.array_equal(state.grids[0].stats, state.grids[1].stats)
