"""What a device can hold and compute: the head GEMM's precision, the size of a chunk of lens work,
and whether a session's kept state fits beside the model.

The lens costs more than the model for models up to several billion parameters (every row is a
GEMM with the whole unembedding), so on an accelerator it runs in half precision, in chunks sized to
the memory the device has free at that moment rather than a fixed bound, and the hidden states and
key/value cache a session keeps move to the host when the device is short.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from .adapter import ModelAdapter

CPU_CHUNK_BYTES = 256 * 2**20
"""The float32 working memory of one chunk on a CPU: large GEMM blocks, while the statistics sweep
each chunk a cache-sized slab at a time (grid.SLAB_FLOATS); larger chunks measured no faster."""

MIN_CHUNK_BYTES = 64 * 2**20
MAX_CHUNK_BYTES = 8 * 2**30
"""Bounds of an accelerator's chunk: beyond 8 GiB the GEMM is as efficient and the memory is better
left to the model's own activations."""

FREE_SHARE = 4
"""An accelerator's chunk takes at most 1/FREE_SHARE of the memory free when it starts: the rest is
for the model's forward pass (whose activations grow with the suffix) and the allocator's slack."""

STATE_SHARE = 2
"""Kept state (hidden states and cache at `max_tokens`) stays on the device while it needs at most
1/STATE_SHARE of the memory free after the model is loaded; beyond that it is kept on the host."""


def supports_bfloat16(device: torch.device) -> bool:
    """Whether the device computes in bfloat16 natively: a CUDA GPU from compute capability 8 (Ampere),
    not Colab's free T4 (7.5), where bfloat16 is emulated; other accelerators (MPS, XPU) have it."""
    if device.type == "cuda":
        return torch.cuda.get_device_capability(device) >= (8, 0)
    return device.type != "cpu"


def gemm_dtype(device: torch.device, weight_dtype: torch.dtype, bfloat16: bool | None = None) -> torch.dtype | None:
    """The head GEMM's input precision by default (None: the head weight's own).

    On a CPU, the weight's: the float32 GEMM is exact there and half precision is no faster. On an
    accelerator, half precision accumulated into float32 logits: bfloat16 where the device has it
    (`bfloat16`, else asked of the device), otherwise float16, whose range the final-normed inputs
    and the head's weights stay well within; a half-precision model's own dtype when the device runs it.
    """
    if device.type == "cpu":
        return None
    native = supports_bfloat16(device) if bfloat16 is None else bfloat16
    if weight_dtype == torch.bfloat16 and native:
        return torch.bfloat16
    if weight_dtype == torch.float16:
        return torch.float16
    return torch.bfloat16 if native else torch.float16


def free_bytes(device: torch.device) -> int | None:
    """Memory the device can still give this process: free on the device plus what PyTorch's caching
    allocator holds unused. None for a CPU (the operating system's business) and devices that do
    not say."""
    if device.type != "cuda":
        return None
    free, _total = torch.cuda.mem_get_info(device)
    cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    return int(free + cached)


def chunk_bytes_for(device: torch.device, free: int | None = None) -> int:
    """The working memory of one chunk of lens work on `device`: a share of what is free (`free`, else
    asked of the device), within [MIN_CHUNK_BYTES, MAX_CHUNK_BYTES]; CPU_CHUNK_BYTES on a CPU."""
    free = free_bytes(device) if free is None else free
    if free is None:
        return CPU_CHUNK_BYTES
    return int(min(MAX_CHUNK_BYTES, max(MIN_CHUNK_BYTES, free // FREE_SHARE)))


def kept_widths(adapter: ModelAdapter) -> tuple[int, int, int, int]:
    """(layers, d_model, the key/value width per layer, bytes per value) of what a session keeps per
    token of one model (`state_bytes`): the key width is fewer heads' than d_model under grouped-query
    attention."""
    config = adapter.model.config
    config = config.get_text_config() if hasattr(config, "get_text_config") else config
    heads = getattr(config, "num_attention_heads", None) or getattr(config, "n_head", None) or 1
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or adapter.d_model // heads
    return adapter.num_layers, adapter.d_model, int(kv_heads * head_dim), adapter.dtype.itemsize


def state_bytes(tokens: int, layers: int, d_model: int, kv_width: int, itemsize: int) -> tuple[int, int]:
    """(hidden states, key/value cache) a session keeps for `tokens` tokens of one model, in bytes:
    (L + 1) × T × d and 2 × L × T × kv_width values of `itemsize` bytes (kv_width: the keys' width,
    d_model unless the model shares key/value heads)."""
    return (layers + 1) * tokens * d_model * itemsize, 2 * layers * tokens * kv_width * itemsize


def keep_on_host(device: torch.device, needed: int, free: int | None = None) -> bool:
    """Whether state of `needed` bytes goes to the host: on an accelerator whose free memory
    (`free`, else asked) is less than STATE_SHARE times it. Never on a CPU, which is the host."""
    free = free_bytes(device) if free is None else free
    return free is not None and needed * STATE_SHARE > free
