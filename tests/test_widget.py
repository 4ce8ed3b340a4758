"""The widget protocol, driven through a recording comm as a front end would drive it."""

from __future__ import annotations

import asyncio
import copy
import json
from typing import Any

import anywidget
import comm
import numpy as np
import pytest
import torch
import traitlets
from ipywidgets.widgets.widget import _put_buffers
from tiny_models import tiny_model, tiny_tokenizer

from lens_widget import LensWidget, LogitLens, TunedLens, controller
from lens_widget.payload import apply_update, decode_vocabulary, from_message, payload_of

VOCAB = 400
TOKENIZER = tiny_tokenizer(VOCAB)


class RecordingComm(comm.base_comm.BaseComm):
    """Keeps every message the kernel sends, as the front end would receive it."""

    def __init__(self, **kwargs: Any) -> None:
        self.sent: list[dict[str, Any]] = []
        super().__init__(**kwargs)

    def publish_msg(self, msg_type: str, data: Any = None, metadata: Any = None, buffers: Any = None, **_: Any) -> None:
        self.sent.append({"type": msg_type, "data": data, "buffers": buffers or []})

    def payloads(self) -> list[tuple[str, dict[str, Any]]]:
        """("snapshot" | "delta", payload): every picture the views received, in order, buffers in place
        (the first came with the comm's opening)."""
        out: list[tuple[str, dict[str, Any]]] = []
        for m in self.sent:
            data = m["data"] or {}
            opens_or_updates = m["type"] == "comm_open" or data.get("method") == "update"
            if opens_or_updates and "snapshot" in data.get("state", {}):
                state = copy.deepcopy(data["state"])
                _put_buffers(state, data.get("buffer_paths", []), m["buffers"])
                out.append(("snapshot", state["snapshot"]))
            elif data.get("method") == "custom" and (data.get("content") or {}).get("type") == "update":
                out.append(("delta", from_message(data["content"]["payload"], m["buffers"])))
        return out

    def deltas(self) -> list[dict[str, Any]]:
        return [p for kind, p in self.payloads() if kind == "delta"]


@pytest.fixture(autouse=True)
def recording_comm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(comm, "create_comm", lambda **kwargs: RecordingComm(**kwargs))


def make(text: str = "Paris is the capital", **kwargs: Any) -> LensWidget:
    model = tiny_model("gpt_neox", vocab_size=VOCAB, max_position_embeddings=256)
    return LensWidget(model, TOKENIZER, text=text, **kwargs)


def from_view(widget: LensWidget, **state: Any) -> None:
    """A state message from the front end (what model.save_changes() sends)."""
    widget._handle_msg({"content": {"data": {"method": "update", "state": state, "buffer_paths": []}}, "buffers": []})


def message(widget: LensWidget, content: Any) -> None:
    """A custom message from the front end (what model.send() sends)."""
    widget._handle_msg({"content": {"data": {"method": "custom", "content": content}}, "buffers": []})


def edit(widget: LensWidget, text: str, number: int, view: str = "view-1") -> None:
    message(widget, {"type": "edit", "view": view, "edit": number, "text": text})


def answers(widget: LensWidget) -> list[dict[str, Any]]:
    """The kernel's custom messages to the views, but the pictures (its answers to edits and pings);
    an answer riding on a delta ("done") is listed as the edit_done it stands for."""
    sent = [m["data"]["content"] for m in widget.comm.sent if m["data"] and m["data"].get("method") == "custom"]
    out = []
    for content in sent:
        if content.get("type") != "update":
            out.append(content)
        elif "done" in content:
            out.append({"type": "edit_done", **content["done"]})
    return out


def view_state(widget: LensWidget) -> Any:
    """What a view rebuilds from everything the kernel sent, by js/receiver.ts's rules: a payload
    with the seq it already has, or an older one, is skipped; a delta applies to its base only."""
    state, seq = None, -1
    for _, payload in widget.comm.payloads():
        header = payload["header"]
        if header["seq"] < seq or (header["seq"] == seq and state is not None):
            continue
        assert header["kind"] == "full" or header["base"] == seq, "a delta that does not follow on"
        state, seq = apply_update(state, payload), header["seq"]
    return state


def test_construction_sends_a_full_grid_and_the_vocabulary() -> None:
    w = make()
    header = w.snapshot["header"]
    assert header["kind"] == "full" and header["seq"] == 1 and header["base"] == -1
    assert header["n_tokens"] == len(TOKENIZER("Paris is the capital").input_ids)
    assert len(decode_vocabulary(w.vocabulary)) == VOCAB


