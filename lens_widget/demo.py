"""A small model that works offline, for the quick start, the examples and the browser tests.

It is a GPT-NeoX (Pythia's architecture) with random weights and a byte-level BPE tokenizer trained
on the spot on a short built-in text: every number the widget shows is computed for real, but the
predictions are noise. For meaningful pictures load a real model, e.g.
`AutoModelForCausalLM.from_pretrained("EleutherAI/pythia-160m-deduped")`.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedModel, PreTrainedTokenizerFast

_CORPUS = """The logit lens decodes every layer of a transformer as if it were the last. The tuned lens
learns a small affine translator for each layer first, and agrees with the model's own output much
sooner. Type a sentence and watch the predictions sharpen with depth: the capital of France is Paris,
the capital of Germany is Berlin, two plus two is four. def main(): return 42  # code and numbers 3.14
"""


def demo_tokenizer(vocab_size: int = 512, corpus: str = _CORPUS) -> PreTrainedTokenizerFast:
    """A byte-level BPE (GPT-2's scheme) trained on `corpus`: a real fast tokenizer, made offline."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=["<|endoftext|>"],
        show_progress=False,
    )
    tokenizer.train_from_iterator([corpus] * 8, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="<|endoftext|>")


def demo_model(layers: int = 6, hidden: int = 128, seed: int = 0, **config: Any) -> tuple[PreTrainedModel, Any]:
    """(model, tokenizer): a random-weight GPT-NeoX and its tokenizer, built without any download."""
    tokenizer = demo_tokenizer()
    torch.manual_seed(seed)
    model_config = AutoConfig.for_model(
        "gpt_neox",
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        intermediate_size=4 * hidden,
        max_position_embeddings=2048,
        **config,
    )
    model = AutoModelForCausalLM.from_config(model_config).eval()
    with torch.no_grad():  # sharper than the default init's near-uniform predictions
        model.get_output_embeddings().weight.mul_(20.0)
    return model, tokenizer
