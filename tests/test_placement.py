"""Models placed by accelerate (dispatched, CPU- and disk-offloaded) give the grids of the same model
undispatched, fresh and through edits; a model never loaded and a lens on the wrong device get errors
that name the fix."""

from __future__ import annotations

import copy
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from accelerate import cpu_offload, dispatch_model
from grid_checks import assert_same_grid
from tiny_models import random_lens, tiny_config, tiny_model, tiny_tokenizer
from torch import nn
from transformers import AutoModelForCausalLM

from lens_widget import (
    LensDeviceError,
    LensSession,
    ModelAdapter,
    ModelNotLoadedError,
    TunedLens,
    compute_grid,
    next_token_targets,
    train_lens,
)
from lens_widget.placement import execution_device, is_dispatched, is_offloaded

VOCAB = 400
TOKENIZER = tiny_tokenizer(VOCAB)
TEXT = "The quick brown fox jumps over the lazy dog. Paris is the capital of France."
FAMILIES = ("gpt_neox", "llama", "gpt2")
"""Three layouts: GPT-NeoX (parallel residual), Llama (RMSNorm, untied head), GPT-2 (tied head)."""


def model(family: str, seed: int = 0) -> nn.Module:
    return tiny_model(family, vocab_size=VOCAB, seed=seed, max_position_embeddings=512, n_positions=512)


def device_map(m: nn.Module, *, blocks: str = "alternate", rest: str = "disk") -> dict[str, str]:
    """Every child of the base model and the head on `rest`; blocks alternate between the CPU and
    the disk (or all on `blocks`): every part of the model offloaded somewhere, the head included."""
    body = m.base_model
    prefix = next(name for name, module in m.named_modules() if module is body)
    placement: dict[str, str] = {}
    for name, child in body.named_children():
        if isinstance(child, nn.ModuleList):
            for i in range(len(child)):
                placement[f"{prefix}.{name}.{i}"] = ("disk" if i % 2 else "cpu") if blocks == "alternate" else blocks
        else:
            placement[f"{prefix}.{name}"] = rest
    for name, child in m.named_children():
        if child is not body:
            placement[name] = rest
    return placement


def disk_offloaded(m: nn.Module, tmp: Path) -> nn.Module:
    return dispatch_model(copy.deepcopy(m), device_map=device_map(m), offload_dir=str(tmp), main_device="cpu")


def cpu_offloaded(m: nn.Module) -> nn.Module:
    return cpu_offload(copy.deepcopy(m), execution_device="cpu")


def edits(seed: int, n: int = 6) -> list[str]:
    """A sequence of texts, each a random edit of the one before (insertions, deletions, replacements
    anywhere, appends), ending with a whole new text and an empty one."""
    rng = random.Random(seed)
    text, texts = TEXT, [TEXT]
    for _ in range(n):
        i = rng.randrange(len(text) + 1)
        text = text[:i] + rng.choice(["x", " over", "", "🙂"]) + text[i + rng.randrange(3) :]
        texts.append(text)
    return [*texts, text + " and more", "Another text entirely.", "", TEXT]


def assert_same_through_edits(session: LensSession, reference: LensSession, seed: int, n: int = 6) -> list[str]:
    """Both sessions follow the same random edits with the same grid after each; the update kinds."""
    kinds = []
    for text in edits(seed, n):
        kinds.append(session.set_text(text).kind)
        reference.set_text(text)
        assert_same_grid(session, reference)
    return kinds


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("offload", ["disk", "cpu"])
def test_an_offloaded_model_gives_the_undispatched_grids_fresh_and_after_random_edits(
    family: str, offload: str, tmp_path: Path
) -> None:
    plain = model(family)
    placed = disk_offloaded(plain, tmp_path) if offload == "disk" else cpu_offloaded(plain)
    assert is_dispatched(placed) and is_offloaded(placed.get_output_embeddings())
    lens = random_lens(plain)
    reference = LensSession(plain, TOKENIZER, lens)
    session = LensSession(placed, TOKENIZER, copy.deepcopy(lens))
    kinds = assert_same_through_edits(session, reference, seed=len(family))
    assert "columns" in kinds  # the key/value cache was cropped and continued through the hooks
    fresh = LensSession(placed, TOKENIZER, copy.deepcopy(lens))
    fresh.set_text(session.text)
    assert_same_grid(session, fresh)


