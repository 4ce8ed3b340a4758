"""The payload: encode → decode round trips, deltas rebuild the full state, bad payloads are refused."""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tiny_models import tiny_model, tiny_tokenizer

from lens_widget import payload as payload_module
from lens_widget.cells import Cells
from lens_widget.payload import (
    F16_MAX,
    PayloadError,
    apply_update,
    decode_update,
    decode_vocabulary,
    encode_update,
    encode_vocabulary,
    payload_of,
    payload_size,
)
from lens_widget.session import LensSession
from lens_widget.statistics import DIFF_STATISTICS, STATISTIC_INFO, STATISTICS

S = len(STATISTICS)
RANK = STATISTICS.index("rank")
ROOT = Path(__file__).resolve().parents[1]
CASES = json.loads((ROOT / "js" / "fixtures" / "payload_cases.json").read_text())
"""Payloads both decoders must judge alike; js/payload.test.ts runs the same cases."""


@dataclass(frozen=True, kw_only=True)
class Block(Cells):
    """One model's cells in an update, with the patch of the column before them."""

    patch: np.ndarray | None = None


def block(rows: int, cols: int, k: int, vocab: int, seed: int = 0, patch: bool = False) -> Block:
    rng = np.random.default_rng(seed)
    stats = rng.uniform(0, 10, (S, rows, cols)).astype(np.float32)
    stats[STATISTICS.index("cross_entropy"), :, -1:] = np.nan
    top_ids = rng.integers(0, vocab, (rows, cols, k))
    top_probs = rng.dirichlet(np.ones(k), (rows, cols)).astype(np.float32)
    return Block(stats, top_ids, top_probs, patch=rng.uniform(0, 5, (2, rows)).astype(np.float32) if patch else None)


def encode(
    grid: Block,
    vocab: int,
    *,
    kind: str = "full",
    col_start: int = 0,
    rows: list[int] | None = None,
    grid_b: Block | None = None,
    diff: np.ndarray | None = None,
) -> dict:
    R, C, k = grid.top_ids.shape
    grids = [grid] if grid_b is None else [grid, grid_b]
    rows = rows if rows is not None else list(range(R))
    return encode_update(
        kind=kind,
        rows=rows,
        row_labels=[str(r) for r in rows],
        num_layers=max(rows),
        col_start=col_start,
        n_tokens=col_start + C,
        total_tokens=col_start + C,
        top_k=k,
        lens="logit",
        vocab_size=vocab,
        grids=grids,
        names=["m"] * len(grids),
        patches=[g.patch for g in grids],
        token_ids=np.arange(C),
        token_spans=np.stack([np.arange(C), np.arange(C) + 1], 1),
        diff=diff,
    )


@pytest.mark.parametrize(("vocab", "ids_kind"), [(50304, "uint16"), (65536, "uint16"), (128256, "table")])
def test_round_trip_within_float16_and_ids_exact(vocab: int, ids_kind: str) -> None:
    grid = block(4, 7, 10, vocab)
    payload = encode(grid, vocab)
    assert payload["header"]["grids"][0]["ids"] == ids_kind
    decoded = decode_update(payload)
    out = decoded.grids[0]
    np.testing.assert_allclose(out.stats, grid.stats, rtol=2**-11, equal_nan=True)
    assert np.isnan(out.stats[STATISTICS.index("cross_entropy"), :, -1]).all()
    assert np.array_equal(out.top_ids, grid.top_ids)
    np.testing.assert_allclose(out.top_probs, grid.top_probs, rtol=2**-11, atol=6e-8)
    assert decoded.token_ids.tolist() == list(range(7))


def test_header_is_plain_json_and_buffers_are_bytes() -> None:
    payload = encode(block(2, 3, 4, 100), 100)
    json.dumps(payload["header"])
    assert all(isinstance(v, bytes) for v in payload["grids"][0].values())
    assert payload_size(payload) == len(json.dumps(payload["header"], separators=(",", ":"))) + sum(
        len(v) for v in payload["grids"][0].values()
    ) + len(payload["token_ids"]) + len(payload["token_spans"])
    assert payload["header"]["diff"] == [] and payload["diff"] == b""


