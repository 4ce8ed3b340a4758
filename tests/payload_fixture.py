"""Recorded streams of real session payloads, shared with the TypeScript tests (js/fixtures/).

Run `python tests/payload_fixture.py` to re-record both. Both decoders are tested against them: Python in
tests/test_payload_fixture.py, TypeScript in js/payload.test.ts, so the contract is one.

- payload_stream.json: one model, with two pinned items (full, columns, rows, columns, then an edit
  with only the columns on screen computed, a "cells" update filling some of the pending ones, and a
  shorter text dropping the rest).
- payload_stream_ab.json: two different models in one A/B session (the same steps but the last), so
  the two grids and the diff statistics go through every kind of update, and the recorded state still
  has pending columns.

Each file holds the updates, the vocabulary message, and the state the Python decoder rebuilt from them
(`expected`), which the TypeScript decoder must rebuild too.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from tiny_models import tiny_model, tiny_tokenizer

from lens_widget.page import jsonable
from lens_widget.payload import ViewState, apply_update, encode_vocabulary, payload_of
from lens_widget.pins import Pin
from lens_widget.session import LensSession

FIXTURES = Path(__file__).resolve().parents[1] / "js" / "fixtures"
FIXTURE = FIXTURES / "payload_stream.json"
FIXTURE_AB = FIXTURES / "payload_stream_ab.json"


def from_jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"b64"}:
            return base64.b64decode(value["b64"])
        return {k: from_jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_jsonable(v) for v in value]
    return value


def _number(x: float) -> float | str:
    """JSON has no NaN: it is written "NaN" (a last column's cross-entropy, an invalid cell)."""
    return "NaN" if math.isnan(x) else x


def expected_state(state: ViewState) -> dict[str, Any]:
    """The decoded state as JSON: what both decoders must rebuild from the recorded updates."""
    return {
        "rows": state.rows,
        "row_labels": state.header["row_labels"],
        "n_tokens": state.n_tokens,
        "grids": [
            {
                "name": meta["name"],
                "stats": [_number(float(x)) for x in grid.stats.ravel()],
                "top_ids": grid.top_ids.ravel().tolist(),
                "top_probs": [_number(float(x)) for x in grid.top_probs.ravel()],
                "pins": [_number(float(x)) for x in grid.pins.ravel()],
            }
            for meta, grid in zip(state.header["grids"], state.grids, strict=True)
        ],
        "diff_names": state.header["diff"],
        "pin_labels": state.header["pins"],
        "diff": None if state.diff is None else [_number(float(x)) for x in state.diff.ravel()],
        "token_ids": state.token_ids.tolist(),
        "token_spans": state.token_spans.ravel().tolist(),
        "pending": [0] * state.n_tokens if state.pending is None else state.pending.astype(int).tolist(),
    }


def _stream(session: LensSession, steps: list[Callable[[], Any]]) -> dict[str, Any]:
    """Run the steps, number the updates as the widget does (seq, base), and decode them in Python."""
    updates, state = [], None
    for seq, step in enumerate(steps, start=1):
        payload = payload_of(step())
        payload["header"] |= {"seq": seq, "base": -1 if payload["header"]["kind"] == "full" else seq - 1}
        updates.append(payload)
        state = apply_update(state, payload)
    assert state is not None
    return {
        "updates": jsonable(updates),
        "vocabulary": jsonable(encode_vocabulary(session.token_strings())),
        "expected": expected_state(state),
    }


def record() -> dict[str, Any]:
    torch.manual_seed(0)
    tokenizer = tiny_tokenizer(400)
    model = tiny_model("gpt_neox", vocab_size=400, num_hidden_layers=4, max_position_embeddings=128)
    session = LensSession(model, tokenizer, top_k=5, layer_stride=2)
    return _stream(session, [*_edits(session), lambda: session.set_text("Paris")])


PINS = [Pin("t5", (5,)), Pin("set", (7, 9, 11))]
"""A token and a set of tokens, pinned before the first text: their log-probabilities go through
every kind of update."""


def _edits(session: LensSession) -> list[Any]:
    """Full, columns (with an emoji), rows, columns, then typing answered for the columns on screen
    first and a chunk of the pending ones: every kind of update."""
    return [
        lambda: (session.set_pins(PINS), session.set_text("Paris is the"))[1],
        lambda: session.set_text("Paris is the capital 🙂"),
        lambda: session.set_layer_stride(1),
        lambda: session.set_text("Paris was the capital"),
        lambda: session.set_text("Paris was the capital of France, it is said", visible=(8, 11)),
        lambda: session.compute_pending(visible=(8, 11), max_columns=2),
    ]


def record_ab() -> dict[str, Any]:
    """Two different models (architectures and weights) of one vocabulary and depth, through one lens."""
    torch.manual_seed(0)
    tokenizer = tiny_tokenizer(400)
    model_a = tiny_model("gpt_neox", vocab_size=400, num_hidden_layers=4, max_position_embeddings=128)
    torch.manual_seed(1)
    model_b = tiny_model("llama", vocab_size=400, num_hidden_layers=4, max_position_embeddings=128)
    session = LensSession(model_a, tokenizer, model_b=model_b, names=("base", "tuned"), top_k=5, layer_stride=2)
    return _stream(session, _edits(session))


if __name__ == "__main__":
    FIXTURES.mkdir(parents=True, exist_ok=True)
    for path, recorder in ((FIXTURE, record), (FIXTURE_AB, record_ab)):
        path.write_text(json.dumps(recorder()) + "\n")
        print(f"wrote {path} ({path.stat().st_size} bytes)")
