"""A model traced once per edit (remote=True on NDIF; tested in nnsight's dry run, remote="local"):
the grid equals LensSession's through edits, stride and lens changes, and the widget keeps taking
keystrokes while a trace is out, sending only the newest text when it returns."""

from __future__ import annotations

import asyncio
import copy
import importlib.util
import time
import warnings
from pathlib import Path
from typing import Any

import pytest
from grid_checks import assert_same_grid
from test_widget import answers, edit, message, recording_comm, view_state  # noqa: F401 (recording_comm: the fixture)

nnsight = pytest.importorskip("nnsight")

from lens_widget import LensSession, LensWidget, TunedLens, load_demo  # noqa: E402
from lens_widget.nnsight_trace import NDIF_KEY_ENV, RemoteError  # noqa: E402
from lens_widget.payload import payload_of  # noqa: E402
from lens_widget.remote_session import RemoteSession  # noqa: E402

TEXTS = ["The built-in function len() returns", "The built-in function len() returns the number", "add 13 2 15"]


def wrapped() -> tuple[Any, Any, TunedLens]:
    model, tokenizer, lens = load_demo("final")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return nnsight.LanguageModel(model, tokenizer=copy.deepcopy(tokenizer)), tokenizer, lens


def test_each_edit_traced_whole_equals_the_incremental_sessions_grid() -> None:
    lm, tokenizer, lens = wrapped()
    plain, _, _ = load_demo("final")
    ours = RemoteSession(lm, tokenizer, copy.deepcopy(lens), remote="local", layer_stride=2)
    reference = LensSession(plain, tokenizer, copy.deepcopy(lens), layer_stride=2)
    for text in TEXTS:
        update = ours.set_text(text)
        reference.set_text(text)
        assert update.kind == "full" and ours.text == text
        assert_same_grid(reference, ours)
    ours.set_layer_stride(3)
    reference.set_layer_stride(3)
    reference.set_text(reference.text)  # a stride change keeps earlier rows until the next edit: compare shown rows
    assert ours.rows == reference.display_rows
    ours.set_lenses({"a": None})
    reference.set_lens(None)
    assert ours.lens.name == "logit"
    assert_same_grid(reference, ours)
    ours.set_text("")
    assert ours.grid_arrays()[0].shape[2] == 0 and payload_of(ours.full_update())["header"]["n_tokens"] == 0


def test_a_remote_session_is_refused_at_once_without_what_ndif_needs(monkeypatch: pytest.MonkeyPatch) -> None:
    lm, tokenizer, _lens = wrapped()
    monkeypatch.delenv(NDIF_KEY_ENV, raising=False)
    monkeypatch.setattr(nnsight.CONFIG.API, "APIKEY", None)
    with pytest.raises(RemoteError, match="needs an API key"):
        LensWidget(lm, tokenizer, remote=True)
    with pytest.raises(ValueError, match="model_b, device cannot be used with remote="):
        LensWidget(lm, tokenizer, remote="local", model_b=load_demo("final")[0], device="cpu")
    with pytest.raises(TypeError, match="takes an nnsight model"):
        LensWidget(load_demo("final")[0], tokenizer, remote="local")


def test_typing_goes_on_while_a_trace_is_out_and_only_the_newest_text_is_sent_next() -> None:
    lm, tokenizer, lens = wrapped()
    widget = LensWidget(lm, tokenizer, copy.deepcopy(lens), remote="local", text="The built-in")
    session = widget.session
    assert isinstance(session, RemoteSession)
    traced: list[str] = []
    fetch = session.fetch

    def slow_fetch(text: str, on_status: Any = None) -> Any:  # the real trace, slowed to NDIF's round trip
        traced.append(text)
        time.sleep(0.3)
        return fetch(text, on_status)

    session.fetch = slow_fetch  # type: ignore[method-assign]
    statuses: list[str] = []
    widget.observe(lambda change: statuses.append(change["new"]), names="remote_status")

    async def typing() -> None:
        for number, text in enumerate(TEXTS, 1):
            started = time.perf_counter()
            edit(widget, text, number)
            assert time.perf_counter() - started < 0.2, "a keystroke waits for no trace"
            assert widget.text == text and widget.remote_status == "running"
        for _ in range(200):
            await asyncio.sleep(0.05)
            if not widget.remote_status:
                return

    before = widget.snapshot["header"]["seq"]
    asyncio.run(typing())
    assert traced == [TEXTS[0], TEXTS[-1]], "the edits typed while the first trace was out: only the newest sent"
    assert statuses == ["running", ""], "shown from the first keystroke until the last trace returned"
    assert session.text == widget.text == TEXTS[-1] and not widget.error
    assert widget.snapshot["header"]["seq"] > before
    assert view_state(widget).n_tokens == len(session.tokens.ids)
    reference = LensSession(load_demo("final")[0], tokenizer, copy.deepcopy(lens))
    reference.set_text(TEXTS[-1])
    assert_same_grid(reference, session)
    data = widget.grid_data()  # the exports read the remote session as they read a local one
    n = len(session.tokens.ids)
    assert data.columns == list(range(n)) and data.values.shape == (len(session.rows), n)
    assert data.top_ids.shape[:3] == (1, len(session.rows), n)
    widget.close()


def test_a_failed_trace_keeps_the_picture_and_the_text_and_the_next_edit_recovers() -> None:
    lm, tokenizer, _lens = wrapped()
    widget = LensWidget(lm, tokenizer, remote="local", text=TEXTS[0])
    session = widget.session
    assert isinstance(session, RemoteSession)
    picture = widget.snapshot
    fetch = session.fetch
    calls = 0

    def failing_once(text: str, on_status: Any = None) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("NDIF went away")
        return fetch(text, on_status)

    session.fetch = failing_once  # type: ignore[method-assign]

    async def typing(text: str, number: int) -> None:
        edit(widget, text, number)
        for _ in range(200):
            await asyncio.sleep(0.02)
            if not widget.remote_status:
                return

    asyncio.run(typing(TEXTS[1], 1))
    assert "NDIF went away" in widget.error and widget.text == TEXTS[1] and widget.snapshot is picture
    asyncio.run(typing(TEXTS[2], 2))
    assert not widget.error and session.text == TEXTS[2]


def test_the_views_pin_and_column_requests_are_answered_with_why_a_remote_session_cannot(tmp_path: Path) -> None:
    lm, tokenizer, _lens = wrapped()
    widget = LensWidget(lm, tokenizer, remote="local", text=TEXTS[0])
    message(widget, {"type": "column", "view": "v", "col": 1, "query": "", "seq": 4})
    reply = answers(widget)[-1]
    assert reply["type"] == "column" and reply["seq"] == 4 and reply["lines"] == [] and reply["rows"] == []
    assert reply["error"].startswith("Could not read the column: RuntimeError: the trajectory panel is not available")
    assert widget.error == "", "the panel says so; the picture is fine"
    message(widget, {"type": "pin", "view": "v", "items": ["len"]})
    reply = answers(widget)[-1]
    assert reply["type"] == "pin_done" and "not available with remote=" in reply["error"] and widget.pins == []
    assert widget.error == reply["error"]
    if importlib.util.find_spec("matplotlib") is not None:
        from lens_widget.export import image_size

        png = widget.to_png(tmp_path / "remote.png", scale=1.0).read_bytes()  # the heatmap, without a panel
        size = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
        assert size == image_size(len(widget.session.rows), len(widget.session.tokens.ids), 1.0)
        with pytest.raises(RuntimeError, match="trajectory panel is not available with remote="):
            widget.to_png(tmp_path / "panel.png", column=1)
    widget.close()