@pytest.mark.parametrize("text", ["Paris is the capital", ""])
def test_the_first_picture_crosses_once_with_the_comm_that_opens_the_widget(text: str) -> None:
    """A widget whose comm opened empty sent its first picture as an update after it, and the view,
    finding none at creation, asked for it again: two whole pictures where one was due (2 x 680 kB
    at 1,024 tokens, 3 x that as VS Code's JSON number arrays)."""
    w = make(text=text)
    opened, *later = w.comm.sent
    assert opened["type"] == "comm_open"
    state = copy.deepcopy(opened["data"]["state"])
    _put_buffers(state, opened["data"]["buffer_paths"], opened["buffers"])
    header = state["snapshot"]["header"]
    assert header["kind"] == "full" and header["n_tokens"] == len(TOKENIZER(text).input_ids)
    assert state["text"] == text and len(decode_vocabulary(state["vocabulary"])) == VOCAB
    assert apply_update(None, state["snapshot"]).n_tokens == header["n_tokens"]
    assert not [m for m in later if "snapshot" in (m["data"] or {}).get("state", {})], "sent again after the open"


def test_an_edit_from_the_view_produces_one_delta_message_then_its_answer() -> None:
    w = make()
    before = len(w.comm.deltas())
    edit(w, "Paris is the capital of France", 5)
    assert len(w.comm.deltas()) == before + 1
    header = w.comm.deltas()[-1]["header"]
    assert header["kind"] == "columns" and header["base"] == header["seq"] - 1
    assert w.text == "Paris is the capital of France" == w.session.text
    assert answers(w) == [{"type": "edit_done", "view": "view-1", "edit": 5}]
    sent = [m["data"]["content"] for m in w.comm.sent if m["data"].get("method") == "custom"]
    assert sent[-1].get("type") == "update" and sent[-1]["done"] == {"view": "view-1", "edit": 5}, (
        "the answer rides on the delta: the view learns its edit is done with the new picture, one message"
    )
    assert not any(c.get("type") == "edit_done" for c in sent)


def test_with_no_event_loop_the_snapshot_catches_up_at_once_and_stays_whole() -> None:
    w = make()
    edit(w, "Paris is the capital of France", 5)
    snapshot = w.snapshot["header"]
    assert snapshot["kind"] == "full" and snapshot["base"] == -1
    assert snapshot["seq"] == w.comm.deltas()[-1]["header"]["seq"], "the same picture as the last delta"
    assert apply_update(None, w.snapshot).n_tokens == len(w.session.tokens.ids)


def test_the_snapshot_waits_for_typing_to_pause_then_catches_up_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(controller, "SNAPSHOT_DELAY", 0.05)

    async def typing() -> tuple[Any, Any, int]:
        w = make()
        first = w.snapshot["header"]["seq"]
        for number, text in enumerate(
            ["Paris is the capital", "Paris is the capital of", "Paris is the capital of F"], 1
        ):
            edit(w, text, number)
        during = w.snapshot["header"]["seq"]
        snapshots_during = sum(kind == "snapshot" for kind, _ in w.comm.payloads())
        await asyncio.sleep(0.2)
        after = w.snapshot["header"]
        snapshots_after = sum(kind == "snapshot" for kind, _ in w.comm.payloads())
        assert during == first, "typing sends deltas; the snapshot waits"
        return after, w, snapshots_after - snapshots_during

    after, w, refreshes = asyncio.run(typing())
    assert refreshes == 1, "one refresh once the typing paused"
    assert after["kind"] == "full" and after["seq"] == w.comm.deltas()[-1]["header"]["seq"]
    assert apply_update(None, w.snapshot).n_tokens == len(w.session.tokens.ids)


def test_where_no_front_end_saves_widget_state_typing_leaves_the_snapshot_until_one_asks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """VS Code neither saves nor replays widget state, so the whole picture resent after each pause
    crossed its JSON hop for nothing; a front end that saves it, or any that asks, brings it back."""
    monkeypatch.setattr(controller, "SNAPSHOT_DELAY", 0.05)

    async def typing() -> tuple[LensWidget, int, int]:
        w = make()
        message(w, {"type": "ping", "view": "vscode", "host": "vscode"})
        for number, text in enumerate(["Paris is the capital", "Paris is the capital of"], 1):
            edit(w, text, number, view="vscode")
        before = sum(kind == "snapshot" for kind, _ in w.comm.payloads())
        await asyncio.sleep(0.2)
        after_pause = sum(kind == "snapshot" for kind, _ in w.comm.payloads())
        message(w, {"type": "ping", "view": "lab", "host": ""})  # JupyterLab opens the notebook too
        return w, after_pause - before, sum(kind == "snapshot" for kind, _ in w.comm.payloads()) - after_pause

    w, on_pause, on_ping = asyncio.run(typing())
    assert on_pause == 0, "nobody saves it: not resent after the pause"
    assert on_ping == 1 and w.snapshot["header"]["seq"] == w.comm.deltas()[-1]["header"]["seq"]
    assert apply_update(None, w.snapshot).n_tokens == len(w.session.tokens.ids)


