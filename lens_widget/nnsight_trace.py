"""nnsight models: accepted wherever a model is, and the lens grid computed inside one nnsight trace.

An `nnsight.LanguageModel` wraps a transformers model, whose modules it keeps (with a forward of its
own on each instance that runs the original outside a trace). Everything in lens-widget works on that
model through `unwrap`, incrementally with its key/value cache as for any model.

`trace_grid` is the other way: the whole reduction (hidden states → lens → final norm and head →
top-k and every statistic) runs inside the trace, so that only the compact cells leave it, the shape
a remote run on NDIF will take (the model on NDIF's servers, no cache between requests, only what the
trace saves coming back). It runs locally (remote=False) and is tested there. A remote run is not
built yet: the reduction is lens-widget's code, which NDIF would have to run (shipped by value and
allowed by its sandbox), and the adapter's discovery needs the model's weights, which only NDIF would
hold. remote=True says which of its own conditions are missing (an API key, a model NDIF serves),
then that it is not supported yet.

nnsight is optional (`pip install "lens-widget[nnsight]"`): nothing here imports it unless a model is
one of its own.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Sequence
from typing import Any

import torch

from .adapter import ModelAdapter, ModelForward
from .errors import LensWidgetError
from .grid import LensGrid, compute_grid, next_token_targets
from .lenses import Lens, TunedLens
from .placement import is_nnsight, unwrap

NDIF_KEY_ENV = "NDIF_API_KEY"
"""The environment variable nnsight reads an NDIF API key from (besides its saved config)."""

_ADAPTERS: weakref.WeakKeyDictionary[Any, ModelAdapter] = weakref.WeakKeyDictionary()
"""One adapter per nnsight model (the key: the wrapper, which the adapter does not hold, so both go
when the user drops the wrapper): discovery runs the model, which each trace need not repeat."""


class RemoteError(LensWidgetError):
    """A remote (NDIF) trace cannot be sent: no API key, or a model NDIF does not host."""


def adapter_of(model: Any) -> ModelAdapter:
    """The adapter of an nnsight model's transformers model, discovered once per model."""
    adapter = _ADAPTERS.get(model)
    if adapter is None or adapter.model is not unwrap(model):
        adapter = _ADAPTERS[model] = ModelAdapter(unwrap(model))
    return adapter


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


@torch.inference_mode()
def trace_grid(
    model: Any,
    input_ids: torch.Tensor | Sequence[int],
    lens: Lens | None = None,
    rows: Sequence[int] | None = None,
    top_k: int = 10,
    *,
    remote: bool = False,
) -> LensGrid:
    """The lens grid of one sequence, computed inside a single nnsight trace of `model`.

    rows: layer indices (0 … L; L is the model's own output), every row by default.
    remote: run the trace on NDIF: checked (an API key, a hosted model: RemoteError otherwise), then
      refused as not supported yet (see the module's docstring).
    Equal to compute_grid on the model's own hidden states, which is what the tests check.
    """
    if not is_nnsight(model):
        raise TypeError(f"trace_grid takes an nnsight model (nnsight.LanguageModel), got {type(model).__name__}")
    if remote:
        check_remote(model)
        raise NotImplementedError(
            "remote=True is not supported yet: lens-widget's reduction would have to run on NDIF's servers; "
            "load the model locally and pass remote=False (or use LensSession / LensWidget with it)"
        )
    ids = torch.as_tensor(input_ids, dtype=torch.long)
    if ids.ndim != 1 or not len(ids):
        raise ValueError(f"input_ids must be one non-empty sequence (1-D), got shape {tuple(ids.shape)}")
    adapter = adapter_of(model)
    rows = list(range(adapter.num_layers + 1)) if rows is None else list(rows)
    if isinstance(lens, TunedLens):
        lens = lens.fit(adapter)
    targets = next_token_targets(ids)
    import nnsight

    with model.trace(ids, output_hidden_states=True, use_cache=False):
        hidden = torch.stack([h[0].to(adapter.device) for h in model.output.hidden_states])
        grid = compute_grid(adapter, lens, ModelForward(hidden), targets, rows, top_k)
        cells = nnsight.save((grid.statistics, grid.top_ids, grid.top_probs))  # only these leave the trace
    statistics, top_ids, top_probs = cells
    return LensGrid(tuple(rows), statistics, top_ids, top_probs)
