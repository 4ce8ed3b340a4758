"""nnsight models: accepted wherever a model is, and the lens grid computed inside one nnsight trace,
locally or on NDIF.

An `nnsight.LanguageModel` wraps a transformers model, whose modules it keeps (with a forward of its
own on each instance that runs the original outside a trace). Everything in lens-widget works on that
model through `unwrap`, incrementally with its key/value cache as for any model.

`trace_grid` is the other way, the one that reaches NDIF: the whole reduction (hidden states → lens
→ final norm and head → top-k and the five statistics) runs inside the trace (trace_cells.py, shipped
by value), so only the compact cells leave it. On NDIF the model has no cache that lasts between
requests and no weights here: its layout (`TracePlan`: blocks, final norm, head) is found by running
nnsight's `scan` (shapes only, no weights), and each trace checks its own numbers: the final norm and
head replayed on the last block's output must give the model's logits, or the grid is refused.
remote="local" is nnsight's dry run of the remote path (the request serialised, lens-widget hidden,
deserialised and run here): the tests run it.

nnsight is optional (`pip install nnsight`, or `pip install ".[nnsight]"` in a clone): nothing here
imports it unless a model is one of its own.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .adapter import _find_blocks, _modules_between, _name_of, record_calls
from .errors import AdapterError, LensWidgetError
from .grid import LensGrid, next_token_targets
from .lenses import Lens, TunedLens
from .logit_transform import LogitTransform
from .placement import is_nnsight

NDIF_KEY_ENV = "NDIF_API_KEY"
"""The environment variable nnsight reads an NDIF API key from (besides its saved config)."""
REMOTE_LENS_BYTES = 256 * 2**20
"""The most tuned-lens weight one remote request may carry: it travels with every request (a tuned
lens of Llama-3.1-8B is 2 GB in bfloat16); the logit lens carries none."""
REMOTE_STATES = {
    "RECEIVED": "queued",
    "QUEUED": "queued",
    "PROVISIONING": "queued",
    "DEPLOYING": "queued",
    "DISPATCHED": "queued",
    "RUNNING": "running",
}
"""NDIF's job states as the widget names them ("queued" until the model runs the trace)."""

_PLANS: weakref.WeakKeyDictionary[Any, TracePlan] = weakref.WeakKeyDictionary()
"""One plan per nnsight model (the key: the wrapper, so the plan goes when the user drops it): the
scan that finds it need not run for each trace."""


class RemoteError(LensWidgetError):
    """A remote (NDIF) trace cannot be sent: no API key, a model NDIF does not host, a lens too big."""


@dataclass(frozen=True)
class TracePlan:
    """Where a model's lens parts are, by module path, found without its weights."""

    layers_name: str
    num_layers: int
    final_norm_names: tuple[str, ...]
    head_name: str
    vocab_size: int
    d_model: int
    transform: LogitTransform
    dtype: torch.dtype


def plan_of(model: Any) -> TracePlan:
    """The layout of an nnsight model, from one `scan` (fake tensors: it works on a model whose
    weights are only on NDIF), watching which modules run between the last block and the head, as
    ModelAdapter does with a real forward pass. Found once per model."""
    plan = _PLANS.get(model)
    if plan is not None:
        return plan
    inner: nn.Module = model._module  # not unwrap(): that would load a lazy model's weights
    cls = type(inner).__name__
    config = inner.config
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    head = inner.get_output_embeddings()
    num_layers = getattr(text_config, "num_hidden_layers", None)
    if not isinstance(head, nn.Module) or not isinstance(num_layers, int) or num_layers < 1:
        raise AdapterError(f"{cls}: no output embedding or num_hidden_layers: lens-widget needs a causal LM")
    layers_name, blocks = _find_blocks(inner, num_layers, cls)
    events: list[tuple[str, nn.Module]] = []
    shapes: dict[str, torch.Size] = {}
    handles = record_calls(inner, blocks, events)

    def record(module: nn.Module, args: Any) -> None:  # a pre-hook returning a value would replace the args
        shapes["head_in"] = args[0].shape

    handles.append(head.register_forward_pre_hook(record))
    try:
        with model.scan(torch.arange(1, 6)[None] % head.weight.shape[0], use_cache=False):
            pass
    except Exception as exc:
        raise AdapterError(f"{cls}: nnsight's scan of the model (shapes only) failed: {exc!r}") from exc
    finally:
        for handle in handles:
            handle.remove()
    if "head_in" not in shapes or not any(m is blocks[-1] for _, m in events):
        raise AdapterError(f"{cls}: the scan did not run both the blocks in `{layers_name}` and the head")
    chain = _modules_between(events, blocks[-1], head)
    plan = _PLANS[model] = TracePlan(
        layers_name=layers_name,
        num_layers=num_layers,
        final_norm_names=tuple(_name_of(inner, m) for m in chain),
        head_name=_name_of(inner, head),
        vocab_size=int(head.weight.shape[0]),
        d_model=int(shapes["head_in"][-1]),
        transform=LogitTransform.from_config(text_config),
        dtype=head.weight.dtype,
    )
    return plan