def test_a_dispatched_head_that_is_not_offloaded_is_still_one_gemm_and_an_offloaded_one_is_called(
    tmp_path: Path,
) -> None:
    plain = model("llama")
    # Blocks partly on disk, the head in memory: accelerate hooks every module, the head to align devices only.
    placement, folder = device_map(plain, rest="cpu"), str(tmp_path / "a")
    placed = dispatch_model(copy.deepcopy(plain), device_map=placement, offload_dir=folder, main_device="cpu")
    assert is_dispatched(placed) and not is_offloaded(placed.get_output_embeddings())
    assert ModelAdapter(placed).plain_head
    assert not ModelAdapter(disk_offloaded(plain, tmp_path / "b")).plain_head
    reference, session = LensSession(plain, TOKENIZER), LensSession(placed, TOKENIZER)
    assert_same_through_edits(session, reference, seed=3, n=3)


def test_the_adapter_finds_where_an_offloaded_head_computes_and_where_input_ids_go(tmp_path: Path) -> None:
    placed = disk_offloaded(model("gpt_neox"), tmp_path)
    head = placed.get_output_embeddings()
    assert head.weight.device.type == "meta"  # the weight's own device says nothing
    adapter = ModelAdapter(placed)
    assert adapter.device == torch.device("cpu") == execution_device(head)
    with adapter.unembedding() as weight:
        assert weight.device.type == "cpu" and weight.shape == head.weight.shape
    assert head.weight.device.type == "meta"  # released again


def test_an_ab_session_pairs_an_offloaded_model_with_a_plain_one(tmp_path: Path) -> None:
    a, b = model("gpt_neox"), model("gpt_neox", seed=1)
    reference = LensSession(a, TOKENIZER, model_b=b)
    session = LensSession(disk_offloaded(a, tmp_path), TOKENIZER, model_b=cpu_offloaded(b))
    assert_same_through_edits(session, reference, seed=5, n=3)