def test_typings_deltas_reach_a_vscode_front_end_as_base64_text_and_rebuild_the_same_picture() -> None:
    w = make()
    edit(w, "Paris is the capital of", 1)
    assert w.comm.sent[-1]["buffers"], "binary buffers for a host that carries them as such"
    message(w, {"type": "ping", "view": "vscode", "host": "vscode"})
    edit(w, "Paris is the capital of France", 2, view="vscode")
    sent = w.comm.sent[-1]
    assert sent["data"]["content"]["type"] == "update" and sent["buffers"] == []
    assert "$base64" in json.dumps(sent["data"]["content"])
    stats, ids, _ = w.session.grid_arrays()
    state = view_state(w)
    np.testing.assert_allclose(state.grids[0].stats, stats, rtol=1e-3, atol=1e-3)
    assert np.array_equal(state.grids[0].top_ids, ids)


def test_a_stale_snapshot_is_brought_up_to_date_for_the_exports_and_a_front_end_that_pings() -> None:
    w = make()
    message(w, {"type": "ping", "view": "vscode", "host": "vscode"})
    edit(w, "Paris is the capital of France", 1, view="vscode")  # no event loop: at once, but for nobody
    assert w.snapshot["header"]["n_tokens"] < len(w.session.tokens.ids), "left behind"
    assert len(w.grid_data().tokens) == len(w.session.tokens.ids)
    assert w.snapshot["header"]["n_tokens"] == len(w.session.tokens.ids), "whole() caught it up"
    edit(w, "Paris is the capital of Italy", 2, view="vscode")
    message(w, {"type": "ping", "view": "vscode-2", "host": "vscode"})  # a new VS Code window reads it
    assert apply_update(None, w.snapshot).n_tokens == len(w.session.tokens.ids)
    message(w, {"type": "ping", "view": "x", "host": "colab?"})
    assert "a ping's host must be one of '', 'vscode', got 'colab?'" in w.error


def test_changes_that_are_not_typing_make_a_whole_snapshot_at_once() -> None:
    w = make(layer_stride=2)
    before = len(w.comm.deltas())
    w.text = "set from Python, as a later cell does"
    from_view(w, layer_stride=1)
    assert len(w.comm.deltas()) == before, "no deltas: a saved notebook would replay a partial picture"
    state = apply_update(None, w.snapshot)
    assert state.n_tokens == len(w.session.tokens.ids) and state.rows == w.session.rows


def test_a_ping_is_answered_so_the_view_knows_a_kernel_is_there() -> None:
    w = make()
    message(w, {"type": "ping", "view": "view-7"})
    assert answers(w) == [{"type": "pong", "view": "view-7"}]
    message(w, {"type": "ping"})
    assert w.error.startswith("Ignored a malformed message from the view")


def test_edits_are_handled_in_order_and_the_last_one_wins() -> None:
    w = make()
    edit(w, "Paris is", 1)
    edit(w, "Paris is the capital of France", 2)
    assert w.text == w.session.text == "Paris is the capital of France"
    assert [a["edit"] for a in answers(w)] == [1, 2]


def test_setting_text_from_python_updates_the_trait_every_view_shows() -> None:
    w = make()
    edit(w, "typed", 9)
    w.text = "set from Python"
    assert w.session.text == "set from Python"
    state = apply_update(None, payload_of(w.session.full_update()))
    assert state.n_tokens == len(TOKENIZER("set from Python").input_ids)


def test_the_update_stream_rebuilds_the_sessions_grid() -> None:
    w = make(layer_stride=2)
    edit(w, "Paris is the capital of", 2)
    from_view(w, layer_stride=1)
    edit(w, "Paris was", 3)
    state = view_state(w)
    stats, ids, _ = w.session.grid_arrays()
    assert state.rows == w.session.rows
    np.testing.assert_allclose(state.grids[0].stats, stats, rtol=1e-3, atol=1e-3)
    assert np.array_equal(state.grids[0].top_ids, ids)


def test_a_view_that_asks_gets_a_full_state() -> None:
    w = make()
    edit(w, "Paris is the capital of France", 2)
    before = len(w.comm.payloads())
    message(w, {"type": "request_full"})
    kind, payload = w.comm.payloads()[-1]
    assert len(w.comm.payloads()) == before + 1 and kind == "snapshot", "sent again although unchanged"
    header = payload["header"]
    assert header["kind"] == "full" and header["base"] == -1 and header["n_tokens"] == len(w.session.tokens.ids)


def test_a_view_that_lost_the_vocabulary_gets_it_again() -> None:
    w = make()
    before = len(w.comm.sent)
    message(w, {"type": "request_vocabulary"})
    resent = [m for m in w.comm.sent[before:] if "vocabulary" in (m["data"].get("state") or {})]
    assert len(resent) == 1 and resent[0]["buffers"], "the vocabulary travels again, as binary buffers"


def test_a_kernel_error_is_shown_and_the_next_edit_recovers(monkeypatch: pytest.MonkeyPatch) -> None:
    w = make()
    original = w.session.set_text

    def broken(text: str, visible: Any = None) -> Any:
        raise RuntimeError("out of memory (injected)")

    monkeypatch.setattr(w.session, "set_text", broken)
    edit(w, "Paris is the capital of France", 4)
    assert "Could not analyse the text: RuntimeError: out of memory (injected)" in w.error
    assert w.text == "Paris is the capital of France", "the typed text is kept"
    assert answers(w)[-1]["edit"] == 4, "the view is told the kernel is done, so it is not left waiting"
    monkeypatch.setattr(w.session, "set_text", original)
    edit(w, "Paris is the capital of France!", 5)
    assert w.error == "" and w.session.text == "Paris is the capital of France!"


