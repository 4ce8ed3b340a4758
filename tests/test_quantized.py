"""Models quantized with bitsandbytes (8-bit and 4-bit, whose head stays in float32): the output row is
the quantized model's own output, the embedding row the unquantized model's, and incremental == fresh;
where bitsandbytes cannot run a layer, the error says so and what to do."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from grid_checks import assert_same_grid
from tiny_models import tiny_model, tiny_tokenizer

pytest.importorskip("bitsandbytes")
from transformers import AutoModelForCausalLM, BitsAndBytesConfig

from lens_widget import AdapterError, LensSession
from lens_widget.statistics import STATISTICS

VOCAB = 400
TOKENIZER = tiny_tokenizer(VOCAB)
TEXT = "The quick brown fox jumps over the lazy dog. Paris is the capital of France."
QUANTIZED = {"8-bit": BitsAndBytesConfig(load_in_8bit=True), "4-bit": BitsAndBytesConfig(load_in_4bit=True)}


def saved_model(tmp: Path, **sizes: int) -> Path:
    tiny_model("llama", vocab_size=VOCAB, **sizes).save_pretrained(tmp)
    return tmp


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("bits", sorted(QUANTIZED))
def test_a_bitsandbytes_model_gives_its_own_output_row_and_the_exact_embedding_row(bits: str, tmp_path: Path) -> None:
    folder = saved_model(tmp_path, hidden_size=128, intermediate_size=256)  # wide enough for the CPU kernels
    plain = AutoModelForCausalLM.from_pretrained(folder)
    quantized = AutoModelForCausalLM.from_pretrained(folder, quantization_config=QUANTIZED[bits])
    assert quantized.get_output_embeddings().weight.dtype == plain.dtype  # the head is not quantized
    session, reference = LensSession(quantized, TOKENIZER), LensSession(plain, TOKENIZER)
    for text in (TEXT[:40], TEXT, TEXT.replace("lazy", "sleepy")):
        session.set_text(text)
        reference.set_text(text)
    # The embedding row is exact (nothing is quantized before the head, which is not quantized), and the
    # output row is the quantized model's own output, checked in float64.
    entropy = STATISTICS.index("entropy")
    ours, theirs = session.grid_arrays()[0][entropy], reference.grid_arrays()[0][entropy]
    np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-5, atol=1e-5)
    with torch.inference_mode():
        logits = quantized(input_ids=torch.tensor([session.tokens.ids])).logits[0].double()
    logp = torch.log_softmax(logits, -1)
    np.testing.assert_allclose(ours[-1], -(logp.exp() * logp).sum(-1).numpy(), rtol=1e-3, atol=1e-3)
    fresh = LensSession(quantized, TOKENIZER)
    fresh.set_text(session.text)
    assert_same_grid(session, fresh, tol=1e-3)  # incremental == fresh within the 8-bit kernels' rounding


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_a_layer_bitsandbytes_cannot_run_here_gives_an_error_that_says_so(tmp_path: Path) -> None:
    folder = saved_model(tmp_path)  # 32 inputs: narrower than the 4-bit CPU kernel's block of 64
    quantized = AutoModelForCausalLM.from_pretrained(folder, quantization_config=QUANTIZED["4-bit"])
    with pytest.raises(AdapterError, match=r"quantized with bitsandbytes \(Linear4bit\), whose kernels failed on cpu.*"
                                           r"load the model on a GPU, or without quantization_config"):
        LensSession(quantized, TOKENIZER)
