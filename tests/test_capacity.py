"""What a device can hold and compute: the GEMM precision follows the device, chunks follow its free
memory, kept state goes to the host when it would crowd the device, and session.memory() reports
each part as the README's formula says."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny_models import tiny_model, tiny_tokenizer

from lens_widget import LensSession
from lens_widget.capacity import (
    CPU_CHUNK_BYTES,
    MAX_CHUNK_BYTES,
    MIN_CHUNK_BYTES,
    chunk_bytes_for,
    gemm_dtype,
    keep_on_host,
    kept_widths,
    state_bytes,
)

CPU, CUDA = torch.device("cpu"), torch.device("cuda")
GIB = 2**30
VOCAB = 400
TOKENIZER = tiny_tokenizer(VOCAB)
TEXT = "The quick brown fox jumps over the lazy dog. Paris is the capital of France."


@pytest.mark.parametrize(
    ("device", "weight", "bfloat16", "expected"),
    [
        (CPU, torch.float32, True, None),  # the weight's own: exact, and half precision is no faster on a CPU
        (CPU, torch.bfloat16, False, None),
        (CUDA, torch.float32, True, torch.bfloat16),  # Ampere and later
        (CUDA, torch.float32, False, torch.float16),  # a T4: no bfloat16
        (CUDA, torch.bfloat16, False, torch.float16),  # a bfloat16 model on a T4: its GEMM in float16
        (CUDA, torch.bfloat16, True, torch.bfloat16),
        (CUDA, torch.float16, True, torch.float16),
    ],
)
def test_the_gemm_precision_follows_what_the_device_supports(
    device: torch.device, weight: torch.dtype, bfloat16: bool, expected: torch.dtype | None
) -> None:
    assert gemm_dtype(device, weight, bfloat16=bfloat16) == expected


def test_the_chunk_follows_the_free_memory_within_bounds() -> None:
    assert chunk_bytes_for(CPU) == CPU_CHUNK_BYTES
    assert chunk_bytes_for(CUDA, free=4 * GIB) == GIB
    assert chunk_bytes_for(CUDA, free=100 * GIB) == MAX_CHUNK_BYTES
    assert chunk_bytes_for(CUDA, free=GIB // 16) == MIN_CHUNK_BYTES


def test_state_goes_to_the_host_only_on_an_accelerator_that_is_short() -> None:
    hidden, cache = state_bytes(8192, 32, 4096, 1024, 2)  # Llama-3.1-8B's shape in bfloat16
    assert (hidden, cache) == (33 * 8192 * 4096 * 2, 2 * 32 * 8192 * 1024 * 2)
    needed = hidden + cache
    assert not keep_on_host(CUDA, needed, free=60 * GIB)  # an 80 GB GPU after the model's 16 GB
    assert keep_on_host(CUDA, needed, free=4 * GIB)
    assert not keep_on_host(CPU, needed)


def test_memory_reports_each_part_as_the_formula_says() -> None:
    model = tiny_model("llama", vocab_size=VOCAB)  # grouped-query attention: keys narrower than d_model
    session = LensSession(model, TOKENIZER)
    session.set_text(TEXT)
    tokens = len(session.tokens.ids)
    layers, d_model, kv_width, itemsize = kept_widths(session._tracks[0].adapter)
    assert kv_width < d_model
    hidden, cache = state_bytes(tokens, layers, d_model, kv_width, itemsize)
    memory = session.memory()
    assert (memory["hidden_states"], memory["cache"]) == (hidden, cache)
    stats, ids, probs = session.grid_arrays()
    cells = stats.shape[1] * stats.shape[2]
    assert memory["cells"] == stats.nbytes + ids.nbytes + probs.nbytes + 4 * cells  # and each cell's log-sum-exp
    session.set_pins([session.make_pin("the"), session.make_pin("a")])
    assert session.memory()["cells"] == memory["cells"] + 2 * 4 * cells  # a float per pinned item
    assert memory["kept_on"] == "cpu"
    assert 0 < memory["largest_chunk"] <= 2 * CPU_CHUNK_BYTES
    session.set_text(TEXT[:20])  # the state shrinks with the text
    assert session.memory()["hidden_states"] < hidden and session.memory()["cache"] < cache


def test_a_small_chunk_bound_is_what_the_largest_chunk_reports() -> None:
    session = LensSession(tiny_model("gpt_neox", vocab_size=VOCAB), TOKENIZER, model_b=tiny_model("gpt_neox", seed=1,
                          vocab_size=VOCAB))
    rows = session._tracks[0].adapter.num_layers + 1
    bound = 4 * VOCAB * 2 * rows * 2  # two positions of both models' float32 logits
    small = LensSession(tiny_model("gpt_neox", vocab_size=VOCAB), TOKENIZER, chunk_bytes=bound)
    small.set_text(TEXT)
    session.set_text(TEXT)
    assert small.memory()["largest_chunk"] <= 2 * bound < session.memory()["largest_chunk"]


def test_keep_on_is_checked_and_host_on_a_cpu_changes_nothing() -> None:
    """On a CPU the host is the device: "host" keeps the same grid (tests/test_cuda.py checks it on a GPU)."""
    with pytest.raises(ValueError, match="keep_on must be one of 'auto', 'device', 'host'"):
        LensSession(tiny_model("gpt_neox", vocab_size=VOCAB), TOKENIZER, keep_on="gpu")
    host = LensSession(tiny_model("gpt_neox", vocab_size=VOCAB), TOKENIZER, keep_on="host")
    plain = LensSession(tiny_model("gpt_neox", vocab_size=VOCAB), TOKENIZER, keep_on="device")
    for text in (TEXT, TEXT + " More.", TEXT[:30]):
        host.set_text(text)
        plain.set_text(text)
        np.testing.assert_array_equal(host.grid_arrays()[0], plain.grid_arrays()[0])


def test_the_widget_passes_keep_on_and_chunk_bytes_to_its_session() -> None:
    from lens_widget import LensWidget

    model = tiny_model("gpt_neox", vocab_size=VOCAB)
    widget = LensWidget(model, TOKENIZER, text=TEXT, keep_on="host", chunk_bytes=2**20)
    assert widget.session.chunk_bytes == 2**20 and widget.session.memory()["largest_chunk"] <= 2 * 2**20
    with pytest.raises(ValueError, match="keep_on must be one of"):
        LensWidget(tiny_model("gpt_neox", vocab_size=VOCAB), TOKENIZER, keep_on="gpu")
