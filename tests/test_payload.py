"""The payload: encode → decode round trips, deltas rebuild the full state, bad payloads are refused."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tiny_models import tiny_model, tiny_tokenizer

from lens_widget.payload import (
    F16_MAX,
    GridBlock,
    PayloadError,
    apply_update,
    decode_update,
    decode_vocabulary,
    encode_update,
    encode_vocabulary,
    payload_size,
)
from lens_widget.session import LensSession
from lens_widget.statistics import STATISTICS

S = len(STATISTICS)
RANK = STATISTICS.index("rank")


def block(rows: int, cols: int, k: int, vocab: int, seed: int = 0, patch: bool = False) -> GridBlock:
    rng = np.random.default_rng(seed)
    stats = rng.uniform(0, 10, (S, rows, cols)).astype(np.float32)
    stats[STATISTICS.index("cross_entropy"), :, -1:] = np.nan
    top_ids = rng.integers(0, vocab, (rows, cols, k))
    top_probs = rng.dirichlet(np.ones(k), (rows, cols)).astype(np.float32)
    return GridBlock("m", stats, top_ids, top_probs, rng.uniform(0, 5, (2, rows)).astype(np.float32) if patch else None)


def encode(
    grid: GridBlock, vocab: int, *, kind: str = "full", col_start: int = 0, rows: list[int] | None = None
) -> dict:
    R, C, k = grid.top_ids.shape
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
        grids=[grid],
        token_ids=np.arange(C),
        token_spans=np.stack([np.arange(C), np.arange(C) + 1], 1),
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


def test_more_distinct_ids_than_uint16_fall_back_to_uint32() -> None:
    vocab = 200_000
    grid = block(1, 7000, 10, vocab)
    grid = GridBlock("m", grid.stats, np.arange(70_000).reshape(1, 7000, 10), grid.top_probs)
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
    state = apply_update(None, live.set_text("Paris is the capital").payload)
    for text in ["Paris is the capital of France", "Paris was the capital", "Paris was", "Berlin 🙂 was"]:
        state = apply_update(state, live.set_text(text).payload)
        full = apply_update(None, live.full_update().payload)
        assert state.rows == full.rows and state.n_tokens == full.n_tokens
        np.testing.assert_array_equal(state.grids[0].stats, full.grids[0].stats)
        np.testing.assert_array_equal(state.grids[0].top_ids, full.grids[0].top_ids)
        np.testing.assert_array_equal(state.grids[0].top_probs, full.grids[0].top_probs)
        np.testing.assert_array_equal(state.token_spans, full.token_spans)
        assert state.header["row_labels"] == full.header["row_labels"]


def test_a_rows_update_joins_rows_in_layer_order() -> None:
    tokenizer = tiny_tokenizer(400)
    live = LensSession(tiny_model("gpt2", vocab_size=400, num_hidden_layers=4), tokenizer, layer_stride=4)
    state = apply_update(None, live.set_text("The quick fox").payload)
    assert state.rows == [0, 4] and state.header["row_labels"] == ["0", "output"]
    state = apply_update(state, live.set_layer_stride(1).payload)
    assert state.rows == [0, 1, 2, 3, 4] and state.header["row_labels"] == ["0", "1", "2", "3", "output"]
    full = apply_update(None, live.full_update().payload)
    np.testing.assert_array_equal(state.grids[0].stats, full.grids[0].stats)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda p: p["grids"][0].update(stats=p["grids"][0]["stats"][:-2]), "stats: .* bytes, expected"),
        (lambda p: p["header"].update(version=99), "payload version 99"),
        (lambda p: p.pop("token_ids"), "malformed payload"),
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
    strings = decode_vocabulary(session.vocabulary())
    assert len(strings) == 410 and strings[405] == "<405>"
    assert strings[tokenizer(" the").input_ids[0]] == " the"
