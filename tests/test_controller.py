"""The view's pin, unpin and column messages, driven through a recording comm as a front end would
send them (test_widget.py's helpers), checked against the session's own pins and columns."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import numpy as np
import pytest
from test_widget import LONG, TOKENIZER, VOCAB, answers, edit, make, message, recording_comm, visible  # noqa: F401
from tiny_models import tiny_model

from lens_widget import LensWidget, TunedLens

TEXT = "The dog sat on the mat. Paris is the capital"
THE = TOKENIZER.encode(" the")[0]


def pin(widget: LensWidget, items: list[Any], label: str | None = None, view: str = "view-1") -> dict[str, Any]:
    """Send a pin message; the kernel's one answer to it."""
    before = len(answers(widget))
    content: dict[str, Any] = {"type": "pin", "view": view, "items": items}
    if label is not None:
        content["label"] = label
    message(widget, content)
    replies = answers(widget)[before:]
    assert len(replies) == 1, replies
    return replies[0]


def unpin(widget: LensWidget, labels: list[str], view: str = "view-1") -> dict[str, Any]:
    before = len(answers(widget))
    message(widget, {"type": "unpin", "view": view, "labels": labels})
    replies = answers(widget)[before:]
    assert len(replies) == 1, replies
    return replies[0]


def column(widget: LensWidget, col: int, query: str = "", seq: int = 1, view: str = "view-1") -> dict[str, Any]:
    before = len(answers(widget))
    message(widget, {"type": "column", "view": view, "col": col, "query": query, "seq": seq})
    replies = answers(widget)[before:]
    assert len(replies) == 1, replies
    reply = replies[0]
    json.dumps(reply, allow_nan=False)  # what Jupyter's own serialiser demands of a message
    return reply


def custom_types(widget: LensWidget) -> list[str]:
    """Every message the kernel sent, in order: "snapshot" for the picture trait, else its type."""
    out = []
    for m in widget.comm.sent:
        data = m["data"] or {}
        if data.get("method") == "update" and "snapshot" in data.get("state", {}):
            out.append("snapshot")
        elif data.get("method") == "custom":
            out.append(data["content"]["type"])
    return out


# --- pin and unpin ----------------------------------------------------------------------------


def test_a_pin_from_the_view_pins_its_items_as_one_and_is_answered_after_the_new_picture() -> None:
    w = make(TEXT)
    reply = pin(w, ["dog", THE], label="both")
    assert reply == {"type": "pin_done", "view": "view-1", "label": "both", "error": ""}
    assert [p["label"] for p in w.pins] == ["both"] and w.snapshot["header"]["pins"] == ["both"]
    assert w.session.pins[0].ids == w.session.make_pin("dog", THE).ids, "words and ids added up into one item"
    assert custom_types(w)[-2:] == ["snapshot", "pin_done"], "the view has the picture when it hears back"
    w.statistic = "pin:both"  # the statistic of the new item is the widget's to show
    assert pin(w, ["mat"])["label"] == "mat", "no label: named by its words"
    assert [p.label for p in w.session.pins] == ["both", "mat"]


@pytest.mark.parametrize(
    ("items", "label", "why"),
    [
        (["dog"], None, "distinct"),  # already pinned under that label
        (["   "], None, "other than spaces"),
        ([10**6], None, "not in the vocabulary"),
        (["cat"], "x" * 41, "label must be"),
    ],
)
def test_a_pin_that_fails_is_answered_with_why_and_changes_nothing(
    items: list[Any], label: str | None, why: str
) -> None:
    w = make(TEXT)
    pin(w, ["dog"])
    seq, pins = w.snapshot["header"]["seq"], list(w.pins)
    reply = pin(w, items, label)
    assert reply["type"] == "pin_done" and reply["label"] == "" and reply["error"].startswith("Could not pin: ")
    assert why in reply["error"] and w.error == reply["error"], "said in the answer and where the user looks"
    assert w.snapshot["header"]["seq"] == seq and w.pins == pins and [p.label for p in w.session.pins] == ["dog"]
    assert pin(w, ["mat"])["error"] == "" and w.error == "", "the next pin that works clears the error"


