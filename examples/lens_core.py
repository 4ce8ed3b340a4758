"""Print a logit-lens and tuned-lens table for a small model, offline.

Usage: python examples/lens_core.py [model id or local folder]

Without an argument it builds a tiny random GPT-NeoX (Pythia's architecture) from its config, so it
runs on a machine with no network; its predictions are noise, but every number is computed for real.
With a model id it loads that model through transformers (which needs the Hub or a local copy).
"""

from __future__ import annotations

import sys

import torch
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedModel

from lens_widget import LogitLens, ModelAdapter, TunedLens, compute_grid, next_token_targets, row_labels


def tiny_pythia() -> PreTrainedModel:
    torch.manual_seed(0)
    config = AutoConfig.for_model(
        "gpt_neox", vocab_size=256, hidden_size=64, num_hidden_layers=6, num_attention_heads=4, intermediate_size=256
    )
    return AutoModelForCausalLM.from_config(config).eval()


def main() -> None:
    model = AutoModelForCausalLM.from_pretrained(sys.argv[1]) if len(sys.argv) > 1 else tiny_pythia()
    adapter = ModelAdapter(model)
    print(f"{type(model).__name__}: {adapter.num_layers} layers, d_model {adapter.d_model}")
    print(f"final norm: {', '.join(adapter.final_norm_names)}; unembedding: {adapter.head_name}")
    ids = torch.tensor([5, 42, 7, 7, 99, 3, 180, 12])
    forward = adapter.forward(ids)
    rows = list(range(adapter.num_layers + 1))
    for lens in (LogitLens(), TunedLens.from_model(adapter)):
        grid = compute_grid(adapter, lens, forward, next_token_targets(ids), rows, top_k=5)
        print(f"\n{lens.name} lens: top-1 token id per cell (entropy in nats)")
        entropy = grid.statistic("entropy")
        for r, label in enumerate(row_labels(grid.rows, adapter.num_layers)):
            cells = " ".join(f"{grid.top_ids[r, t, 0]:>4d}({entropy[r, t]:.1f})" for t in range(len(ids)))
            print(f"{label:>7} {cells}")
        kl = grid.statistic("forward_kl")
        print("mean KL(model || lens) per row, nats:", [round(float(v), 4) for v in kl.mean(axis=1)])


if __name__ == "__main__":
    main()