def test_a_lone_surrogate_from_the_view_becomes_a_replacement_character_not_a_broken_widget() -> None:
    w = make()
    edit(w, "Paris \ud83d is", 3)  # half an emoji, as a browser can send it
    assert w.text == "Paris \ufffd is" == w.session.text
    w.text.encode("utf-8")  # the state can be sent to the views again
    assert w.error == "" and answers(w)[-1]["edit"] == 3
    w.text = "from Python \udc00"
    assert w.session.text == "from Python \ufffd"


def test_an_error_stays_shown_until_an_analysis_succeeds(monkeypatch: pytest.MonkeyPatch) -> None:
    w = make()
    monkeypatch.setattr(w.session, "set_text", lambda text, visible=None: (_ for _ in ()).throw(RuntimeError("boom")))
    edit(w, "Paris is big", 2)
    assert "boom" in w.error
    message(w, {"type": "request_full"})  # another view, or a view that lost an update
    assert "boom" in w.error, "resending the old grid does not make the failed edit succeed"


@pytest.mark.parametrize(
    "content",
    [
        {"type": "edit", "view": "v", "edit": 1e300, "text": "x"},
        {"type": "edit", "view": "v", "edit": 2**53, "text": "x"},
        {"type": "edit", "view": "v", "edit": -1, "text": "x"},
        {"type": "edit", "view": "v", "edit": True, "text": "x"},
        {"type": "edit", "view": "v", "edit": 1, "text": 5},
        {"type": "edit", "view": "", "edit": 1, "text": "x"},
        {"type": "edit", "edit": 1, "text": "x"},
        {"type": "teleport"},
        "edit",
    ],
)
def test_malformed_messages_are_ignored_reported_and_do_not_block_later_edits(content: Any) -> None:
    w = make()
    seq = w.snapshot["header"]["seq"]
    message(w, content)
    assert w.snapshot["header"]["seq"] == seq and w.text == "Paris is the capital", "nothing changed"
    assert w.error.startswith("Ignored a malformed message from the view")
    assert answers(w) == []
    edit(w, "Paris is the capital of France", 1)
    assert w.session.text == "Paris is the capital of France" and w.error == ""
    assert answers(w) == [{"type": "edit_done", "view": "view-1", "edit": 1}]


def test_unknown_statistic_or_bad_stride_from_python_is_a_clear_exception() -> None:
    w = make()
    with pytest.raises(traitlets.TraitError, match="statistic"):
        w.statistic = "perplexity"
    with pytest.raises(traitlets.TraitError, match="layer_stride must be a positive integer"):
        w.layer_stride = 0
    with pytest.raises(traitlets.TraitError, match="lens 'tuned' is not available"):
        w.lens = "tuned"


def test_switching_the_lens_sends_a_whole_snapshot() -> None:
    model = tiny_model("gpt_neox", vocab_size=VOCAB, max_position_embeddings=256)
    lens = TunedLens.from_model(model)
    w = LensWidget(model, TOKENIZER, lens, text="Paris is")
    assert w.lens == "tuned" and w.lens_options == ["tuned", "logit"]
    from_view(w, lens="logit")
    assert w.snapshot["header"]["kind"] == "full" and w.snapshot["header"]["lens"] == "logit"


def test_an_empty_widget_still_sends_a_state() -> None:
    w = make(text="")
    assert w.snapshot["header"]["kind"] == "full" and w.snapshot["header"]["n_tokens"] == 0


def test_the_lens_toggle_of_an_ab_widget_switches_both_models_in_one_update() -> None:
    a = tiny_model("gpt_neox", vocab_size=VOCAB, max_position_embeddings=256, seed=0)
    b = tiny_model("gpt_neox", vocab_size=VOCAB, max_position_embeddings=256, seed=1)
    lens = TunedLens.from_model(a)
    with torch.no_grad():
        for p in lens.parameters():
            p.normal_(0, 0.05)
    w = LensWidget(a, TOKENIZER, lens, model_b=b, text="Paris is the capital")
    assert w.mode == "diff" and w.lens == "tuned"
    before = len(w.comm.payloads())
    from_view(w, lens="logit")
    assert len(w.comm.payloads()) == before + 1
    assert w.session.lens_of("a").name == "logit" and w.session.lens_of("b").name == "logit"
    state = apply_update(None, payload_of(w.session.full_update()))
    assert len(state.grids) == 2 and state.diff is not None