def test_unpin_from_the_view_unpins_the_named_items_or_all_and_says_when_one_is_unknown() -> None:
    w = make(TEXT)
    pin(w, ["dog"])
    pin(w, [THE], label="the")
    pin(w, ["mat"])
    w.statistic = "pin:dog"
    assert unpin(w, ["dog"]) == {"type": "pin_done", "view": "view-1", "label": "", "error": ""}
    assert [p["label"] for p in w.pins] == ["the", "mat"] and w.snapshot["header"]["pins"] == ["the", "mat"]
    assert w.statistic == "entropy", "the unpinned item's statistic falls back"
    reply = unpin(w, ["cat"])
    assert reply["error"].startswith("Could not unpin: ValueError: 'cat' is not pinned") and w.error == reply["error"]
    assert [p.label for p in w.session.pins] == ["the", "mat"]
    assert unpin(w, [])["error"] == "" and w.pins == [] and w.error == ""


@pytest.mark.parametrize(
    "content",
    [
        {"type": "pin", "items": ["dog"]},
        {"type": "pin", "view": "", "items": ["dog"]},
        {"type": "pin", "view": "v", "items": "dog"},
        {"type": "pin", "view": "v", "items": []},
        {"type": "pin", "view": "v", "items": ["a"] * 17},
        {"type": "pin", "view": "v", "items": ["d" * 101]},
        {"type": "pin", "view": "v", "items": [-1]},
        {"type": "pin", "view": "v", "items": [True]},
        {"type": "pin", "view": "v", "items": [1.5]},
        {"type": "pin", "view": "v", "items": [None]},
        {"type": "pin", "view": "v", "items": ["dog"], "label": 5},
        {"type": "unpin", "view": "v"},
        {"type": "unpin", "view": "v", "labels": "dog"},
        {"type": "unpin", "view": "v", "labels": [3]},
        {"type": "unpin", "labels": []},
        {"type": "column", "view": "v", "col": -1, "query": "", "seq": 1},
        {"type": "column", "view": "v", "col": "3", "query": "", "seq": 1},
        {"type": "column", "view": "v", "col": True, "query": "", "seq": 1},
        {"type": "column", "view": "v", "col": 1.0, "query": "", "seq": 1},
        {"type": "column", "view": "v", "col": 1, "seq": 1},
        {"type": "column", "view": "v", "col": 1, "query": "q" * 101, "seq": 1},
        {"type": "column", "view": "v", "col": 1, "query": "", "seq": -1},
        {"type": "column", "view": "v", "col": 1, "query": "", "seq": 2**53},
        {"type": "column", "view": "v", "col": 1, "query": ""},
        {"type": "column", "col": 1, "query": "", "seq": 1},
    ],
)
def test_malformed_pin_unpin_and_column_messages_are_refused_unanswered(content: dict[str, Any]) -> None:
    w = make(TEXT)
    seq = w.snapshot["header"]["seq"]
    message(w, content)
    assert w.error.startswith("Ignored a malformed message from the view: ")
    assert answers(w) == [] and w.snapshot["header"]["seq"] == seq and w.pins == []
    assert pin(w, ["dog"])["error"] == "" and w.error == "", "later messages are taken"


def test_a_malformed_message_is_described_briefly_however_large_it_is() -> None:
    w = make(TEXT)
    message(w, {"type": "pin", "view": "v", "items": [-1] * 10_000})
    assert len(w.error) < 300


# --- columns ----------------------------------------------------------------------------------


def lines_of(reply: dict[str, Any]) -> list[tuple[str, list[int], bool]]:
    return [(line["label"], line["ids"], line["pinned"]) for line in reply["lines"]]