def _diff(rows: int, cols: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 3, (len(DIFF_STATISTICS), rows, cols)).astype(np.float32)


def test_an_ab_update_round_trips_its_diff_within_float16() -> None:
    diff = _diff(2, 3)
    payload = encode(block(2, 3, 4, 100), 100, grid_b=block(2, 3, 4, 100, seed=1), diff=diff)
    assert payload["header"]["diff"] == list(DIFF_STATISTICS)
    assert len(payload["diff"]) == diff.size * 2
    assert payload_size(payload) == len(json.dumps(payload["header"], separators=(",", ":"))) + sum(
        len(v) for grid in payload["grids"] for v in grid.values()
    ) + len(payload["token_ids"]) + len(payload["token_spans"]) + len(payload["diff"])
    state = apply_update(None, payload)
    assert state.diff is not None and state.diff.dtype == np.float32
    np.testing.assert_allclose(state.diff, diff, rtol=2**-11)


def test_a_diff_needs_exactly_two_grids_to_encode() -> None:
    with pytest.raises(PayloadError, match="exactly two grids"):
        encode(block(2, 3, 4, 100), 100, diff=_diff(2, 3))


def test_ab_deltas_splice_and_merge_the_diff_as_the_statistics() -> None:
    """The diff of a state rebuilt from deltas is the one a full update of the same cells carries."""
    full_diff, cols_diff, rows_diff = _diff(2, 5, 0), _diff(2, 3, 1), _diff(1, 5, 2)
    a, b = block(2, 5, 3, 100, 0), block(2, 5, 3, 100, 1)
    state = apply_update(None, encode(a, 100, rows=[0, 2], grid_b=b, diff=full_diff))
    a2, b2 = block(2, 3, 3, 100, 2, patch=True), block(2, 3, 3, 100, 3, patch=True)
    state = apply_update(state, encode(a2, 100, kind="columns", col_start=2, rows=[0, 2], grid_b=b2, diff=cols_diff))
    f16 = lambda x: x.astype(np.float16).astype(np.float32)  # noqa: E731
    expected = np.concatenate([f16(full_diff[:, :, :2]), f16(cols_diff)], axis=2)
    np.testing.assert_array_equal(state.diff, expected)
    a3, b3 = block(1, 5, 3, 100, 4), block(1, 5, 3, 100, 5)
    state = apply_update(state, encode(a3, 100, kind="rows", rows=[1], grid_b=b3, diff=rows_diff))
    assert state.rows == [0, 1, 2]
    np.testing.assert_array_equal(state.diff, np.stack([expected[:, 0], f16(rows_diff)[:, 0], expected[:, 1]], axis=1))


def test_more_distinct_ids_than_uint16_fall_back_to_uint32() -> None:
    vocab = 200_000
    grid = block(1, 7000, 10, vocab)
    grid = Block(grid.stats, np.arange(70_000).reshape(1, 7000, 10), grid.top_probs)
    payload = encode(grid, vocab)
    assert payload["header"]["grids"][0]["ids"] == "uint32"
    assert np.array_equal(decode_update(payload).grids[0].top_ids, grid.top_ids)


def test_ranks_above_float16_range_are_sent_as_its_maximum() -> None:
    grid = block(1, 2, 3, 300_000)
    grid.stats[RANK] = [[5.0, 200_000.0]]
    out = decode_update(encode(grid, 300_000)).grids[0]
    assert out.stats[RANK].tolist() == [[5.0, F16_MAX]]


