"""Checks of what a LensSession is given, each failing with a message that says what to do.

Kept apart from the session so that session.py reads as the incremental algorithm it is.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from .adapter import ModelAdapter
from .placement import check_loaded, is_dispatched

DEFAULT_MAX_TOKENS = 2048
MODELS = ("a", "b")
"""Track names: model A (the reference, whose layers index the rows) and model B."""
_CONTEXT_ATTRS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length", "n_ctx")


def check_model(model: Any, what: str = "model") -> None:
    if not isinstance(model, nn.Module):
        hint = (
            f": load it first, e.g. AutoModelForCausalLM.from_pretrained({model!r})" if isinstance(model, str) else ""
        )
        got = type(model).__name__
        raise TypeError(f"{what} must be a transformers causal LM (a torch.nn.Module), got {got}{hint}")
    missing = _causal_lm_gap(model)
    if missing:
        raise TypeError(
            f"{what} must be a transformers causal LM, e.g. loaded with AutoModelForCausalLM.from_pretrained "
            f"(or an nnsight LanguageModel wrapping one), but {missing}: the lens reads the model's config, "
            "hidden states and unembedding"
        )
    check_loaded(model, what)


def _causal_lm_gap(model: nn.Module) -> str | None:
    """What a module lacks of a transformers causal LM, found before anything reads it (a bare
    nn.Module otherwise fails with an AttributeError deep in the session)."""
    name = type(model).__name__
    for attr in ("config", "get_input_embeddings", "get_output_embeddings"):
        if not hasattr(model, attr):
            return f"{name} has no `{attr}`"
    if model.get_output_embeddings() is None:
        return f"{name} has no output embedding (a base model without its language-model head)"
    return None


def check_movable(model: nn.Module, what: str, device: torch.device) -> None:
    """A model placed by accelerate cannot be moved as a whole (its hooks keep their devices)."""
    if is_dispatched(model):
        raise ValueError(
            f"{what} was placed by accelerate (device_map / dispatch_model / offload), so it cannot be moved to "
            f"{device}: leave device=None; the lens work then runs where its head is"
        )


def model_name(model: nn.Module) -> str:
    return str(getattr(model.config, "name_or_path", "") or type(model).__name__)


def display_names(models: Sequence[nn.Module], names: Sequence[str] | None, name: str | None) -> list[str]:
    """The names that label each model: given, else name_or_path, else the class; B's gets " (B)"
    when it would read the same as A's, so that no label is ambiguous."""
    if names is not None and name is not None:
        raise ValueError("give `name` (model A's) or `names` (one per model), not both")
    if names is None:
        display = [name or model_name(models[0]), *(model_name(m) for m in models[1:])]
    else:
        if isinstance(names, str) or not all(isinstance(n, str) and n for n in names) or len(names) != len(models):
            raise ValueError(f"names must be {len(models)} non-empty strings, one per model, got {names!r}")
        display = list(names)
    if len(display) == 2 and display[0] == display[1]:
        display[1] += " (B)"
    return display


def whose(key: str, names: Sequence[str], n_models: int) -> str:
    """How a message names one model: "the model's" alone, "model B's (name)" in A/B."""
    return "the model's" if n_models == 1 else f"model {key.upper()}'s ({names[MODELS.index(key)]})"


def check_same_vocabulary(adapters: Sequence[ModelAdapter], names: Sequence[str]) -> None:
    """A/B compares distributions token by token: both unembeddings must cover the same ids."""
    if len(adapters) == 2 and adapters[0].vocab_size != adapters[1].vocab_size:
        a, b = adapters
        raise ValueError(
            f"the models must share a vocabulary: model A ({names[0]}) has an unembedding of {a.vocab_size} tokens, "
            f"model B ({names[1]}) of {b.vocab_size}"
        )


def available_device(device: str | torch.device) -> torch.device:
    """The device, once a tensor could be made there: torch's own failures (an AssertionError when it
    was built without CUDA) do not say which device was asked for."""
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise ValueError(f"device {device!r} is not a torch device ({exc})") from None
    try:
        torch.empty(0, device=resolved)
    except (AssertionError, RuntimeError) as exc:
        raise RuntimeError(
            f"device {device!r} is not available on this machine ({_first_line(exc)}); "
            "pass device=None to keep the model where it is, or 'cpu'"
        ) from exc
    return resolved


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def check_vocabulary(tokenizer: Any, model: nn.Module, adapter: ModelAdapter, whose: str = "the model's") -> int:
    """Rows of the model's input embedding, which every id the tokenizer can give must index."""
    embeddings = model.get_input_embeddings()
    weight = getattr(embeddings, "weight", None)
    rows = int(weight.shape[0]) if isinstance(weight, torch.Tensor) else adapter.vocab_size
    if len(tokenizer) > rows:
        raise ValueError(
            f"the tokenizer has {len(tokenizer)} tokens but {whose} vocabulary has {rows} "
            "(its input embedding's rows): use the tokenizer the model was trained with"
        )
    return rows


def check_tokenizer_matches(tokenizer: Any, model: nn.Module, whose: str = "the model's") -> None:
    """Warn of a tokenizer that seems to belong to another model: one whose vocabulary fits is
    otherwise accepted, and its ids then mean other tokens, so every cell is silently wrong.

    Two signs together, as either alone is common and harmless: the names differ (a hub id against a
    local folder of the same model, say) and a special token's id differs from the model's config.
    """
    token_name = str(getattr(tokenizer, "name_or_path", "") or "")
    model_path = str(getattr(model.config, "name_or_path", "") or "")
    if not token_name or not model_path or token_name == model_path:
        return
    config = model.config.get_text_config()
    differing = []
    for role in ("bos", "eos", "pad"):
        token_id = getattr(tokenizer, f"{role}_token_id", None)
        expected = getattr(config, f"{role}_token_id", None)
        if not isinstance(token_id, int) or expected is None:
            continue
        allowed = set(expected) if isinstance(expected, (list, tuple)) else {expected}
        if token_id not in allowed:
            shown = sorted(allowed) if len(allowed) > 1 else next(iter(allowed))
            differing.append(f"{role} {token_id} (config: {shown})")
    if differing:
        warnings.warn(
            f"the tokenizer ({token_name!r}) may not be {whose} ({model_path!r}): its special token ids differ "
            f"from the model config's: {', '.join(differing)}. A tokenizer of another model gives ids that mean "
            "other tokens; load the tokenizer with the model's own name or folder.",
            UserWarning,
            stacklevel=3,
        )


def context_length(models: Sequence[nn.Module]) -> int | None:
    """The shortest context of the models (None when no config says)."""
    contexts = []
    for model in models:
        config = model.config.get_text_config()
        for attr in _CONTEXT_ATTRS:
            value = getattr(config, attr, None)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                contexts.append(value)
                break
    return min(contexts, default=None)


def positive_int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")
    return int(value)


def check_stride(stride: Any) -> int:
    return positive_int(stride, "layer_stride")


def check_top_k(top_k: Any, vocab: int) -> int:
    k = positive_int(top_k, "top_k")
    if k > vocab:
        raise ValueError(f"top_k must be at most the vocabulary size {vocab}, got {k}")
    return k


def check_max_tokens(max_tokens: Any, context: int | None) -> int:
    if max_tokens is None:
        return min(DEFAULT_MAX_TOKENS, context or DEFAULT_MAX_TOKENS)
    value = positive_int(max_tokens, "max_tokens")
    if context is not None and value > context:
        raise ValueError(f"max_tokens = {value} exceeds the model's context of {context} tokens")  # the shorter one
    return value
