"""The model adapter on every causal-LM family transformers 5 ships from the issue's list (and more)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from grid_checks import assert_same_top_ids
from tiny_models import FAMILIES, tiny_model
from torch import nn

from lens_widget import AdapterError, LogitLens, ModelAdapter, compute_grid, next_token_targets
from lens_widget.statistics import STATISTICS

IDS = torch.tensor([5, 17, 3, 40, 40, 9, 71, 2, 33])


def last_block_output(adapter: ModelAdapter, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The last block's raw output (before any final norm) and the model's own logits."""
    model = adapter.model
    blocks = model.get_submodule(adapter.layers_name)
    captured: dict[str, torch.Tensor] = {}

    def hook(module: nn.Module, args: object, output: object) -> None:
        captured["h"] = output[0] if isinstance(output, tuple) else output  # type: ignore[index]

    handle = blocks[-1].register_forward_hook(hook)
    try:
        with torch.no_grad():
            logits = model(input_ids=ids[None], use_cache=False).logits[0]
    finally:
        handle.remove()
    return captured["h"][0], logits


@pytest.mark.parametrize("family", FAMILIES)
def test_output_through_the_adapter_equals_the_models_own_logits(family: str) -> None:
    model = tiny_model(family)
    adapter = ModelAdapter(model)
    assert adapter.num_layers == model.config.num_hidden_layers
    assert adapter.final_norm_names, "every listed family has a final norm"
    assert model.get_submodule(adapter.head_name) is model.get_output_embeddings()
    h, logits = last_block_output(adapter, IDS)
    with torch.no_grad():
        ours = adapter.unembed(h)
    # float32 throughout; the only difference is kernel scheduling.
    torch.testing.assert_close(ours, logits, rtol=1e-5, atol=1e-5)
    forward = adapter.forward(IDS)
    assert forward.hidden.shape == (adapter.num_layers + 1, len(IDS), adapter.d_model)
    with torch.no_grad():
        output = adapter.output_logits(forward.hidden[-1])
    torch.testing.assert_close(output, logits, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("family", ["gemma2", "gemma3_text"])
def test_final_logit_softcapping_is_reproduced(family: str) -> None:
    model = tiny_model(family, final_logit_softcapping=1.5)
    adapter = ModelAdapter(model)
    assert adapter.logit_transform.softcap == 1.5
    h, logits = last_block_output(adapter, IDS)
    assert logits.abs().max() <= 1.5
    with torch.no_grad():
        raw = adapter.head(adapter.final_norm(h))
    assert raw.abs().max() > 1.5, "the tiny model must exceed the cap, or this test proves nothing"
    torch.testing.assert_close(adapter.unembed(h).detach(), logits, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("family", ["gemma2", "llama"])
def test_decoding_into_a_buffer_gives_the_same_logits(family: str) -> None:
    """The grid's GEMM into a reused float32 buffer, the post-processing in place: the same numbers."""
    model = tiny_model(family, final_logit_softcapping=1.5) if family == "gemma2" else tiny_model(family)
    adapter = ModelAdapter(model)
    with torch.no_grad():
        h = adapter.final_norm(adapter.forward(IDS).hidden[1])
        plain = adapter.decode(h)
        out = torch.full((len(IDS), adapter.vocab_size), torch.nan)
        assert adapter.decode(h, out=out) is out
        torch.testing.assert_close(out, plain, rtol=1e-6, atol=1e-6)
        half = adapter.decode(h, out=torch.empty_like(out), dtype=torch.bfloat16)
        assert half.dtype == torch.float32
        torch.testing.assert_close(half, plain, rtol=0.05, atol=0.05)  # bfloat16 inputs: about 3 digits
        assert adapter.decode(h, dtype=torch.bfloat16).dtype == torch.bfloat16


def test_a_hooked_or_custom_head_is_called_as_the_module_even_into_a_buffer() -> None:
    model = tiny_model("llama")
    adapter = ModelAdapter(model)
    with torch.no_grad():
        h = adapter.final_norm(adapter.forward(IDS).hidden[1])
        plain = adapter.decode(h)
        handle = adapter.head.register_forward_hook(lambda module, args, output: output * 2)
        try:
            out = adapter.decode(h, out=torch.empty_like(plain))
        finally:
            handle.remove()
    torch.testing.assert_close(out, plain * 2)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_reduced_precision_models_give_float32_statistics(family: str, dtype: torch.dtype) -> None:
    model = tiny_model(family, dtype=dtype)
    adapter = ModelAdapter(model)
    assert adapter.dtype == dtype
    forward = adapter.forward(IDS)
    assert forward.hidden.dtype == dtype
    rows = list(range(adapter.num_layers + 1))
    grid = compute_grid(adapter, LogitLens(), forward, next_token_targets(IDS), rows, top_k=5)
    assert grid.stats.dtype.name == "float32"
    finite = grid.stats[[STATISTICS.index(s) for s in ("entropy", "forward_kl", "max_probability")]]
    assert np.isfinite(finite).all()
    out = grid.rows.index(adapter.num_layers)
    assert (grid.statistic("forward_kl")[out] == 0).all()
    with torch.no_grad():
        model_logits = model(input_ids=IDS[None]).logits[0].float()
    # The most likely token is the model's own, up to ties (frequent in float16 and bfloat16).
    top = torch.softmax(model_logits, -1).max(-1)
    assert_same_top_ids(
        grid.top_ids[[out], :, :1],
        grid.top_probs[[out], :, :1],
        top.indices[None, :, None].numpy(),
        top.values[None, :, None].numpy(),
        lambda r, t: model_logits[t],
        tol=1e-3,
    )


class _NoHead(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.config = tiny_model("gpt2").config

    def get_output_embeddings(self) -> None:
        return None


def test_a_model_without_an_unembedding_is_refused_naming_its_class() -> None:
    with pytest.raises(AdapterError, match=r"_NoHead: get_output_embeddings\(\) returned NoneType"):
        ModelAdapter(_NoHead())


def test_a_module_without_a_config_is_refused() -> None:
    with pytest.raises(AdapterError, match="Linear has no `config`"):
        ModelAdapter(nn.Linear(2, 2))


def test_a_final_norm_that_cannot_be_replayed_is_refused_naming_what_was_looked_for() -> None:
    model = tiny_model("llama")
    norm = model.model.norm
    calls = {"n": 0}

    def stateful(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        # A norm that behaves differently each call cannot be reproduced by replaying it.
        calls["n"] += 1
        return output * calls["n"]

    norm.register_forward_hook(stateful)
    with pytest.raises(AdapterError, match=r"LlamaForCausalLM: looked for the final norm .*model\.layers\.2.*lm_head"):
        ModelAdapter(model)


def test_unknown_logit_post_processing_is_refused() -> None:
    model = tiny_model("gpt2")
    model.lm_head.register_forward_hook(lambda m, a, out: out)
    original = model.forward

    def scaled(*args: object, **kwargs: object) -> object:
        out = original(*args, **kwargs)
        out.logits = out.logits * 3
        return out

    model.forward = scaled  # type: ignore[method-assign]
    with pytest.raises(AdapterError, match="GPT2LMHeadModel: the model post-processes its head's output"):
        ModelAdapter(model)


def test_a_wrong_layer_count_is_refused() -> None:
    model = tiny_model("gpt2")
    model.config.num_hidden_layers = 7
    with pytest.raises(AdapterError, match="GPT2LMHeadModel: found no ModuleList of num_hidden_layers = 7"):
        ModelAdapter(model)


def test_a_model_with_a_nan_weight_is_adapted_not_mistaken_for_an_unknown_layout() -> None:
    # NaN propagates identically through the replayed final norm: what the grid must then show as
    # invalid cells, not a refusal that blames the model's structure.
    model = tiny_model("llama")
    with torch.no_grad():
        model.model.layers[1].mlp.down_proj.weight.fill_(torch.nan)
    adapter = ModelAdapter(model)
    assert adapter.final_norm_names == ("model.norm",)


def test_a_precision_asked_for_does_not_apply_to_a_head_called_as_a_module() -> None:
    """A hooked head runs in its own dtype (an accelerator's bfloat16 default must not break it)."""
    m = tiny_model("gpt_neox", vocab_size=64)
    adapter = ModelAdapter(m)
    x = torch.randn(3, adapter.d_model)
    handle = adapter.head.register_forward_hook(lambda mod, args, out: None)
    try:
        hooked = adapter.decode(x, out=torch.empty(3, adapter.vocab_size), dtype=torch.bfloat16)
    finally:
        handle.remove()
    torch.testing.assert_close(hooked, adapter.decode(x))  # float32, as the module computes it


def test_the_head_weight_is_converted_once_while_it_is_unchanged() -> None:
    m = tiny_model("gpt_neox", vocab_size=64)
    adapter = ModelAdapter(m)
    x = torch.randn(2, adapter.d_model)
    out = torch.empty(2, adapter.vocab_size)
    adapter.decode(x, out=out, dtype=torch.bfloat16)
    first = adapter._cast_head
    adapter.decode(x, out=out, dtype=torch.bfloat16)
    assert adapter._cast_head is first
    with torch.no_grad():
        adapter.head.weight.add_(1.0)  # changed in place: converted again
    adapter.decode(x, out=out, dtype=torch.bfloat16)
    assert adapter._cast_head is not first


def test_a_head_whose_forward_is_replaced_on_the_instance_is_called_as_a_module() -> None:
    m = tiny_model("gpt_neox", vocab_size=64)
    adapter = ModelAdapter(m)
    calls: list[int] = []
    original = adapter.head.forward

    def counted(x: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        return original(x)

    adapter.head.forward = counted  # type: ignore[method-assign]  # as accelerate's hooks do
    adapter.decode(torch.randn(2, adapter.d_model), out=torch.empty(2, adapter.vocab_size))
    assert calls
