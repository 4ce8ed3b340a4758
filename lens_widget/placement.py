"""Where a model's modules run, and what others wrapped them in: accelerate's dispatched and offloaded
models, nnsight's models, and models never loaded.

A model loaded with `device_map="auto"` or placed by `accelerate.dispatch_model` keeps each module on
its own device, or offloaded (its parameters on the meta device, the real values in CPU memory or on
disk, brought to an *execution device* by a hook around each call). So "the model's device" does not
exist: the lens-widget asks each module where it runs. A parameter on the meta device with no hook
to load it means the model's weights were never loaded, which no forward pass can survive.

An nnsight model (`nnsight.LanguageModel`) wraps a transformers model and puts a forward of its own
on each of its modules, which outside a trace runs the class's forward unchanged: lens-widget works
on the transformers model inside (`unwrap`).

accelerate and nnsight are optional: nothing here imports either.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from .errors import ModelNotLoadedError

HOOK_ATTR = "_hf_hook"
"""The attribute on which accelerate keeps a module's hook (accelerate.hooks.add_hook_to_module)."""

CPU = torch.device("cpu")


def has_hook(module: nn.Module) -> bool:
    """Whether accelerate hooked the module (its instance forward then wraps the class's)."""
    return getattr(module, HOOK_ATTR, None) is not None


def _hooks(module: nn.Module) -> list[Any]:
    """The module's accelerate hooks: one, or those of a SequentialHook."""
    hook = getattr(module, HOOK_ATTR, None)
    if hook is None:
        return []
    return list(getattr(hook, "hooks", None) or [hook])


def aligns_devices_only(module: nn.Module) -> bool:
    """Whether the module's accelerate hooks only move its inputs to its device (AlignDevicesHook
    without offload): calling its weight directly there computes what the module does."""
    hooks = _hooks(module)
    return bool(hooks) and all(type(h).__name__ == "AlignDevicesHook" and not h.offload for h in hooks)


def is_offloaded(module: nn.Module) -> bool:
    """Whether the module's own parameters are brought in by a hook at each call (CPU or disk offload)."""
    return any(bool(getattr(h, "offload", False)) for h in _hooks(module))


def is_dispatched(model: nn.Module) -> bool:
    """Whether accelerate placed the model with hooks (device_map over several devices or offloaded,
    dispatch_model, cpu_offload): it must then not be moved as a whole. A device_map of one device
    leaves no hooks, and such a model moves like any other."""
    return any(has_hook(m) for m in model.modules())


def execution_device(module: nn.Module) -> torch.device | None:
    """Where the module computes: its accelerate hook's execution device, else its own parameters'
    (None for a module with neither, or only meta parameters)."""
    for hook in _hooks(module):
        device = getattr(hook, "execution_device", None)
        if device is not None:
            return torch.device(device) if not isinstance(device, int) else torch.device("cuda", device)
    for param in module.parameters(recurse=False):
        if param.device.type != "meta":
            return param.device
    return None


def input_device(model: nn.Module) -> torch.device:
    """Where the model's input ids go: the input embedding's execution device (the CPU for an
    offloaded embedding on a CPU-only machine; its hook moves them on anyway)."""
    embeddings = model.get_input_embeddings()
    device = execution_device(embeddings) if isinstance(embeddings, nn.Module) else None
    return CPU if device is None else device


def check_loaded(model: nn.Module, what: str) -> None:
    """Refuse a model whose parameters are on the meta device with no hook to bring them in: built
    under `init_empty_weights()` or `from_pretrained(device_map="meta")`, it has no weights to run."""
    for name, module in model.named_modules():
        if is_offloaded(module):
            continue
        for param_name, param in module.named_parameters(recurse=False):
            if param.device.type == "meta":
                full = f"{name}.{param_name}" if name else param_name
                raise ModelNotLoadedError(
                    f"{what} {type(model).__name__} is on the meta device (its parameter {full} has no values): it "
                    "was built without loading its weights. Load them first, e.g. "
                    "AutoModelForCausalLM.from_pretrained(name, device_map='auto'), or "
                    "accelerate.load_checkpoint_and_dispatch(model, checkpoint, device_map='auto')."
                )


@contextmanager
def loaded(module: nn.Module) -> Iterator[nn.Module]:
    """The module with its real parameters in place (an offloaded module's are brought in for the
    duration, as its hook does around a call, and released after)."""
    if not is_offloaded(module):
        yield module
        return
    from accelerate.utils import align_module_device  # only offloaded modules carry accelerate's hook

    with align_module_device(module):
        yield module


@contextmanager
def loaded_weight(module: nn.Module) -> Iterator[torch.Tensor]:
    """The module's real weight, wherever it lives (brought in for the duration when offloaded)."""
    with loaded(module):
        weight = module.weight
        assert isinstance(weight, torch.Tensor)
        yield weight.detach()


def is_nnsight(model: Any) -> bool:
    """Whether `model` is an nnsight model (a LanguageModel, another of its wrappers, or a subclass)."""
    nnsight_class = any(cls.__module__.startswith("nnsight.") for cls in type(model).__mro__)
    return nnsight_class and isinstance(getattr(model, "_module", None), nn.Module)


def unwrap(model: Any) -> Any:
    """The transformers model inside an nnsight model (anything else as it is). A model nnsight wraps
    lazily by its name holds no weights until its first trace, when nnsight loads them: lens-widget
    runs it at once, so they are loaded now (`dispatch`)."""
    if not is_nnsight(model):
        return model
    if getattr(model, "dispatched", True) is False:
        model.dispatch()
    return model._module


def is_transparent_forward(module: nn.Module) -> bool:
    """Whether the module's instance forward is nnsight's, which outside a trace runs the class's own
    forward unchanged (so the module computes exactly what its class does)."""
    forward = vars(module).get("forward")
    state = getattr(forward, "state", None)
    return type(forward).__module__.startswith("nnsight.") and getattr(state, "body", None) is type(module).forward
