"""A recorded stream of real session payloads, shared with the TypeScript tests (js/fixtures/).

Run `python tests/payload_fixture.py` to re-record. Both decoders are tested against it: Python in
tests/test_payload_fixture.py, TypeScript in js/payload.test.ts, so the contract is one.
"""

from __future__ import annotations

import base64
import json
import math
from pathlib import Path
from typing import Any

import torch
from browser_support import jsonable
from tiny_models import tiny_model, tiny_tokenizer

from lens_widget.payload import apply_update
from lens_widget.session import LensSession

FIXTURE = Path(__file__).resolve().parents[1] / "js" / "fixtures" / "payload_stream.json"


def from_jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"b64"}:
            return base64.b64decode(value["b64"])
        return {k: from_jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_jsonable(v) for v in value]
    return value


def _number(x: float) -> float | str:
    return "NaN" if math.isnan(x) else x


def record() -> dict[str, Any]:
    torch.manual_seed(0)
    tokenizer = tiny_tokenizer(400)
    model = tiny_model("gpt_neox", vocab_size=400, num_hidden_layers=4, max_position_embeddings=128)
    session = LensSession(model, tokenizer, top_k=5, layer_stride=2)
    steps = [
        lambda: session.set_text("Paris is the"),
        lambda: session.set_text("Paris is the capital 🙂"),
        lambda: session.set_layer_stride(1),
        lambda: session.set_text("Paris was the capital"),
        lambda: session.set_text("Paris"),
    ]
    updates, state = [], None
    for seq, step in enumerate(steps, start=1):
        payload = step().payload
        payload["header"] |= {"seq": seq, "base": -1 if payload["header"]["kind"] == "full" else seq - 1}
        updates.append(payload)
        state = apply_update(state, payload)
    assert state is not None
    expected = {
        "rows": state.rows,
        "row_labels": state.header["row_labels"],
        "n_tokens": state.n_tokens,
        "stats": [_number(float(x)) for x in state.grids[0].stats.ravel()],
        "top_ids": state.grids[0].top_ids.ravel().tolist(),
        "top_probs": state.grids[0].top_probs.ravel().tolist(),
        "token_ids": state.token_ids.tolist(),
        "token_spans": state.token_spans.ravel().tolist(),
    }
    return {"updates": jsonable(updates), "vocabulary": jsonable(session.vocabulary()), "expected": expected}


if __name__ == "__main__":
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    FIXTURE.write_text(json.dumps(record()) + "\n")
    print(f"wrote {FIXTURE} ({FIXTURE.stat().st_size} bytes)")