def check_remote(model: Any) -> None:
    """A remote trace needs an NDIF API key and a model NDIF hosts, named by its Hub id: said before
    anything is sent, since nnsight itself leaves the key out and fails later, on the server."""
    from nnsight import CONFIG

    if not (CONFIG.API.APIKEY or os.environ.get(NDIF_KEY_ENV)):
        raise RemoteError(
            "remote=True sends the trace to NDIF, which needs an API key: get one at https://login.ndif.us, then "
            f"nnsight.CONFIG.set_default_api_key('<key>') (saved for later sessions) or set {NDIF_KEY_ENV}; "
            "or pass remote=False to run the trace on the local model"
        )
    name = getattr(model, "repo_id", None)  # what nnsight sends NDIF to name the model
    if not isinstance(name, str) or not name or os.path.exists(name) or name.startswith(("/", ".")):
        where = f"was loaded from {name!r}" if isinstance(name, str) and name else "has no Hub id"
        raise RemoteError(
            f"remote=True runs the model on NDIF, which serves models by their Hugging Face Hub id; this one {where}. "
            "Wrap a hosted model by its id (nnsight.LanguageModel('meta-llama/Llama-3.1-8B')), or pass remote=False"
        )


def check_remote_value(remote: Any) -> bool | str:
    if remote is True or remote is False or remote == "local":
        return remote
    raise ValueError(
        f"remote must be True (NDIF), False or 'local' (nnsight's dry run of a remote trace), got {remote!r}"
    )


def trace_grid(
    model: Any,
    input_ids: torch.Tensor | Sequence[int],
    lens: Lens | None = None,
    rows: Sequence[int] | None = None,
    top_k: int = 10,
    *,
    remote: bool | str = False,
    on_status: Callable[[str], None] | None = None,
) -> LensGrid:
    """The lens grid of one sequence, computed inside a single nnsight trace of `model`.

    rows: layer indices (0 … L; L is the model's own output), every row by default.
    remote: True runs the trace on NDIF (checked first: RemoteError without an API key or for a
      model NDIF cannot name); "local" is nnsight's dry run of that (serialised, then run here).
    on_status: called with "queued" and "running" as NDIF reports them (from the calling thread).
    Equal to compute_grid on the model's own hidden states, which is what the tests check.
    """
    if not is_nnsight(model):
        raise TypeError(f"trace_grid takes an nnsight model (nnsight.LanguageModel), got {type(model).__name__}")
    remote = check_remote_value(remote)
    if remote is True:
        check_remote(model)
    ids = torch.as_tensor(input_ids, dtype=torch.long)
    if ids.ndim != 1 or not len(ids):
        raise ValueError(f"input_ids must be one non-empty sequence (1-D), got shape {tuple(ids.shape)}")
    plan = plan_of(model)
    rows = list(range(plan.num_layers + 1)) if rows is None else list(rows)
    if any(not 0 <= r <= plan.num_layers for r in rows) or not rows:
        raise ValueError(f"rows must be layer indices in 0..{plan.num_layers}, got {rows}")
    translators = _translators(lens, plan, rows, remote)
    if on_status is not None:
        on_status("running" if remote is not True else "queued")
    statistics, top_ids, top_probs, check = _run_trace(model, plan, ids, rows, translators, top_k, remote, on_status)
    _check_replay(model, plan, check)
    return LensGrid(statistics.numpy(), top_ids.numpy(), top_probs.numpy(), rows=tuple(rows))