def test_compute_grid_and_train_lens_take_an_offloaded_model(tmp_path: Path) -> None:
    plain = model("llama")
    placed = disk_offloaded(plain, tmp_path / "offload")
    ids = torch.tensor(TOKENIZER(TEXT).input_ids)
    rows = range(plain.config.num_hidden_layers + 1)
    lens, grids = random_lens(plain), []
    for m in (plain, placed):
        adapter = ModelAdapter(m)
        grids.append(compute_grid(adapter, lens, adapter.forward(ids), next_token_targets(ids), rows))
    np.testing.assert_allclose(grids[0].stats, grids[1].stats, rtol=1e-5, atol=1e-5)
    assert np.array_equal(grids[0].top_ids, grids[1].top_ids)
    data = [TEXT, "Berlin is the capital of Germany.", "A lens shows each layer's prediction."] * 4
    settings = {"tokenizer": TOKENIZER, "steps": 3, "tokens_per_step": 64, "max_length": 32, "progress": False}
    lenses = [train_lens(m, data, lr=0.1, **settings) for m in (plain, placed)]  # type: ignore[arg-type]
    for p, q in zip(lenses[0].parameters(), lenses[1].parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
    lenses[1].save(tmp_path / "lens")
    TunedLens.load(tmp_path / "lens", placed)  # the unembedding fingerprint is read from the offloaded head


def test_the_widget_drop_ins_take_an_offloaded_model(tmp_path: Path) -> None:
    from lens_widget import compare_models, plot_lens

    a, b = model("gpt_neox"), model("gpt_neox", seed=1)
    ids = torch.tensor(TOKENIZER(TEXT).input_ids)
    widget = plot_lens(disk_offloaded(a, tmp_path / "a"), TOKENIZER, input_ids=ids, end_pos=8)
    assert widget.session.tokens.ids == ids.tolist() and not widget.error
    pair = compare_models(model_a=cpu_offloaded(a), model_b=disk_offloaded(b, tmp_path / "b"), tokenizer=TOKENIZER,
                          input_ids=ids)
    reference = LensSession(a, TOKENIZER, model_b=b)
    reference.set_text(pair.session.text)
    assert_same_grid(pair.session, reference)


def test_a_model_never_loaded_is_refused_with_the_fix() -> None:
    with torch.device("meta"):
        empty = AutoModelForCausalLM.from_config(tiny_config("llama", vocab_size=VOCAB))
    for call in (lambda: ModelAdapter(empty), lambda: LensSession(empty, TOKENIZER),
                 lambda: LensSession(empty, TOKENIZER, device="cpu"),
                 lambda: LensSession(model("llama"), TOKENIZER, model_b=empty)):
        with pytest.raises(ModelNotLoadedError, match=r"meta device .*from_pretrained"):
            call()
    with pytest.raises(ModelNotLoadedError, match="model_b"):
        LensSession(model("llama"), TOKENIZER, model_b=empty)


def test_a_lens_given_on_another_device_than_the_head_is_refused_with_the_fix() -> None:
    plain = model("gpt_neox")
    adapter = ModelAdapter(plain)
    ids = torch.tensor(TOKENIZER(TEXT).input_ids)
    lens = random_lens(plain)
    elsewhere = copy.deepcopy(lens).to("meta")  # a device other than the head's, on any machine
    with pytest.raises(LensDeviceError, match=r"lens is on meta .* head computes on cpu.*lens\.fit\(adapter\)"):
        compute_grid(adapter, elsewhere, adapter.forward(ids), next_token_targets(ids), [0, 1])
    grid = compute_grid(adapter, lens, adapter.forward(ids), next_token_targets(ids), [0, 1])
    assert grid.stats.shape[1:] == (2, len(ids))


def test_a_dispatched_model_is_not_moved(tmp_path: Path) -> None:
    placed = disk_offloaded(model("gpt_neox"), tmp_path)
    with pytest.raises(ValueError, match=r"placed by accelerate .* leave device=None"):
        LensSession(placed, TOKENIZER, device="cpu")
    with pytest.raises(ValueError, match="placed by accelerate"):
        train_lens(placed, [TEXT], tokenizer=TOKENIZER, steps=1, device="meta", progress=False)


def test_from_pretrained_with_a_device_map_and_an_offload_folder_needs_no_argument(tmp_path: Path) -> None:
    plain = model("llama")
    plain.save_pretrained(tmp_path / "model")
    # Room in memory for the embedding and a block (214 kB in all): the rest goes to the offload folder.
    placed = AutoModelForCausalLM.from_pretrained(
        tmp_path / "model", device_map="auto", max_memory={"cpu": "150KB"}, offload_folder=str(tmp_path / "offload")
    )
    assert {"cpu", "disk"} == set(placed.hf_device_map.values()) and placed.hf_device_map["lm_head"] == "disk"
    reference, session = LensSession(plain, TOKENIZER), LensSession(placed, TOKENIZER)
    assert_same_through_edits(session, reference, seed=7, n=3)


def test_an_offloaded_head_is_brought_in_once_per_grid_not_once_per_chunk(tmp_path: Path) -> None:
    plain = model("gpt_neox")
    placed = disk_offloaded(plain, tmp_path)
    head = placed.get_output_embeddings()
    loads = []
    real = head._hf_hook.pre_forward
    head._hf_hook.pre_forward = lambda module, *args, **kwargs: (loads.append(1), real(module, *args, **kwargs))[1]
    rows = plain.config.num_hidden_layers + 1
    two_positions = 4 * VOCAB * rows * 2
    session = LensSession(placed, TOKENIZER, chunk_bytes=two_positions)
    reference = LensSession(plain, TOKENIZER, chunk_bytes=two_positions)
    loads.clear()
    session.set_text(TEXT)
    reference.set_text(TEXT)
    assert len(session.tokens.ids) > 10 and len(loads) == 1  # a dozen chunks, one load
    assert head.weight.device.type == "meta"  # released after the grid
    assert_same_grid(session, reference)
    data = [TEXT] * 6
    settings = {"tokenizer": TOKENIZER, "steps": 2, "tokens_per_step": 64, "max_length": 16, "progress": False}
    counts = []
    for steps in (2, 4):
        loads.clear()
        lens = train_lens(placed, data, lr=0.1, chunk_bytes=two_positions, **{**settings, "steps": steps})
        counts.append(len(loads))
    assert counts[1] - counts[0] == 2  # once per step (besides the loads before training: discovery, fingerprints)
    reference_lens = train_lens(plain, data, lr=0.1, chunk_bytes=two_positions, **{**settings, "steps": 4})
    for p, q in zip(lens.parameters(), reference_lens.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
