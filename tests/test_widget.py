"""The widget protocol, driven through a recording comm as a front end would drive it."""

from __future__ import annotations

from typing import Any

import comm
import numpy as np
import pytest
import traitlets
from tiny_models import tiny_model, tiny_tokenizer

from lens_widget import LensWidget, TunedLens
from lens_widget.payload import apply_update, decode_vocabulary

VOCAB = 400
TOKENIZER = tiny_tokenizer(VOCAB)


class RecordingComm(comm.base_comm.BaseComm):
    """Keeps every message the kernel sends, as the front end would receive it."""

    def __init__(self, **kwargs: Any) -> None:
        self.sent: list[dict[str, Any]] = []
        super().__init__(**kwargs)

    def publish_msg(self, msg_type: str, data: Any = None, metadata: Any = None, buffers: Any = None, **_: Any) -> None:
        self.sent.append({"type": msg_type, "data": data, "buffers": buffers or []})

    def updates(self) -> list[dict[str, Any]]:
        """State updates (not echoes) that carry a new payload."""
        states = [m["data"] for m in self.sent if m["data"] and m["data"].get("method") == "update"]
        return [d for d in states if "update" in d["state"]]


@pytest.fixture(autouse=True)
def recording_comm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(comm, "create_comm", lambda **kwargs: RecordingComm(**kwargs))


def make(text: str = "Paris is the capital", **kwargs: Any) -> LensWidget:
    model = tiny_model("gpt_neox", vocab_size=VOCAB, max_position_embeddings=256)
    return LensWidget(model, TOKENIZER, text=text, **kwargs)


def from_view(widget: LensWidget, **state: Any) -> None:
    """A state message from the front end (what model.save_changes() sends)."""
    widget._handle_msg({"content": {"data": {"method": "update", "state": state, "buffer_paths": []}}, "buffers": []})


def payload_of(widget: LensWidget) -> dict[str, Any]:
    return widget.update


def test_construction_sends_a_full_grid_and_the_vocabulary() -> None:
    w = make()
    header = w.update["header"]
    assert header["kind"] == "full" and header["seq"] == 1 and header["base"] == -1
    assert header["n_tokens"] == len(TOKENIZER("Paris is the capital").input_ids)
    assert len(decode_vocabulary(w.vocabulary)) == VOCAB
    assert w.done_revision == w.text_revision == 1


def test_an_edit_from_the_view_produces_exactly_one_update() -> None:
    w = make()
    sent = w.comm.sent
    before = len(w.comm.updates())
    from_view(w, text="Paris is the capital of France", text_revision=5)
    assert len(w.comm.updates()) == before + 1
    header = w.update["header"]
    assert header["kind"] == "columns" and header["base"] == header["seq"] - 1 and header["text_revision"] == 5
    assert w.done_revision == 5
    assert sent is w.comm.sent


def test_a_stale_revision_is_ignored_and_the_newer_text_kept() -> None:
    w = make()
    from_view(w, text="Paris is the capital of France", text_revision=7)
    updates = len(w.comm.updates())
    seq = w.update["header"]["seq"]
    from_view(w, text="Paris is", text_revision=6)
    assert len(w.comm.updates()) == updates, "no computation for a stale edit"
    assert w.update["header"]["seq"] == seq
    assert w.text == "Paris is the capital of France" and w.text_revision == 7
    assert w.session.text == "Paris is the capital of France"


def test_setting_text_from_python_bumps_the_revision_and_updates_the_view() -> None:
    w = make()
    from_view(w, text="typed", text_revision=9)
    w.text = "set from Python"
    assert w.text_revision == 10 and w.done_revision == 10
    assert w.update["header"]["text_revision"] == 10
    assert w.session.text == "set from Python"


def test_the_update_stream_rebuilds_the_sessions_grid() -> None:
    w = make(layer_stride=2)
    state = apply_update(None, w.update)
    for step in [
        lambda: from_view(w, text="Paris is the capital of", text_revision=2),
        lambda: from_view(w, layer_stride=1),
        lambda: from_view(w, text="Paris was", text_revision=3),
    ]:
        step()
        state = apply_update(state, w.update)
    stats, ids, _ = w.session.grid_arrays()
    assert state.rows == w.session.rows
    np.testing.assert_allclose(state.grids[0].stats, stats, rtol=1e-3, atol=1e-3)
    assert np.array_equal(state.grids[0].top_ids, ids)


def test_a_view_that_asks_gets_a_full_state() -> None:
    w = make()
    from_view(w, text="Paris is the capital of France", text_revision=2)
    w._handle_msg({"content": {"data": {"method": "custom", "content": {"type": "request_full"}}}, "buffers": []})
    header = w.update["header"]
    assert header["kind"] == "full" and header["base"] == -1 and header["n_tokens"] == len(w.session.tokens.ids)


def test_a_kernel_error_is_shown_and_the_next_edit_recovers(monkeypatch: pytest.MonkeyPatch) -> None:
    w = make()
    original = w.session.set_text

    def broken(text: str) -> Any:
        raise RuntimeError("out of memory (injected)")

    monkeypatch.setattr(w.session, "set_text", broken)
    from_view(w, text="Paris is the capital of France", text_revision=4)
    assert "Could not analyse the text: RuntimeError: out of memory (injected)" in w.error
    assert w.text == "Paris is the capital of France", "the typed text is kept"
    assert w.done_revision == 4, "the view is told the kernel is done, so it is not left waiting"
    monkeypatch.setattr(w.session, "set_text", original)
    from_view(w, text="Paris is the capital of France!", text_revision=5)
    assert w.error == "" and w.update["header"]["text_revision"] == 5


def test_unknown_statistic_or_bad_stride_from_python_is_a_clear_exception() -> None:
    w = make()
    with pytest.raises(traitlets.TraitError, match="statistic"):
        w.statistic = "perplexity"
    with pytest.raises(traitlets.TraitError, match="layer_stride must be a positive integer"):
        w.layer_stride = 0
    with pytest.raises(traitlets.TraitError, match="lens 'tuned' is not available"):
        w.lens = "tuned"


def test_switching_to_the_tuned_lens_sends_rows() -> None:
    model = tiny_model("gpt_neox", vocab_size=VOCAB, max_position_embeddings=256)
    lens = TunedLens.from_model(model)
    w = LensWidget(model, TOKENIZER, lens, text="Paris is")
    assert w.lens == "tuned" and w.lens_options == ["tuned", "logit"]
    from_view(w, lens="logit")
    assert w.update["header"]["kind"] == "rows" and w.update["header"]["lens"] == "logit"


def test_an_empty_widget_still_sends_a_state() -> None:
    w = make(text="")
    assert w.update["header"]["kind"] == "full" and w.update["header"]["n_tokens"] == 0