def _run_trace(
    model: Any,
    plan: TracePlan,
    ids: torch.Tensor,
    rows: list[int],
    translators: dict[int, tuple[torch.Tensor, torch.Tensor | None]],
    top_k: int,
    remote: bool | str,
    on_status: Callable[[str], None] | None,
) -> tuple[torch.Tensor, ...]:
    import nnsight

    from . import logit_transform, statistics, trace_cells

    for module in (trace_cells, statistics, logit_transform):
        nnsight.register(module)  # shipped with the request: NDIF has no lens-widget installed
    reduce = trace_cells.trace_cells
    norm = [_envoy(model, name) for name in plan.final_norm_names]
    head = _envoy(model, plan.head_name)
    last_block = _envoy(model, f"{plan.layers_name}.{plan.num_layers - 1}")
    transform, targets = plan.transform, next_token_targets(ids)
    try:
        backend = None
        if remote:  # nnsight's own backend (NDIF, or its dry run), reporting the job's states
            backend = model._remote_backend(remote, True, None, False)  # True asks the Hub for the model's id
            if on_status is not None and callable(getattr(backend, "note", None)):
                backend.note = _reporting(backend.note, on_status)
        # nnsight ships this block and the locals it reads: envoys as references to the server's
        # modules, `reduce` by value.
        with model.trace(ids[None], backend=backend, output_hidden_states=True, use_cache=False):
            block = last_block.output  # the model runs in order: its last block before its own output
            cells = reduce(
                model.output.hidden_states,
                model.output.logits,
                block,
                norm,
                head,
                transform,
                translators,
                rows,
                targets,
                top_k,
            )
            nnsight.save(cells)  # only these leave the trace
        return tuple(cells)
    except Exception as exc:
        if remote is not True:
            raise
        from nnsight import CONFIG

        raise RemoteError(f"sending the trace to NDIF ({CONFIG.API.HOST}) failed: {type(exc).__name__}: {exc}") from exc


def _reporting(note: Callable[[Any], bool], on_status: Callable[[str], None]) -> Callable[[Any], bool]:
    def reporting(response: Any) -> bool:
        status = getattr(response.status, "value", response.status)
        if status in REMOTE_STATES:
            on_status(REMOTE_STATES[status])
        return note(response)

    return reporting


def _envoy(model: Any, name: str) -> Any:
    """The envoy of a module by its path (a digit indexes a ModuleList)."""
    envoy = model
    for part in name.split("."):
        envoy = envoy[int(part)] if part.isdigit() else getattr(envoy, part)
    return envoy


def _translators(
    lens: Lens | None, plan: TracePlan, rows: list[int], remote: bool | str
) -> dict[int, tuple[torch.Tensor, torch.Tensor | None]]:
    """A tuned lens's translators of `rows`, which travel with the trace (the logit lens has none)."""
    if not isinstance(lens, TunedLens):
        if lens is not None and getattr(lens, "name", None) != "logit":
            raise TypeError(f"a trace takes the logit lens (None) or a TunedLens, got {type(lens).__name__}")
        return {}
    if lens.num_layers != plan.num_layers or lens.config.d_model != plan.d_model:
        raise ValueError(
            f"the tuned lens has {lens.num_layers} layers of width {lens.config.d_model}; the model has "
            f"{plan.num_layers} of width {plan.d_model}"
        )
    picked = {r: lens.layer_translators[r] for r in rows if r < plan.num_layers}
    out = {r: (t.weight.detach(), None if t.bias is None else t.bias.detach()) for r, t in picked.items()}
    size = sum(w.nbytes + (0 if b is None else b.nbytes) for w, b in out.values())
    if remote is True and size > REMOTE_LENS_BYTES:
        raise RemoteError(
            f"the tuned lens's {len(out)} translators are {size / 2**20:,.0f} MiB, sent with every request to NDIF "
            f"(at most {REMOTE_LENS_BYTES // 2**20} MiB): use the logit lens remotely (lens=None), a layer stride, "
            "or the tuned lens on a local model"
        )
    return out


def _check_replay(model: Any, plan: TracePlan, check: torch.Tensor) -> None:
    """Refuse a grid whose final norm (found by the scan, from shapes only) did not reproduce the
    model's own logits on the last position: the lens rows would be silently wrong."""
    difference, largest = (float(x) for x in check)
    tolerance = 1e-4 if plan.dtype in (torch.float32, torch.float64) else 2e-2
    if not difference <= tolerance * (1.0 + largest):
        names = ", ".join(plan.final_norm_names) or "nothing"
        raise AdapterError(
            f"{type(model._module).__name__}: the final norm found between "
            f"`{plan.layers_name}.{plan.num_layers - 1}` and the head `{plan.head_name}` ({names}) does not "
            f"reproduce the model's logits (off by {difference:.3g}): its lens rows would be wrong"
        )