def test_the_lens_toggle_keeps_a_shared_lens_with_model_a_and_an_explicit_logit_lens_for_b() -> None:
    a = tiny_model("gpt_neox", vocab_size=VOCAB, max_position_embeddings=256, seed=0)
    b = tiny_model("gpt_neox", vocab_size=VOCAB, max_position_embeddings=256, seed=1, dtype=torch.float16)
    lens = TunedLens.from_model(a)
    w = LensWidget(a, TOKENIZER, lens, model_b=b, text="Paris is the capital")
    from_view(w, lens="logit")
    from_view(w, lens="tuned")
    assert w.error == ""
    assert w.session.lens_of("a").layer_translators[0].weight.dtype == torch.float32, "A's lens stays A's"
    assert w.session.lens_of("b").layer_translators[0].weight.dtype == torch.float16

    kept = LensWidget(a, TOKENIZER, lens, model_b=b, lens_b=LogitLens(), text="Paris")
    from_view(kept, lens="logit")
    from_view(kept, lens="tuned")
    assert kept.session.lens_of("b").name == "logit", "an explicit logit lens for B stays"


def test_the_lens_named_to_the_view_is_tuned_when_either_model_uses_one() -> None:
    a = tiny_model("gpt_neox", vocab_size=VOCAB, max_position_embeddings=256, seed=0)
    b = tiny_model("gpt_neox", vocab_size=VOCAB, max_position_embeddings=256, seed=1)
    w = LensWidget(a, TOKENIZER, None, model_b=b, lens_b=TunedLens.from_model(b), text="Paris")
    assert w.lens == "tuned" and w.snapshot["header"]["lens"] == "tuned", "else the view would wait forever"


def test_a_lens_switch_that_fails_puts_the_toggle_back(monkeypatch: pytest.MonkeyPatch) -> None:
    model = tiny_model("gpt_neox", vocab_size=VOCAB, max_position_embeddings=256)
    w = LensWidget(model, TOKENIZER, TunedLens.from_model(model), text="Paris")

    def broken(lenses: Any) -> Any:
        raise RuntimeError("injected")

    monkeypatch.setattr(w.session, "set_lenses", broken)
    from_view(w, lens="logit")
    assert "Could not switch the lens" in w.error and w.lens == "tuned"


def test_the_view_traits_are_the_widgets_own_synced_traits() -> None:
    """constants.json lists what the view reads; js/model.test.ts holds TypeScript's `Model` to the same list."""
    from lens_widget.constants import VIEW_TRAITS

    own = {name for name in LensWidget.class_trait_names(sync=True) if not name.startswith("_")}
    inherited = set(anywidget.AnyWidget.class_trait_names(sync=True))
    assert own - inherited == set(VIEW_TRAITS) and len(VIEW_TRAITS) == len(set(VIEW_TRAITS))


def test_exports_follow_the_widgets_statistic_stride_and_token_range(tmp_path) -> None:
    pytest.importorskip("matplotlib")
    from lens_widget.export import image_size

    w = make(text="Paris is the capital of France", layer_stride=2, statistic="rank", token_range=[1, 4])
    data = w.grid_data()
    assert data.statistic == "rank" and data.columns == [1, 2, 3], "end is exclusive, as tuned-lens's end_pos"
    assert data.rows[0] == w.session.num_layers and data.values.shape == (len(data.rows), 3)
    path = w.to_png(tmp_path / "lens.png", scale=1.5)
    png = path.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    size = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    trajectory = w.grid_data(column=len(w.session.tokens.ids) - 1).trajectory  # the panel: the last column
    assert trajectory is not None
    assert size == image_size(len(data.rows), 3, 1.5, panel_keys=trajectory.keys)


@pytest.mark.parametrize("ab", [False, True])
@pytest.mark.parametrize("pinned", [False, True])
def test_to_png_draws_the_trajectory_panel_with_and_without_pins(tmp_path, ab: bool, pinned: bool) -> None:
    mpimg = pytest.importorskip("matplotlib.image")
    from lens_widget.export import LINE_COLORS, image_size

    model_b = tiny_model("gpt_neox", vocab_size=VOCAB, max_position_embeddings=256, seed=1) if ab else None
    w = make("The dog sat on the mat. The dog", model_b=model_b)
    if pinned:
        w.pin("dog")
        w.pin("mat", label="m")
    w.color_scale = "view"
    data = w.grid_data(column=4)
    assert data.color_scale == "view"
    t = data.trajectory
    assert t is not None and t.curves == (("a/logit", "b/logit") if ab else ("a/logit",))
    assert all(line.pinned == pinned for line in t.lines) and t.lines
    if pinned:
        assert [line.label for line in t.lines] == ["dog", "m"]
    else:  # the tokens that are top-1 at some row, of either model
        tops = {int(i) for key in w.session.models for i in w.session.grid_arrays(key)[1][:, 4, 0]}
        assert {line.ids for line in t.lines} == {(i,) for i in tops}
    image = mpimg.imread(w.to_png(tmp_path / "lens.png", scale=1.0, column=4))
    assert image.shape[:2][::-1] == image_size(len(data.rows), len(data.columns), 1.0, panel_keys=t.keys)
    panel = np.round(image[52 + 22 * len(data.rows) + 32 :, :, :3] * 255).astype(int)
    assert (panel != 255).any(axis=2).mean() > 0.01, "the panel is not blank"
    first = np.array([int(LINE_COLORS[0][i : i + 2], 16) for i in (1, 3, 5)])
    assert (np.abs(panel - first).sum(axis=2) < 40).sum() > 20, "the first line is drawn"
    with pytest.raises(ValueError, match="column must be a token column"):
        w.to_png(tmp_path / "x.png", column=99)


