"""nnsight models: accepted wherever a model is, and the grid computed inside one trace equals
LensSession's; a remote trace without an NDIF key or of a model NDIF cannot serve is refused first."""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from grid_checks import TargetCells, assert_same_cells, assert_same_grid, grid_cell_logits

nnsight = pytest.importorskip("nnsight")

from lens_widget import LensSession, ModelAdapter, TunedLens, load_demo, train_lens  # noqa: E402
from lens_widget.grid import next_token_targets  # noqa: E402
from lens_widget.nnsight_trace import NDIF_KEY_ENV, RemoteError, trace_grid  # noqa: E402

TEXT = "Copy: A!2j!#u&NGA\nPaste: A!2j!#u&NGA\nadd 13 2 15\nThe built-in function len() returns"


def wrapped() -> tuple[object, object, TunedLens]:
    """The demo model in an nnsight LanguageModel, its tokenizer and tuned lens."""
    model, tokenizer, lens = load_demo("final")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # LanguageModel's deprecation notice (TransformersModel is its new name)
        return nnsight.LanguageModel(model, tokenizer=copy.deepcopy(tokenizer)), tokenizer, lens


def test_the_grid_computed_inside_a_trace_equals_the_sessions() -> None:
    lm, tokenizer, lens = wrapped()
    plain, _, _ = load_demo("final")
    session = LensSession(plain, tokenizer, copy.deepcopy(lens), layer_stride=2)
    session.set_text(TEXT)
    ids = torch.tensor(session.tokens.ids)
    grid = trace_grid(lm, ids, copy.deepcopy(lens), rows=session.rows)
    stats, top_ids, top_probs = session.grid_arrays()
    assert grid.rows == tuple(session.rows) and grid.stats.shape == stats.shape
    adapter = ModelAdapter(plain)
    targets = next_token_targets(ids).numpy()
    cell_logits = grid_cell_logits(adapter, session.lens, adapter.forward(ids).hidden, session.rows)
    assert_same_cells(TargetCells(grid.stats, grid.top_ids, grid.top_probs, targets),
                      TargetCells(stats, top_ids, top_probs, targets), cell_logits)


def test_an_nnsight_model_is_accepted_wherever_a_model_is(tmp_path: Path) -> None:
    from lens_widget import plot_lens

    lm, tokenizer, lens = wrapped()
    plain, _, _ = load_demo("final")
    assert ModelAdapter(lm).plain_head  # nnsight's own forward on each module runs the class's outside a trace
    ours, reference = LensSession(lm, tokenizer, copy.deepcopy(lens)), LensSession(plain, tokenizer, lens)
    for text in (TEXT[:30], TEXT, TEXT.replace("add", "inc")):
        ours.set_text(text)
        reference.set_text(text)
        assert_same_grid(ours, reference)
    widget = plot_lens(lm, tokenizer, TunedLens.from_model(lm), input_ids=ours.tokens.ids[:12])
    assert widget.session.tokens.ids == ours.tokens.ids[:12] and not widget.error
    trained = train_lens(lm, [TEXT] * 8, tokenizer=tokenizer, steps=2, tokens_per_step=64, max_length=32,
                         progress=False, out=tmp_path / "lens")
    assert np.isfinite(trained.layer_translators[0].weight.detach().numpy()).all()
    TunedLens.load(tmp_path / "lens", lm)


def test_a_remote_trace_without_an_ndif_key_is_refused_before_anything_is_sent(monkeypatch) -> None:
    lm, _tokenizer, _lens = wrapped()
    monkeypatch.delenv(NDIF_KEY_ENV, raising=False)
    monkeypatch.setattr(nnsight.CONFIG.API, "APIKEY", None)
    with pytest.raises(RemoteError, match=r"needs an API key: .*set_default_api_key.*NDIF_API_KEY.*remote=False"):
        trace_grid(lm, [1, 2, 3], remote=True)
    monkeypatch.setenv(NDIF_KEY_ENV, "a-key")  # a key, but a model loaded from a local folder
    with pytest.raises(RemoteError, match="by their Hugging Face Hub id; this one was loaded from"):
        trace_grid(lm, [1, 2, 3], remote=True)
    monkeypatch.setattr(lm, "repo_id", "EleutherAI/pythia-70m-deduped")  # both: sent, and NDIF is out of reach here
    monkeypatch.setattr(nnsight.CONFIG.API, "HOST", "http://127.0.0.1:9")  # the discard port: refused at once
    with pytest.raises(RemoteError, match=r"sending the trace to NDIF \(http://127.0.0.1:9\) failed"):
        trace_grid(lm, [1, 2, 3], remote=True)


