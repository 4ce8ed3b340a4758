"""blocks.after_attention: the residual stream after each block's attention, from one forward pass.

Checked against blocks.capture's own records of the same pass (the block's input and its attention
writer's output), for an additive block (GPT-2), a parallel one (GPT-NeoX) and one whose writers add
the residual themselves (BLOOM). tests/test_session.py checks the rows it gives against attention
outputs computed by hand, with no hooks at all.
"""

from __future__ import annotations

import pytest
import torch
from tiny_models import tiny_model

from lens_widget import ModelAdapter
from lens_widget.blocks import BlockLayout, after_attention, capture


@pytest.mark.parametrize("family", ["gpt2", "gpt_neox", "bloom", "gemma2"])
def test_after_attention_is_the_input_plus_the_attention_share(family: str) -> None:
    model = tiny_model(family)
    adapter = ModelAdapter(model)
    layout = BlockLayout(adapter)
    ids = torch.tensor([5, 17, 3, 40, 8, 22])
    what: dict[str, list[torch.Tensor | None]] = {}
    with after_attention(layout) as states, capture(layout, what):
        hidden = adapter.run(ids)[0]
    assert len(states) == adapter.num_layers
    for index, (state, parts) in enumerate(zip(states, layout.parts, strict=True)):
        given, written = what["input"][index], what["attention"][index]
        assert state is not None and given is not None and written is not None
        share = written - given if parts.adds_residual else written
        torch.testing.assert_close(state, given + share, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(given[0], hidden[index], rtol=1e-5, atol=1e-5)  # hidden_states[ℓ - 1]
    assert layout.parts[0].parallel == (family == "gpt_neox")
    assert layout.parts[0].adds_residual == (family == "bloom")
