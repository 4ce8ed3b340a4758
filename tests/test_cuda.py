"""On a CUDA GPU (skipped elsewhere; scripts/gpu_check.sh runs these where one is lent): half precision
against float32 on the demo model and on a Pythia-1.4b-shaped model, the GEMM precision the device
supports, state kept on the host, and a model split between the GPU and the CPU by accelerate."""

from __future__ import annotations

import copy

import pytest
import torch
from grid_checks import assert_near_float32, assert_same_grid
from test_session import HALF_TOLERANCE
from tiny_models import tiny_tokenizer

from lens_widget import LensSession, load_demo
from lens_widget.capacity import chunk_bytes_for, gemm_dtype

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

CUDA = torch.device("cuda")
TEXT = "Copy: A!2j!#u&NGApS&Mk\nPaste: A!2j!#u&NGApS&Mk\nadd 13 2 15\nThe built-in function len() returns"
AMPERE = torch.cuda.is_available() and torch.cuda.get_device_capability() >= (8, 0)
HALF = torch.bfloat16 if AMPERE else torch.float16
"""The half precision this GPU computes natively (bfloat16 from compute capability 8)."""


def edits(session: LensSession, reference: LensSession) -> None:
    for text in (TEXT[:40], TEXT, TEXT.replace("add 13", "inc 14"), TEXT + " the"):
        session.set_text(text)
        reference.set_text(text)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_the_demo_model_on_the_gpu_agrees_with_float32_on_the_cpu(dtype: torch.dtype) -> None:
    model, tokenizer, lens = load_demo("final")
    reference = LensSession(model, tokenizer, copy.deepcopy(lens))
    session = LensSession(copy.deepcopy(model).to(CUDA, dtype), tokenizer, copy.deepcopy(lens))
    edits(session, reference)
    # A float32 model's head GEMM runs in half precision on a GPU (the device's), so all three are half.
    tol = HALF_TOLERANCE[HALF if dtype == torch.float32 else dtype]
    assert_near_float32(session, reference, tol)
    fresh = LensSession(copy.deepcopy(model).to(CUDA, dtype), tokenizer, copy.deepcopy(lens))
    fresh.set_text(session.text)
    assert_same_grid(session, fresh, tol=tol / 10)


def test_a_pythia_1_4b_shaped_model_in_half_precision_agrees_with_float32() -> None:
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.for_model(
        "gpt_neox", vocab_size=50304, hidden_size=2048, num_hidden_layers=24, num_attention_heads=16,
        intermediate_size=8192, rotary_pct=0.25, max_position_embeddings=2048, tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    with CUDA:
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()
        with torch.no_grad():
            model.get_output_embeddings().weight.mul_(20.0)  # sharp predictions, as a trained model's
    tokenizer = tiny_tokenizer(1000)
    reference = LensSession(model, tokenizer)
    session = LensSession(copy.deepcopy(model).to(HALF), tokenizer)
    for text in (TEXT, TEXT + " and more text"):
        reference.set_text(text)
        session.set_text(text)
    assert_near_float32(session, reference, HALF_TOLERANCE[HALF] * 2)  # 24 layers of half-precision rounding


def test_the_gemm_precision_and_the_chunk_follow_this_gpu() -> None:
    assert gemm_dtype(CUDA, torch.float32) == HALF
    free = torch.cuda.mem_get_info()[0]
    assert chunk_bytes_for(CUDA) >= min(free // 8, 8 * 2**30)


def test_state_kept_on_the_host_gives_the_same_grid() -> None:
    model, tokenizer, lens = load_demo("final")
    host = LensSession(copy.deepcopy(model).to(CUDA), tokenizer, copy.deepcopy(lens), keep_on="host")
    device = LensSession(copy.deepcopy(model).to(CUDA), tokenizer, copy.deepcopy(lens), keep_on="device")
    edits(host, device)
    assert host.memory()["kept_on"] == "cpu" and device.memory()["kept_on"] == "cuda:0"
    assert host._tracks[0].hidden.device.type == "cpu"
    assert_same_grid(host, device, tol=1e-3)


def test_a_model_split_between_the_gpu_and_the_cpu_equals_it_whole() -> None:
    from accelerate import dispatch_model

    model, tokenizer, lens = load_demo("final")
    layers = model.config.num_hidden_layers
    placement = {"gpt_neox.embed_in": "cpu", "gpt_neox.emb_dropout": "cpu", "gpt_neox.rotary_emb": "cpu",
                 "gpt_neox.final_layer_norm": 0, "lm_head": 0}
    placement |= {f"gpt_neox.layers.{i}": ("cpu" if i < layers // 2 else 0) for i in range(layers)}
    # The CPU as the main device: its blocks compute there (with a GPU as the main device, accelerate
    # would offload them and run them on the GPU).
    split = dispatch_model(copy.deepcopy(model), device_map=placement, main_device="cpu")
    session = LensSession(split, tokenizer, copy.deepcopy(lens))
    adapter = session._tracks[0].adapter
    assert adapter.device == torch.device("cuda", 0)
    assert {d.type for d in adapter.block_devices} == {"cpu", "cuda"}  # hidden states from both devices
    reference = LensSession(copy.deepcopy(model).to(CUDA), tokenizer, copy.deepcopy(lens))
    edits(session, reference)
    assert_same_grid(session, reference, tol=1e-3)


@pytest.mark.parametrize("dtype", [torch.float32, HALF])
def test_attribution_on_the_gpu_adds_up_and_agrees_with_the_cpu(dtype: torch.dtype) -> None:
    """The attribution's one-token forward from the GPU cache, its frozen norms and the unembedding row
    on the GPU: the components add up to the cell's logit, and equal the CPU's in float32."""
    model, tokenizer, lens = load_demo("final")
    reference = LensSession(model, tokenizer, copy.deepcopy(lens))
    session = LensSession(copy.deepcopy(model).to(CUDA, dtype), tokenizer, copy.deepcopy(lens))
    edits(session, reference)
    tol = 1e-3 if dtype == torch.float32 else 5e-2
    for row in range(session.num_layers + 1):
        a, b = session.attribution(row, 30), reference.attribution(row, 30)
        assert abs(a.total - a.logit) <= tol * (1 + abs(a.logit))
        if dtype == torch.float32:
            assert a.token_id == b.token_id and abs(a.total - b.total) <= tol * (1 + abs(b.total))