def test_a_columns_delta_on_the_previous_state_equals_the_full_state() -> None:
    tokenizer = tiny_tokenizer(400)
    model = tiny_model("llama", vocab_size=400)
    live = LensSession(model, tokenizer, layer_stride=2)
    state = apply_update(None, payload_of(live.set_text("Paris is the capital")))
    for text in ["Paris is the capital of France", "Paris was the capital", "Paris was", "Berlin 🙂 was"]:
        state = apply_update(state, payload_of(live.set_text(text)))
        full = apply_update(None, payload_of(live.full_update()))
        assert state.rows == full.rows and state.n_tokens == full.n_tokens
        np.testing.assert_array_equal(state.grids[0].stats, full.grids[0].stats)
        np.testing.assert_array_equal(state.grids[0].top_ids, full.grids[0].top_ids)
        np.testing.assert_array_equal(state.grids[0].top_probs, full.grids[0].top_probs)
        np.testing.assert_array_equal(state.token_spans, full.token_spans)
        assert state.header["row_labels"] == full.header["row_labels"]


def test_a_rows_update_joins_rows_in_layer_order() -> None:
    tokenizer = tiny_tokenizer(400)
    live = LensSession(tiny_model("gpt2", vocab_size=400, num_hidden_layers=4), tokenizer, layer_stride=4)
    state = apply_update(None, payload_of(live.set_text("The quick fox")))
    assert state.rows == [0, 4] and state.header["row_labels"] == ["0", "output"]
    state = apply_update(state, payload_of(live.set_layer_stride(1)))
    assert state.rows == [0, 1, 2, 3, 4] and state.header["row_labels"] == ["0", "1", "2", "3", "output"]
    full = apply_update(None, payload_of(live.full_update()))
    np.testing.assert_array_equal(state.grids[0].stats, full.grids[0].stats)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda p: p["grids"][0].update(stats=p["grids"][0]["stats"][:-2]), "stats: .* bytes, expected"),
        (lambda p: p["header"].update(version=99), "payload version 99"),
        (lambda p: p.pop("token_ids"), "token_ids must be a binary buffer"),
        (lambda p: p["header"].update(kind="sideways"), "unknown update kind"),
        (lambda p: p["header"].update(col_start=99), "col_start is after n_tokens"),
    ],
)
def test_malformed_payloads_are_refused_with_a_payload_error(mutate: object, message: str) -> None:
    payload = encode(block(2, 3, 4, 100), 100)
    mutate(payload)  # type: ignore[operator]
    with pytest.raises(PayloadError, match=message):
        apply_update(None, payload)


def test_a_delta_without_a_state_is_refused() -> None:
    payload = encode(block(2, 3, 4, 100), 100, kind="columns", col_start=2)
    with pytest.raises(PayloadError, match="needs a state to apply to"):
        apply_update(None, payload)


def test_vocabulary_round_trip_keeps_every_string() -> None:
    strings = ["", " the", "\n", "東京", "🙂", "\ufffd", "<5>"]
    assert decode_vocabulary(encode_vocabulary(strings)) == strings


def test_session_vocabulary_has_the_models_size() -> None:
    tokenizer = tiny_tokenizer(400)
    model = tiny_model("gpt2", vocab_size=410)  # a head larger than the tokenizer, as in Pythia
    session = LensSession(model, tokenizer)
    strings = session.token_strings()
    assert len(strings) == 410 and strings[405] == "<405>"
    assert strings[tokenizer(" the").input_ids[0]] == " the"


# --- the cases shared with js/payload.test.ts: both decoders must refuse and accept the same inputs ---