def test_a_column_request_is_answered_with_the_sessions_column_through_every_lens() -> None:
    model = tiny_model("gpt_neox", vocab_size=VOCAB, max_position_embeddings=256)
    w = LensWidget(model, TOKENIZER, TunedLens.from_model(model), text=TEXT)
    w.lens = "logit"  # read through both lenses now: a curve for each
    reply = column(w, 3, "th", seq=7, view="view-2")
    detail = w.session.column(3, "th")
    assert {k: reply[k] for k in ("type", "view", "seq", "col", "query", "error")} == {
        "type": "column",
        "view": "view-2",
        "seq": 7,
        "col": 3,
        "query": "th",
        "error": "",
    }
    assert reply["curves"] == ["a/logit", "a/tuned"] == list(detail.curves), "the current lens first"
    assert reply["rows"] == w.session.rows and reply["row_labels"] == w.session.row_labels
    assert reply["names"] == {"a": w.session.names[0]}
    assert lines_of(reply) == [(line.label, list(line.ids), False) for line in detail.lines]
    strings = w.session.token_strings()
    _, top_ids, _ = w.session.grid_arrays()
    assert {i for line in reply["lines"] for i in line["ids"]} == set(top_ids[:, 3, 0].tolist()), "top-1 somewhere"
    for line, want in zip(reply["lines"], detail.lines, strict=True):
        assert line["tokens"] == [strings[i] for i in line["ids"]]
        assert line["logp"] == want.logp and line["rank"] == want.rank
        assert set(line["logp"]) == {"a/logit", "a/tuned"}
    assert [(f["id"], f["text"], f["row"]) for f in reply["found"]] == [(f.id, f.text, f.row) for f in detail.found]
    assert reply["found"] and all(f["text"].lstrip(" ").lower().startswith("th") for f in reply["found"])
    assert w.error == ""


def test_a_column_follows_the_pinned_items_with_the_grids_own_probabilities() -> None:
    w = make(TEXT)
    pin(w, ["dog"])
    pin(w, [THE], label="the")
    reply = column(w, 4)
    assert lines_of(reply) == [("dog", list(w.session.pins[0].ids), True), ("the", [THE], True)]
    cells = w.session._tracks[0].cells.pins
    assert cells is not None
    for p, line in enumerate(reply["lines"]):
        np.testing.assert_allclose(line["logp"]["a/logit"], cells[p, :, 4], rtol=1e-4, atol=1e-5)
        assert all(r is not None and r >= 1 for r in line["rank"]["a/logit"])
    assert reply["found"] == [], "with items pinned, no search unless asked"


def test_an_ab_widgets_column_names_both_models_and_has_each_ones_curves() -> None:
    a = tiny_model("gpt_neox", vocab_size=VOCAB, max_position_embeddings=256, seed=0)
    b = tiny_model("gpt_neox", vocab_size=VOCAB, max_position_embeddings=256, seed=1)
    w = LensWidget(a, TOKENIZER, model_b=b, names=("base", "other"), text=TEXT)
    reply = column(w, 2)
    assert reply["names"] == {"a": "base", "b": "other"} and reply["curves"] == ["a/logit", "b/logit"]
    assert lines_of(reply) == [(line.label, list(line.ids), False) for line in w.session.column(2).lines]


def test_a_stale_column_request_is_answered_with_why_and_leaves_the_error_trait_alone() -> None:
    w = make(TEXT)
    n = len(w.session.tokens.ids)
    reply = column(w, n + 5, seq=3)
    assert reply["error"].startswith("Could not read the column: ValueError: column must be a token column")
    assert reply["rows"] == reply["row_labels"] == reply["curves"] == reply["lines"] == reply["found"] == []
    assert reply["seq"] == 3 and reply["col"] == n + 5 and reply["names"] == {"a": w.session.names[0]}
    assert w.error == "", "a request that crossed an edit is normal while typing"
    assert column(w, n - 1)["error"] == ""


