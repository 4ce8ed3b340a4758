"""Tiny randomly initialised causal LMs built from transformers configs (nothing is downloaded)."""

from __future__ import annotations

from typing import Any

import torch
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedModel

VOCAB = 96
HIDDEN = 32
LAYERS = 3
HEADS = 4

# Per-family overrides on top of the shared tiny sizes; keys are transformers model types.
_OVERRIDES: dict[str, dict[str, Any]] = {
    "gpt2": {"n_positions": 128},
    "gpt_neox": {"max_position_embeddings": 128, "rotary_pct": 0.5},
    "gptj": {"n_positions": 128, "rotary_dim": 4},
    "gpt_neo": {
        "max_position_embeddings": 128,
        "attention_types": [[["global", "local"], 1], [["global"], 1]],
        "window_size": 8,
    },
    "opt": {"max_position_embeddings": 128, "ffn_dim": 64, "word_embed_proj_dim": HIDDEN},
    "bloom": {"n_head": HEADS},
    "llama": {"max_position_embeddings": 128, "num_key_value_heads": 2},
    "mistral": {"max_position_embeddings": 128, "num_key_value_heads": 2, "sliding_window": 8},
    "qwen2": {"max_position_embeddings": 128, "num_key_value_heads": 2},
    "qwen3": {"max_position_embeddings": 128, "num_key_value_heads": 2, "head_dim": 8},
    "gemma": {"max_position_embeddings": 128, "num_key_value_heads": 2, "head_dim": 8},
    "gemma2": {
        "max_position_embeddings": 128,
        "num_key_value_heads": 2,
        "head_dim": 8,
        "final_logit_softcapping": 2.0,
        "attn_logit_softcapping": 50.0,
        "sliding_window": 8,
        "query_pre_attn_scalar": 8,
    },
    "gemma3_text": {
        "max_position_embeddings": 128,
        "num_key_value_heads": 2,
        "head_dim": 8,
        "final_logit_softcapping": 2.0,
        "sliding_window": 8,
        "query_pre_attn_scalar": 8,
    },
    "phi": {"max_position_embeddings": 128, "partial_rotary_factor": 0.5},
    "phi3": {"max_position_embeddings": 128, "num_key_value_heads": 2, "pad_token_id": 0},
    "falcon": {"new_decoder_architecture": True, "num_kv_heads": 2},
    "olmo2": {"max_position_embeddings": 128, "num_key_value_heads": 2},
    "stablelm": {"max_position_embeddings": 128, "num_key_value_heads": 2},
    "cohere": {"max_position_embeddings": 128, "num_key_value_heads": 2, "logit_scale": 0.5},
    "granite": {"max_position_embeddings": 128, "num_key_value_heads": 2, "logits_scaling": 4.0},
    "mixtral": {"max_position_embeddings": 128, "num_key_value_heads": 2, "num_local_experts": 2},
    "starcoder2": {"max_position_embeddings": 128, "num_key_value_heads": 2},
}


FAMILIES: tuple[str, ...] = tuple(_OVERRIDES)
"""Every family tested: the issue's list (GPT-2 … Falcon) and the other common decoder LMs."""


def tiny_config(model_type: str, **extra: Any) -> Any:
    """A config of the family with a tiny width, depth and vocabulary."""
    kwargs: dict[str, Any] = {
        "vocab_size": VOCAB,
        "hidden_size": HIDDEN,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS,
        "intermediate_size": 2 * HIDDEN,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "pad_token_id": 0,
    }
    kwargs.update(_OVERRIDES.get(model_type, {}))
    kwargs.update(extra)
    return AutoConfig.for_model(model_type, **kwargs)


def tiny_model(model_type: str, *, seed: int = 0, dtype: torch.dtype = torch.float32, **extra: Any) -> PreTrainedModel:
    """A randomly initialised model whose final norm is perturbed, so that a skipped norm shows."""
    torch.manual_seed(seed)
    config = tiny_config(model_type, **extra)
    model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    with torch.no_grad():
        for p in model.parameters():
            # Random norm gains and biases: default init (ones, zeros) would hide a missing norm.
            if p.ndim == 1:
                p.add_(torch.randn_like(p) * 0.1)
        # Default init gives near-uniform predictions; sharper ones make every statistic informative.
        model.get_output_embeddings().weight.mul_(50.0)
    return model.eval()


_CORPUS = """The quick brown fox jumps over the lazy dog. A lens shows what each layer of a transformer
would predict next. Researchers type a sentence, and the picture follows: entropy falls with depth,
the tuned lens agrees with the model sooner than the logit lens. Paris is the capital of France;
Berlin is the capital of Germany. def main(): return 42  # code, numbers 3.14159 and symbols {}[]()
Ünïcödé, naïve café, 東京, emoji 🙂🚀 and tabs\tand new
lines.
"""


def bpe_tokenizer(vocab_size: int = VOCAB, corpus: str = _CORPUS) -> Any:
    """A byte-level BPE (GPT-2's scheme) trained on `corpus`: a real fast tokenizer, made offline."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

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


def tiny_tokenizer(vocab_size: int = VOCAB) -> Any:
    """A byte-level BPE trained on a corpus with unicode, emoji, tabs and newlines."""
    return bpe_tokenizer(vocab_size, _CORPUS)


def random_neox(layers: int = 6, hidden: int = 128, seed: int = 0, **config: Any) -> tuple[PreTrainedModel, Any]:
    """(model, tokenizer): a random-weight GPT-NeoX of a useful size, for benchmarks and long texts.

    Its output embedding is scaled up so that predictions are sharp rather than near uniform: the
    statistics and top-k lists then vary across cells, as they do for a trained model.
    """
    tokenizer = bpe_tokenizer(512)
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
    with torch.no_grad():
        model.get_output_embeddings().weight.mul_(20.0)
    return model, tokenizer


def random_lens(model: Any, scale: float = 0.3) -> Any:
    """A tuned lens for `model` with random translators: far from the logit lens, so a lens that is
    skipped, or applied to the wrong layer, shows in every row."""
    from lens_widget import TunedLens

    lens = TunedLens.from_model(model)
    with torch.no_grad():
        for p in lens.parameters():
            p.normal_(0, scale)
    return lens


class NaNLens:
    """A lens that breaks one layer's translation, as a diverged training run would: that row's
    cells are invalid."""

    name = "tuned"

    def __init__(self, broken: int) -> None:
        self.broken = broken

    def translate(self, hidden: torch.Tensor, layers: list[int]) -> torch.Tensor:
        out = hidden.clone()
        for r, layer in enumerate(layers):
            if layer == self.broken:
                out[r] = torch.nan
        return out