def _revive(value: Any) -> Any:
    """Fixture JSON → payload: {"u8" | "u16" | "u32": [values]} becomes little-endian bytes."""
    if isinstance(value, dict):
        if len(value) == 1 and next(iter(value)) in ("u8", "u16", "u32"):
            ((kind, values),) = value.items()
            return np.asarray(values, dtype={"u8": "<u1", "u16": "<u2", "u32": "<u4"}[kind]).tobytes()
        return {k: _revive(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_revive(v) for v in value]
    return value


def _case_payload(base: str, mutations: list[dict[str, Any]]) -> Any:
    """A fixture payload with the case's mutations applied ({set: path, to: value} / {delete: path})."""
    root: Any = {"payload": copy.deepcopy(CASES["payloads"][base])}
    for mutation in mutations:
        path = ["payload", *mutation.get("set", mutation.get("delete", []))]
        parent = root
        for key in path[:-1]:
            parent = parent[key]
        if "delete" in mutation:
            del parent[path[-1]]
        elif isinstance(parent, list) and path[-1] == len(parent):
            parent.append(copy.deepcopy(mutation["to"]))
        else:
            parent[path[-1]] = copy.deepcopy(mutation["to"])
    return _revive(root["payload"])


@pytest.mark.parametrize("case", CASES["cases"], ids=[case["name"] for case in CASES["cases"]])
def test_shared_payload_cases_are_judged_as_the_typescript_decoder_judges_them(case: dict[str, Any]) -> None:
    state = None
    for base in case["state"]:  # a payload's name, or {payload, mutations}
        name, mutations = (base, []) if isinstance(base, str) else (base["payload"], base["mutations"])
        state = apply_update(state, _case_payload(name, mutations))
    payload = _case_payload(case["payload"], case["mutations"])
    if case["expected"] == "refused":
        with pytest.raises(PayloadError, match=re.escape(case["error"])):
            apply_update(state, payload)
        return
    assert case["expected"] == "accepted"
    out = apply_update(state, payload)
    assert out.rows == case["rows"] and out.n_tokens == case["n_tokens"]
    assert type(out.n_tokens) is int and all(type(r) is int for r in out.rows)
    assert out.header["rows"] == out.rows and len(out.header["row_labels"]) == len(out.rows)
    R, T, k = len(out.rows), out.n_tokens, out.header["top_k"]
    assert out.token_ids.shape == (T,) and out.token_spans.shape == (T, 2)
    for grid in out.grids:
        assert grid.stats.shape == (len(out.header["statistics"]), R, T)
        assert grid.top_ids.shape == grid.top_probs.shape == (R, T, k)
    if "top_ids" in case:
        assert out.grids[0].top_ids.ravel().tolist() == case["top_ids"]
    if "notice" in case:
        assert out.header["notice"] == case["notice"]
    for grid in out.grids:
        assert grid.pins is not None and grid.pins.shape == (len(out.header["pins"]), R, T)
    if "pins" in case:
        np.testing.assert_array_equal(out.grids[0].pins.ravel(), np.array(case["pins"], np.float32))
    if "pending" in case:
        pending = np.zeros(T, bool) if out.pending is None else out.pending
        assert pending.astype(int).tolist() == case["pending"]
    if out.header["diff"]:
        assert out.diff is not None and out.diff.shape == (len(out.header["diff"]), R, T)
    else:
        assert out.diff is None
    if "diff" in case:
        expected = np.array([np.nan if x == "NaN" else x for x in case["diff"]], dtype=np.float32)
        assert out.diff is not None
        np.testing.assert_array_equal(out.diff.ravel(), expected)


def test_shared_payload_cases_cover_what_the_issue_lists() -> None:
    names = {case["name"] for case in CASES["cases"]}
    assert len(names) == len(CASES["cases"])
    for name in [
        "header is a list",
        "payload is a list",
        "negative col_start",
        "col_start > n_tokens",
        "rows with 1.5",
        'rows with "1"',
        "rows with true",
        "rows with a negative",
        "rows with duplicates",
        "rows > 2 × num_layers",
        "rows update with a sub-layer row joins by depth",
        "n_tokens 3.5",
        "top_k 0",
        "unknown kind",
        "version 1",
        "header grids empty, one grid buffer",
        "stats one value short",
        "columns update for rows the state does not have",
        "columns update starting past the state's columns",
        # payload version 2: the A/B diff
        "header.diff with one grid",
        "header.diff not strings",
        "diff buffer one value short",
        "diff buffer not empty with header.diff []",
        "A/B delta without a diff on an A/B state",
        "A/B full update",
        "A/B columns update splices the diff, which has no patch",
        "A/B rows update merges the diff's rows",
    ]:
        assert name in names
    assert all(CASES["payloads"][name]["header"]["version"] == payload_module.VERSION for name in CASES["payloads"])
    assert {case["expected"] for case in CASES["cases"]} == {"refused", "accepted"}


def test_decoded_header_is_a_normalised_copy() -> None:
    """Whole floats become ints (the state's n_tokens indexes arrays); the caller's dict is not touched."""
    payload = _case_payload("full", [{"set": ["header", "n_tokens"], "to": 3.0}])
    decoded = decode_update(payload)
    assert type(decoded.header["n_tokens"]) is int and type(payload["header"]["n_tokens"]) is float


def test_buffers_may_be_any_bytes_like_object() -> None:
    payload = encode(block(2, 3, 4, 100), 100)
    payload["token_ids"] = bytearray(payload["token_ids"])
    payload["grids"][0]["stats"] = memoryview(payload["grids"][0]["stats"])
    assert apply_update(None, payload).n_tokens == 3


def test_the_wire_constants_are_the_shared_files() -> None:
    """Both decoders read constants.json (js/payload.ts at build time), so they cannot disagree; this
    holds the file to what the format needs."""
    assert payload_module.F16_MAX == float(np.finfo(np.float16).max)
    assert payload_module.KINDS == ("full", "columns", "rows", "cells") and payload_module.VERSION == 4
    assert all(name in STATISTICS for name in payload_module.PATCHED)


def test_vocabulary_carries_every_statistics_display_info() -> None:
    """What js/payload.ts's StatisticInfo says a view gets: every statistic, with its scale kind."""
    info = encode_vocabulary(["a"])["statistics"]
    assert [entry["name"] for entry in info] == [*STATISTICS, *DIFF_STATISTICS]
    json.dumps(info)
    for entry in info:
        assert set(entry) == {"name", "label", "units", "lower_is_better", "scale", "bound"}
        assert isinstance(entry["lower_is_better"], bool)
        assert entry["scale"] in ("sequential", "divergence", "probability", "rank")
        assert entry == {"name": entry["name"], **STATISTIC_INFO[entry["name"]]}


def test_a_payload_sent_as_a_message_comes_back_whole_with_its_buffers_beside_it() -> None:
    from lens_widget.payload import from_message, to_message

    payload = encode(block(3, 4, 2, 50, patch=True), 50, kind="columns", col_start=1)
    content, buffers = to_message(payload)
    json.dumps(content)  # the JSON part carries no bytes
    assert buffers and all(isinstance(b, bytes) for b in buffers)
    assert from_message(content, buffers) == payload
    with pytest.raises(PayloadError, match="names buffer"):
        from_message(content, buffers[:-1])
    with pytest.raises(PayloadError, match="names buffer"):
        from_message({"a": {"$buffer": True}}, buffers)


def test_a_payload_sent_as_text_carries_its_bytes_as_base64_in_the_json_and_comes_back_whole() -> None:
    """For VS Code, whose extension host carries binary buffers as JSON arrays of numbers."""
    from lens_widget.payload import from_message, to_message

    payload = encode(block(3, 40, 2, 50, patch=True), 50, kind="columns", col_start=1)
    binary, buffers = to_message(payload)
    content, none = to_message(payload, text=True)
    assert none == [] and from_message(content, []) == payload
    as_numbers = len(json.dumps(binary)) + sum(len(json.dumps(list(b))) for b in buffers)
    assert len(json.dumps(content)) < 0.5 * as_numbers, "base64 is leaner than JSON numbers"
    for bad in ("not base64!", 12, "QUJD="):
        with pytest.raises(PayloadError, match="is not base64"):
            from_message({"a": {"$base64": bad}}, [])