def test_the_trace_nnsight_would_send_to_ndif_runs_in_its_dry_run_and_equals_the_sessions_grid() -> None:
    """remote="local": the request serialised as for NDIF, lens-widget's modules hidden while it is
    deserialised (only what was shipped by value is there), then run on the local model."""
    lm, tokenizer, lens = wrapped()
    plain, _, _ = load_demo("final")
    session = LensSession(plain, tokenizer, copy.deepcopy(lens), layer_stride=3)
    session.set_text(TEXT)
    ids = torch.tensor(session.tokens.ids)
    statuses: list[str] = []
    grid = trace_grid(lm, ids, copy.deepcopy(lens), rows=session.rows, remote="local", on_status=statuses.append)
    assert statuses == ["running"]
    stats, top_ids, top_probs = session.grid_arrays()
    adapter = ModelAdapter(plain)
    targets = next_token_targets(ids).numpy()
    cell_logits = grid_cell_logits(adapter, session.lens, adapter.forward(ids).hidden, session.rows)
    assert_same_cells(TargetCells(grid.stats, grid.top_ids, grid.top_probs, targets),
                      TargetCells(stats, top_ids, top_probs, targets), cell_logits)


def test_the_layout_of_a_model_whose_weights_are_elsewhere_is_found_without_loading_them() -> None:
    from lens_widget.bundled import DEMO_FILES
    from lens_widget.nnsight_trace import plan_of

    _lm, tokenizer, _lens = wrapped()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lazy = nnsight.LanguageModel(str(DEMO_FILES / "model"), tokenizer=copy.deepcopy(tokenizer))
    plan = plan_of(lazy)
    assert not lazy.dispatched and next(lazy._module.parameters()).device.type == "meta"
    adapter = ModelAdapter(load_demo("final")[0])
    assert (plan.final_norm_names, plan.head_name, plan.layers_name) == (
        adapter.final_norm_names, adapter.head_name, adapter.layers_name)
    assert (plan.num_layers, plan.vocab_size, plan.d_model) == (adapter.num_layers, adapter.vocab_size, adapter.d_model)


def test_a_trace_whose_final_norm_does_not_reproduce_the_logits_is_refused() -> None:
    from dataclasses import replace

    from lens_widget.errors import AdapterError
    from lens_widget.nnsight_trace import _PLANS, plan_of

    lm, _tokenizer, _lens = wrapped()
    _PLANS[lm] = replace(plan_of(lm), final_norm_names=())  # as if the scan had missed the final norm
    with pytest.raises(AdapterError, match="does not reproduce the model's logits"):
        trace_grid(lm, [5, 6, 7, 8])


def test_a_tuned_lens_too_big_to_send_with_every_request_is_refused(monkeypatch) -> None:
    from lens_widget import nnsight_trace

    lm, _tokenizer, lens = wrapped()
    monkeypatch.setenv(NDIF_KEY_ENV, "a-key")
    monkeypatch.setattr(lm, "repo_id", "EleutherAI/pythia-70m-deduped")
    monkeypatch.setattr(nnsight_trace, "REMOTE_LENS_BYTES", 1024)
    with pytest.raises(RemoteError, match=r"sent with every request to NDIF .*use the logit lens remotely"):
        trace_grid(lm, [1, 2, 3], lens, remote=True)
    with pytest.raises(ValueError, match="remote must be True"):
        trace_grid(lm, [1, 2, 3], remote="yes")


def test_a_model_nnsight_wraps_lazily_by_its_name_is_loaded_when_a_session_needs_it() -> None:
    from lens_widget.bundled import DEMO_FILES

    _lm, tokenizer, lens = wrapped()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lazy = nnsight.LanguageModel(str(DEMO_FILES / "model"), tokenizer=copy.deepcopy(tokenizer), dtype=torch.float32)
    assert not lazy.dispatched  # nnsight loads the weights at its first trace
    session = LensSession(lazy, tokenizer, copy.deepcopy(lens))
    session.set_text(TEXT)
    plain, _, _ = load_demo("final")
    reference = LensSession(plain, tokenizer, lens)
    reference.set_text(TEXT)
    assert_same_grid(session, reference)


def test_trace_grid_refuses_what_is_not_an_nnsight_model_or_one_sequence() -> None:
    lm, _tokenizer, _lens = wrapped()
    plain, _, _ = load_demo("final")
    with pytest.raises(TypeError, match="takes an nnsight model"):
        trace_grid(plain, [1, 2, 3])
    with pytest.raises(ValueError, match="one non-empty sequence"):
        trace_grid(lm, [[1, 2], [3, 4]])


def test_ndifs_job_states_reach_the_caller_as_queued_then_running() -> None:
    from nnsight.intervention.backends.remote import RemoteBackend
    from nnsight.schema.response import ResponseModel, Status

    from lens_widget.nnsight_trace import _reporting

    backend = RemoteBackend("a-model-key", host="http://127.0.0.1:9")
    seen: list[str] = []
    note = _reporting(backend.note, seen.append)
    finished = [note(ResponseModel(id="job", status=status)) for status in
                (Status.RECEIVED, Status.QUEUED, Status.DISPATCHED, Status.RUNNING, Status.LOG, Status.COMPLETED)]
    assert seen == ["queued", "queued", "queued", "running"] and finished == [False] * 5 + [True]
    with pytest.raises(Exception, match="out of memory"):
        note(ResponseModel(id="job", status=Status.ERROR, description="out of memory"))