def test_to_png_of_an_empty_widget_has_no_panel(tmp_path) -> None:
    pytest.importorskip("matplotlib")
    from lens_widget.export import image_size

    w = make("")
    png = w.to_png(tmp_path / "empty.png", scale=1.0).read_bytes()
    assert (int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")) == image_size(
        w.session.num_layers + 1, 0, 1.0
    )


def test_to_html_writes_one_page_whose_strings_cannot_become_markup(tmp_path) -> None:
    w = make(text="</script><script>alert(1)</script> <!-- & <b>")
    page = w.to_html(tmp_path / "lens.html").read_text()
    assert page.count("</script>") == 3, "the state, the view's bundle and the page's own script: nothing else"
    assert "<b>" not in page and "<!--" not in page.split("<body>")[1]
    assert "https://" not in page and "http://" not in page, "nothing to fetch"
    assert '"snapshot"' in page and '"vocabulary"' in page


# --- the columns on screen first -----------------------------------------------------------------

LONG = "The quick brown fox jumps over the lazy dog. Paris is the capital of France, Berlin of Germany."


def visible(widget: LensWidget, start: int, stop: int, view: str = "view-1") -> None:
    message(widget, {"type": "visible", "view": view, "start": start, "stop": stop})


def test_an_edit_sends_the_columns_on_screen_first_then_the_rest_as_cells() -> None:
    w = make(LONG)
    visible(w, 0, 6)
    before = len(w.comm.deltas())
    edit(w, LONG.replace("quick", "slow"), 1)
    deltas = w.comm.deltas()[before:]
    first = deltas[0]["header"]
    assert first["kind"] == "columns" and first["cell_start"] >= first["col_start"] and first["cell_end"] <= 6
    assert [d["header"]["kind"] for d in deltas[1:]] and all(d["header"]["kind"] == "cells" for d in deltas[1:])
    assert w.session.pending == [], "with no event loop the rest follows at once"
    state = view_state(w)
    assert state.pending is None
    stats, ids, _ = w.session.grid_arrays()
    np.testing.assert_allclose(state.grids[0].stats, stats, rtol=1e-3, atol=1e-3)
    assert np.array_equal(state.grids[0].top_ids, ids)
    assert w.snapshot["header"]["seq"] == deltas[-1]["header"]["seq"], "then the snapshot, whole"
    assert apply_update(None, w.snapshot).pending is None