def test_a_column_still_pending_is_answered_at_once_and_equals_it_once_everything_is_computed() -> None:
    async def scenario() -> tuple[LensWidget, dict[str, Any], list[tuple[int, int]]]:
        w = make(LONG)
        pin(w, ["fox"])
        visible(w, 0, 3)
        edit(w, LONG + " Rome is", 1)
        last = len(w.session.tokens.ids) - 1
        assert any(a <= last < b for a, b in w.session.pending), "the last column is still to compute"
        reply = column(w, last, "Ro")
        pending = list(w.session.pending)
        while w.session.pending:
            await asyncio.sleep(0.01)
        return w, reply, pending

    w, reply, pending = asyncio.run(scenario())
    assert pending, "answered without computing the rest of the grid"
    last = len(w.session.tokens.ids) - 1
    after = w.session.column(last, "Ro")
    assert lines_of(reply) == [("fox", list(w.session.pins[0].ids), True)]
    np.testing.assert_allclose(reply["lines"][0]["logp"]["a/logit"], after.lines[0].logp["a/logit"], rtol=1e-6)
    assert reply["lines"][0]["rank"] == after.lines[0].rank
    assert [f["id"] for f in reply["found"]] == [f.id for f in after.found]
    cells = w.session._tracks[0].cells.pins
    assert cells is not None
    np.testing.assert_allclose(reply["lines"][0]["logp"]["a/logit"], cells[0, :, last], rtol=1e-4, atol=1e-5)


# --- attribution ------------------------------------------------------------------------------


def attribution(
    widget: LensWidget, row: int, col: int, token: int | None = None, seq: int = 1, view: str = "view-1"
) -> dict[str, Any]:
    before = len(answers(widget))
    content = {"type": "attribution", "view": view, "row": row, "col": col, "token": token, "seq": seq}
    message(widget, content)
    replies = answers(widget)[before:]
    assert len(replies) == 1, replies
    json.dumps(replies[0], allow_nan=False)
    return replies[0]


def test_an_attribution_request_is_answered_with_the_sessions_numbers() -> None:
    w = make(TEXT)
    reply = attribution(w, 2, 4, seq=7)
    assert (reply["seq"], reply["row"], reply["col"], reply["error"]) == (7, 2, 4, "")
    [model] = reply["models"]
    a = w.attribution(2, 4)
    assert (model["model"], model["label"], model["token_id"], model["token"]) == ("a", "2", a.token_id, a.token)
    assert model["total"] == pytest.approx(a.total) and model["logit"] == pytest.approx(a.logit)
    assert model["heads"][0] == pytest.approx(list(a.heads[0])) and model["heads"][2] == [None] * a.heads.shape[1]
    assert model["mlps"][:2] == pytest.approx(list(a.mlps[:2])) and model["mlps"][2] is None
    assert model["total"] == pytest.approx(model["logit"], rel=1e-4, abs=1e-4)
    assert attribution(w, 2, 4, token=THE)["models"][0]["token_id"] == THE


def test_an_ab_attribution_explains_as_token_in_both_models() -> None:
    a = tiny_model("gpt_neox", vocab_size=VOCAB, max_position_embeddings=256, seed=0)
    b = tiny_model("gpt_neox", vocab_size=VOCAB, max_position_embeddings=256, seed=1)
    w = LensWidget(a, TOKENIZER, model_b=b, names=("base", "other"), text=TEXT)
    reply = attribution(w, 3, 5)
    assert [m["name"] for m in reply["models"]] == ["base", "other"]
    assert reply["models"][0]["token_id"] == reply["models"][1]["token_id"]


def test_a_stale_attribution_request_is_answered_with_why_and_leaves_the_error_trait_alone() -> None:
    w = make(TEXT)
    n = len(w.session.tokens.ids)
    reply = attribution(w, 1, n + 3, seq=4)
    assert reply["models"] == [] and reply["error"].startswith("Could not attribute the cell: AttributionError")
    assert w.error == ""
    assert attribution(w, 1, n - 1)["error"] == ""


@pytest.mark.parametrize(
    "content",
    [
        {"type": "attribution", "view": "v", "row": -1, "col": 0, "token": None, "seq": 1},
        {"type": "attribution", "view": "v", "row": 1, "col": "0", "token": None, "seq": 1},
        {"type": "attribution", "view": "v", "row": 1, "col": 0, "token": "the", "seq": 1},
        {"type": "attribution", "view": "v", "row": 1, "col": 0, "token": None},
        {"type": "attribution", "row": 1, "col": 0, "token": None, "seq": 1},
    ],
)
def test_malformed_attribution_messages_are_refused_unanswered(content: dict[str, Any]) -> None:
    w = make(TEXT)
    message(w, content)
    assert w.error.startswith("Ignored a malformed message from the view: ") and answers(w) == []