def test_pending_chunks_run_on_the_event_loop_and_a_newer_edit_cancels_what_it_replaces(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(controller, "SNAPSHOT_DELAY", 0.01)
    monkeypatch.setattr(controller, "CHUNK_SECONDS", 1e-9)  # one column per chunk

    async def typing() -> tuple[LensWidget, list[int], int]:
        w = make(LONG)
        visible(w, 0, 4)
        edit(w, LONG.replace("quick", "slow"), 1)
        pending_after_edit = sum(b - a for a, b in w.session.pending)
        await asyncio.sleep(0)  # one chunk
        await asyncio.sleep(0)
        left = sum(b - a for a, b in w.session.pending)
        edit(w, "The slow", 2)  # replaces every pending column
        dropped = list(w.session.pending)
        await asyncio.sleep(0.1)
        return w, [pending_after_edit, left], len(dropped)

    w, counts, dropped = asyncio.run(typing())
    assert counts[0] > counts[1] > 0, "chunks ran between the messages, one at a time"
    assert dropped == 0 and w.session.pending == []
    state = view_state(w)
    assert state.pending is None and state.n_tokens == len(w.session.tokens.ids)
    assert w.snapshot["header"]["seq"] == w.comm.payloads()[-1][1]["header"]["seq"]


def test_everything_that_needs_the_whole_grid_completes_and_sends_the_pending_columns_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def scenario() -> LensWidget:
        w = make(LONG)
        visible(w, 0, 3)
        edit(w, LONG + " Rome", 1)
        assert w.session.pending
        w.grid_data()  # the numbers behind the picture: computed, and sent to the views
        assert w.session.pending == []
        edit(w, LONG + " Rome is", 2)
        w.session.grid_arrays()  # behind the widget's back: the next snapshot is a new picture
        w._controller.refresh_snapshot()
        return w

    w = asyncio.run(scenario())
    state = view_state(w)
    assert state.pending is None
    stats, _, _ = w.session.grid_arrays()
    np.testing.assert_allclose(state.grids[0].stats, stats, rtol=1e-3, atol=1e-3)


def test_text_set_from_python_is_whole_when_the_assignment_returns() -> None:
    async def scenario() -> LensWidget:
        w = make(LONG)
        visible(w, 0, 3)
        w.text = LONG + " Madrid"
        return w

    w = asyncio.run(scenario())
    assert w.session.pending == [] and apply_update(None, w.snapshot).pending is None


@pytest.mark.parametrize(
    "content",
    [
        {"type": "visible", "view": "v", "start": 3, "stop": 1},
        {"type": "visible", "view": "v", "start": -1, "stop": 1},
        {"type": "visible", "view": "v", "start": 0.5, "stop": 1},
        {"type": "visible", "view": "v", "start": True, "stop": 1},
        {"type": "visible", "start": 0, "stop": 1},
    ],
)
def test_a_malformed_visible_range_is_ignored_and_reported(content: dict[str, Any]) -> None:
    w = make()
    message(w, content)
    assert "visible range" in w.error and w._controller.visible is None
    edit(w, "Paris is the capital of Italy", 1)
    assert w.error == "" and w.session.pending == []


def test_a_view_showing_the_end_of_the_text_gets_the_new_columns_with_the_keystroke() -> None:
    w = make("Paris is the")
    n = len(w.session.tokens.ids)
    visible(w, max(0, n - 3), n)
    before = len(w.comm.deltas())
    edit(w, "Paris is the capital of France", 1)
    first = w.comm.deltas()[before]["header"]
    width = n - max(0, n - 3)
    assert first["cell_end"] == min(first["n_tokens"], n + width) > n, "a screen of new columns comes with it"


def test_a_range_reported_for_a_longer_text_does_not_break_the_next_keystroke() -> None:
    w = make(LONG)
    n = len(w.session.tokens.ids)
    visible(w, n - 4, n)  # scrolled to the end of the long text
    edit(w, "Paris", 1)  # select all, type: the view's range is past the new end...
    edit(w, "Paris is", 2)  # ...when the next keystroke goes out
    assert w.error == "" and w.session.text == "Paris is"
    state = view_state(w)
    assert state.pending is None and state.n_tokens == len(w.session.tokens.ids)


def test_each_keystroke_is_answered_with_its_own_views_columns() -> None:
    w = make(LONG)
    visible(w, 0, 3, view="view-1")
    visible(w, 20, 30, view="view-2")  # another view of the same widget reported last
    before = len(w.comm.deltas())
    edit(w, LONG.replace("quick", "slow"), 1, view="view-1")
    first = w.comm.deltas()[before]["header"]
    assert first["cell_end"] <= 3


def test_cells_computed_behind_the_widgets_back_reach_the_views(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(controller, "SNAPSHOT_DELAY", 0.01)

    async def scenario() -> LensWidget:
        w = make(LONG)
        visible(w, 0, 3)
        edit(w, LONG + " Rome", 1)
        w.session.grid_arrays()  # completes the pending columns without sending them
        await asyncio.sleep(0.2)
        return w

    w = asyncio.run(scenario())
    state = view_state(w)
    assert state.pending is None, "the snapshot came with a new seq, so the views took it"


def test_a_chunk_that_fails_is_reported_and_the_views_get_the_whole_text_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    w = make(LONG)
    visible(w, 0, 3)
    original = w.session.compute_pending
    calls = {"n": 0}

    def flaky(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            w.session.reset()  # what a failure inside does (the session rolls back to nothing)
            raise RuntimeError("out of memory (injected)")
        return original(*args, **kwargs)

    monkeypatch.setattr(w.session, "compute_pending", flaky)
    edit(w, LONG + " Rome", 1)
    assert "out of memory (injected)" in w.error, "the failure is shown"
    state = view_state(w)
    assert state.pending is None and state.n_tokens == len(w.session.tokens.ids) > 0
    assert w.session.text == w.text


def test_exports_after_an_edit_that_failed_raise_rather_than_show_an_empty_grid(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    w = make(LONG)

    def broken(text: str, visible: Any = None) -> Any:
        w.session.reset()
        raise RuntimeError("out of memory (injected)")

    monkeypatch.setattr(w.session, "set_text", broken)
    edit(w, LONG + " Rome", 1)
    with pytest.raises(RuntimeError, match="not up to date with the text"):
        w.grid_data()
    monkeypatch.undo()
    assert w.grid_data().values.shape[1] == len(w.session.tokens.ids) > 0  # the text is analysed again


def test_the_snapshot_never_holds_pending_columns_even_when_typing_replaces_the_whole_text(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(controller, "SNAPSHOT_DELAY", 0.01)

    async def scenario() -> tuple[LensWidget, Any, Any]:
        w = make(LONG)
        visible(w, 0, 3)
        edit(w, "X" + LONG, 1)  # a change at column 0: a full update, most of it pending
        during = apply_update(None, w.snapshot)
        await asyncio.sleep(0.3)
        return w, during, apply_update(None, w.snapshot)

    w, during, after = asyncio.run(scenario())
    assert during.pending is None, "the snapshot kept the last whole picture while columns were pending"
    assert after.pending is None and after.n_tokens == len(w.session.tokens.ids)
    assert w.comm.deltas()[0]["header"]["kind"] == "full", "the views got the partial full update as a delta"
    assert view_state(w).pending is None


def test_the_sublayers_trait_adds_and_drops_the_rows_after_attention() -> None:
    """The view's toggle (a state message) turns the ℓ.attn rows on and off; the picture, grid_data
    and the constructor argument follow; a remote widget refuses them."""
    w = make(layer_stride=2)
    L = w.session.num_layers
    assert L == 3 and w.session.rows == [0, 2, 3] and w.sublayers is False
    from_view(w, sublayers=True)
    assert w.session.sublayers and w.error == ""
    assert w.session.rows == [0, L + 2, 2, L + 3, 3]
    assert w.snapshot["header"]["rows"] == w.session.rows
    data = w.grid_data()
    assert data.row_labels == ["output", "3.attn", "2", "2.attn", "0"] and data.rows_note == ""
    from_view(w, sublayers=False)
    assert w.session.rows == [0, 2, 3] and w.grid_data().row_labels == ["output", "2", "0"]
    built = make(sublayers=True)
    assert built.sublayers and built.session.sublayers and "1.attn" in built.session.row_labels
    with pytest.raises(ValueError, match="sublayers"):
        LensWidget(tiny_model("gpt_neox", vocab_size=VOCAB), TOKENIZER, remote="local", sublayers=True)


KERNEL_ONLY_WRITES = {
    "snapshot": {"seq": 999, "bogus": True},
    "vocabulary": {"count": 1},
    "lens_options": ["tuned", "logit"],
    "roles": [{"role": "user", "start": 0, "end": 3, "special": False, "message": 0}],
    "generated": [[0, 3, 0]],
    "generating": True,
}


@pytest.mark.parametrize("name", sorted(KERNEL_ONLY_WRITES))
def test_a_views_write_to_a_trait_only_the_kernel_sets_is_undone_and_reported(name: str) -> None:
    widget = make()
    before = copy.deepcopy(getattr(widget, name))
    widget.comm.sent.clear()
    from_view(widget, **{name: KERNEL_ONLY_WRITES[name]}, statistic="max_probability")
    assert getattr(widget, name) == before
    assert widget.statistic == "max_probability", "the rest of the same update applies"
    assert widget.error == f"Ignored a view's change to {name}: only the kernel sets it"
    restored = [m["data"]["state"] for m in widget.comm.sent if (m["data"] or {}).get("method") == "update"]
    assert any(name in state for state in restored), "the views are sent the kernel's value back"
    echoed = [m["data"]["state"] for m in widget.comm.sent if (m["data"] or {}).get("method") == "echo_update"]
    assert not any(name in state for state in echoed), "no view is told the ignored value"


def test_the_kernel_still_sets_its_own_traits_from_python() -> None:
    widget = make()
    widget.generated = [[0, 2, 0]]
    widget.lens_options = ["logit"]
    assert widget.generated == [[0, 2, 0]] and widget.lens_options == ["logit"] and widget.error == ""


def test_a_misspelt_option_is_a_type_error_naming_the_nearest_one() -> None:
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'sublayer'; did you mean 'sublayers'\?"):
        make(sublayer=True)
    with pytest.raises(TypeError, match=r"'colour_scale'; did you mean 'color_scale'\?"):
        make(colour_scale="view")
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'zzz'$"):
        make(zzz=1)


def test_ipywidgets_and_trait_options_pass_through_the_constructor() -> None:
    import ipywidgets

    widget = make(
        layout=ipywidgets.Layout(width="500px"),
        color_scale="view",
        token_range=[1, None],
        diff_statistic="kl_ab",
        tooltip="a lens",
    )
    assert widget.layout.width == "500px" and widget.color_scale == "view" and widget.token_range == [1, None]
    assert widget.diff_statistic == "kl_ab" and widget.tooltip == "a lens"


def test_the_constructor_takes_the_lens_names_the_trait_takes() -> None:
    widget = make(lens="logit")
    assert widget.lens == "logit" and widget.lens_options == ["logit"]
    assert widget.session.lens_of("a").name == "logit"
    model = tiny_model("gpt_neox", vocab_size=VOCAB, max_position_embeddings=256)
    with pytest.raises(ValueError, match=r"lens='tuned' needs a tuned lens.*TunedLens\.from_pretrained.*train_lens"):
        LensWidget(model, TOKENIZER, lens="tuned")
    with pytest.raises(ValueError, match=r"a LogitLens, None, 'logit' or 'tuned', got 'tunned'"):
        LensWidget(model, TOKENIZER, lens="tunned")
    ab = LensWidget(model, TOKENIZER, TunedLens.from_model(model), model_b=model, lens_b="logit")
    assert ab.session.lens_of("b").name == "logit" and ab.session.lens_of("a").name == "tuned"
