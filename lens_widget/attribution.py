"""Direct logit attribution: what each part of the model wrote into one cell's logit for one token.

A cell's residual vector is the sum of what the embedding, each attention head and each MLP wrote
before that row. Each component is sent through the cell's lens (the translator's linear part), the
final norm with its scale frozen at the cell's residual (frozen.py), and dotted with the token's row of
the unembedding; the constants on the way (the out-projections' biases, the translator's bias, the
norm's bias, the head's bias) are the "biases" component. A soft-capped head is frozen the same way,
at the cell's logit. So the components add up to the cell's logit, which is computed separately,
through the real modules from the kept hidden state, and shown beside the sum.

Per-head outputs need each attention's input to its output projection at the clicked position,
which the session does not keep: one token's forward recomputes them, continuing the session's key/
value cache cut at that position (views of it, so the session's cache is untouched), with hooks on the
parts blocks.py found. A cache that cannot be cut that way (sliding-window layers keep only the last
positions) means a forward over the text up to the position instead.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .adapter import ModelAdapter, _close
from .blocks import BlockLayout, BlockParts, capture
from .errors import AdapterError
from .frozen import freeze
from .lenses import Lens, TunedLens
from .placement import execution_device, input_device, loaded
from .rows import is_sublayer, layer_of, translator
from .rows import label as row_label

if TYPE_CHECKING:
    import pandas as pd


class AttributionError(ValueError):
    """A cell that cannot be attributed (a bad position, row or token, or a model lens-widget cannot split)."""


@dataclass(frozen=True)
class Attribution:
    """One cell's logit for one token, split into what wrote it. Values are logits (float64)."""

    model: str
    """The model's display name."""
    row: int
    """The session row (layer index; num_layers is the output)."""
    label: str
    """The row's label, as the view shows it."""
    position: int
    token_id: int
    token: str
    lens: str
    """"tuned" or "logit": the lens the cell is read through."""
    labels: tuple[str, ...]
    """One per value: "embedding", "L3.H5" (block 3's head 5), "L3.mlp", "biases"."""
    values: np.ndarray
    """float64 [len(labels)]: each component's share of the logit."""
    heads: np.ndarray
    """float64 [blocks, heads]: each head's share (NaN for blocks after the row)."""
    mlps: np.ndarray
    """float64 [blocks]: each MLP's share (NaN for blocks after the row)."""
    embedding: float
    biases: float
    total: float
    """The sum of every component."""
    logit: float
    """The cell's logit for the token, through the real modules from the session's hidden state."""
    frozen: tuple[str, ...]
    """What was linearised at this cell ("final norm", "soft-capped logits", …), to say beside it."""

    def to_frame(self) -> pd.DataFrame:
        """One row per component: kind, block, head, value."""
        import pandas as pd

        records = []
        for label, value in zip(self.labels, self.values, strict=True):
            kind, block, head = _parse(label)
            records.append({"component": label, "kind": kind, "block": block, "head": head, "logit": value})
        return pd.DataFrame.from_records(records)


def _parse(label: str) -> tuple[str, int | None, int | None]:
    if not label.startswith("L"):
        return label, None, None
    block, part = label[1:].split(".", 1)
    if part.startswith("H"):
        return "head", int(block), int(part[1:])
    return part, int(block), None


def block_states(
    adapter: ModelAdapter, layout: BlockLayout, ids: list[int], position: int, cache: Any = None
) -> dict[str, list[torch.Tensor]]:
    """Every block's input, attention share, MLP share and out-projection input at `position`
    ([d] or [heads × head_dim]), from one token's forward continuing `cache` cut there when it can be."""
    past = _cut(cache, position)
    run = ids[position : position + 1] if past is not None else ids[: position + 1]
    what: dict[str, list[Any]] = {}
    device = input_device(adapter.model)
    with capture(layout, what), torch.inference_mode():
        adapter._body(input_ids=torch.tensor([run], device=device), cache=past, use_cache=past is not None)
    states: dict[str, list[torch.Tensor]] = {key: [] for key in ("input", "attention", "mlp", "heads")}
    for index, parts in enumerate(layout.parts):
        given = [what[key][index] for key in ("input", "attention", "mlp", "heads")]
        if any(t is None for t in given):
            raise AdapterError(f"block {index}: the forward pass did not run all of its parts")
        x, attention, mlp, heads = (t.reshape(-1, t.shape[-1])[-1] for t in given)
        share = attention - x if parts.adds_residual else attention
        states["input"].append(x)
        states["attention"].append(share)
        states["mlp"].append(mlp - (x + share) if parts.adds_residual else mlp)
        states["heads"].append(heads)
    return states


def _cut(cache: Any, position: int) -> Any:
    """A cache of the first `position` positions made of views of `cache`'s tensors (None: none can be)."""
    if cache is None or position == 0:
        return None
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    layers = getattr(cache, "layers", None)
    if type(cache) is not DynamicCache or not layers or any(type(layer) is not DynamicLayer for layer in layers):
        return None
    if any(getattr(layer, "keys", None) is None or layer.keys.shape[-2] < position for layer in layers):
        return None
    return DynamicCache(
        ddp_cache_data=[(layer.keys[..., :position, :], layer.values[..., :position, :]) for layer in layers]
    )


@torch.no_grad()
def head_shares(
    parts: BlockParts, heads: torch.Tensor, num_heads: int, share: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """float64 [heads, d] each head's share of the block's attention share, and [d] the constant
    (out-projection bias, and a post-attention norm's), checked to add up to `share`."""
    width = heads.shape[-1]
    size = width // num_heads
    z = heads.double()
    with loaded(parts.out_proj) as proj:
        weight = proj.weight.double()
        bias = getattr(proj, "bias", None)
        matrix = weight if isinstance(proj, torch.nn.Linear) else weight.T  # Conv1D keeps [in, out]
        if matrix.shape[1] != width:
            raise AdapterError(f"{type(proj).__name__}'s weight does not read {width} values")
        out = torch.stack(
            [matrix[:, h * size : (h + 1) * size] @ z[h * size : (h + 1) * size] for h in range(num_heads)]
        )
        constant = (
            bias.double() if isinstance(bias, torch.Tensor) else torch.zeros(matrix.shape[0], dtype=torch.float64)
        )
    if parts.attention_writer is not parts.attention:  # a norm after the attention: frozen at its output
        total = (out.sum(0) + constant).to(heads.dtype)
        frozen = freeze(parts.attention_writer, total.to(execution_device(parts.attention_writer) or total.device))
        out = frozen.linear(out)
        constant = frozen.linear(constant[None])[0] + frozen.constant
    if not _close((out.sum(0) + constant).to(share.device, share.dtype), share):
        raise AdapterError(f"the heads of {type(parts.attention).__name__} do not add up to what it writes")
    return out, constant


def row_parts(row: int, num_layers: int) -> tuple[int, bool, int | None]:
    """What a row's residual holds and how it is read: (blocks written in full, whether the next
    block's attention is added too, the translator index or None). Row ℓ ≤ L: blocks 0 … ℓ - 1 and
    translator ℓ (none for the output). Row L + ℓ, "ℓ.attn": blocks 0 … ℓ - 2 and block ℓ - 1's
    attention, read with translator ℓ (none for L.attn)."""
    if not 0 <= row <= 2 * num_layers:
        raise AttributionError(f"row must be from 0 to {2 * num_layers}, got {row}")
    sub = is_sublayer(row, num_layers)
    layer = layer_of(row, num_layers)
    return (layer - 1 if sub else layer), sub, translator(row, num_layers)


@torch.no_grad()
def attribute(
    adapter: ModelAdapter,
    layout: BlockLayout,
    lens: Lens,
    states: dict[str, list[torch.Tensor]],
    row: int,
    token_id: int,
    cell_residual: torch.Tensor | None = None,
    logits: torch.Tensor | None = None,
) -> dict[str, Any]:
    """The components of the logit of `token_id` at `row` (row_parts), from `states` (block_states).
    `cell_residual`: the session's own hidden state of that cell (what the grid decoded), from which
    the logit is computed through the real modules; None for a sublayer row, whose residual is the
    block's input plus its attention's share, as recorded. `logits`: that cell's logits, when the
    caller has them already (cell_logits)."""
    L = adapter.num_layers
    full, with_attention, translator_index = row_parts(row, L)
    d = adapter.d_model
    comps: list[torch.Tensor] = [states["input"][0].double().cpu()[None]]
    labels = ["embedding"]
    heads = np.full((L, layout.num_heads), np.nan)
    mlps = np.full(L, np.nan)
    constant = torch.zeros(d, dtype=torch.float64)
    for k in range(full + 1 if with_attention else full):
        parts = layout.parts[k]
        shares, bias = head_shares(parts, states["heads"][k], layout.num_heads, states["attention"][k])
        comps.append(shares.cpu())
        labels += [f"L{k}.H{h}" for h in range(layout.num_heads)]
        constant += bias.cpu()
        if k < full:
            comps.append(states["mlp"][k].double().cpu()[None])
            labels.append(f"L{k}.mlp")
    if cell_residual is None:
        if not with_attention:
            raise AttributionError("a layer row's attribution needs the session's hidden state of the cell")
        cell_residual = states["input"][full] + states["attention"][full]
    x = torch.cat(comps)  # [n, d]
    residual = x.sum(0) + constant
    frozen_names: list[str] = []
    # The lens's translator: h + A h + b, its linear part on every component, b a constant.
    if isinstance(lens, TunedLens) and translator_index is not None:
        translator = lens.layer_translators[translator_index]
        a = translator.weight.double().cpu()
        b = translator.bias.double().cpu() if translator.bias is not None else torch.zeros(d, dtype=torch.float64)
        x = x + x @ a.T
        constant = constant + constant @ a.T + b
        residual = residual + residual @ a.T + b
    point = residual
    for module in adapter._final:
        frozen = freeze(module, point.to(adapter.device, adapter.dtype))
        x = frozen.linear(x.to(frozen.constant.device)).cpu()
        constant = frozen.linear(constant[None].to(frozen.constant.device))[0].cpu() + frozen.constant.cpu()
        point = x.sum(0) + constant
        if frozen.kind == "norm":
            frozen_names.append("final norm scale")
    with adapter.unembedding() as weight:
        w = weight[token_id].double().cpu()
    head_bias = getattr(adapter.head, "bias", None)
    values = x @ w
    bias_total = float(constant @ w) + (float(head_bias[token_id]) if isinstance(head_bias, torch.Tensor) else 0.0)
    raw = float(values.sum()) + bias_total
    transform = adapter.logit_transform
    transformed = float(transform(torch.tensor(raw, dtype=torch.float64)))
    ratio = transformed / raw if raw != 0.0 else 1.0
    if transform.softcap is not None:
        frozen_names.append("soft-capped logit")
    out = values.numpy() * ratio
    bias_total *= ratio
    for index, label in enumerate(labels):
        kind, block, head = _parse(label)
        if kind == "mlp" and block is not None:
            mlps[block] = out[index]
        elif kind == "head" and block is not None and head is not None:
            heads[block, head] = out[index]
    return {
        "labels": (*labels, "biases"),
        "values": np.append(out, bias_total),
        "heads": heads,
        "mlps": mlps,
        "embedding": float(out[0]),
        "biases": bias_total,
        "total": float(out.sum()) + bias_total,
        "logit": float(logits[token_id])
        if logits is not None
        else cell_logit(adapter, lens, translator_index, token_id, cell_residual, output=row == L),
        "frozen": tuple(frozen_names),
    }


def cell_logits(
    adapter: ModelAdapter, lens: Lens, translator: int | None, residual: torch.Tensor, output: bool
) -> torch.Tensor:
    """float32 [vocab]: the cell's logits as the grid computes them, through the real lens, final norm
    and head (the output row's residual is hidden_states[L], final-normed already in some families)."""
    h = residual.to(adapter.device, adapter.dtype)[None, None]
    with torch.inference_mode():
        if output:
            head_input = adapter.head_input(h)
        elif translator is None:
            head_input = adapter.final_norm(h)
        else:
            head_input = adapter.final_norm(lens.translate(h, [translator]))
        return adapter.decode(head_input).float().reshape(-1)


def cell_logit(
    adapter: ModelAdapter, lens: Lens, translator: int | None, token_id: int, residual: torch.Tensor, output: bool
) -> float:
    """The logit the grid gives the token in this cell."""
    return float(cell_logits(adapter, lens, translator, residual, output)[token_id])


_LAYOUTS: weakref.WeakKeyDictionary[ModelAdapter, BlockLayout] = weakref.WeakKeyDictionary()


def layout_of(adapter: ModelAdapter) -> BlockLayout:
    """The model's block layout, found on the first attribution and kept with its adapter."""
    layout = _LAYOUTS.get(adapter)
    if layout is None:
        layout = _LAYOUTS[adapter] = BlockLayout(adapter)
    return layout


def resolve_token(token: int | str | None, strings: list[str], tokenizer: Any) -> int | None:
    """A token id from an id, or from a token's text as the view shows it (or the tokenizer spells
    it); None stays None (the cell's top-1)."""
    if token is None:
        return None
    vocab = len(strings)
    if isinstance(token, (int, np.integer)) and not isinstance(token, bool):
        if not 0 <= int(token) < vocab:
            raise AttributionError(f"token id must be from 0 to {vocab - 1}, got {token}")
        return int(token)
    if isinstance(token, str):
        if token in strings:
            return strings.index(token)
        converted = tokenizer.convert_tokens_to_ids(token)
        if (
            isinstance(converted, int)
            and 0 <= converted < vocab
            and tokenizer.convert_ids_to_tokens(converted) == token
        ):
            return converted
        raise AttributionError(
            f"{token!r} is not one token of the vocabulary: give its id, or its text as the view shows it"
        )
    raise AttributionError(f"token must be a token id, a token's text or None, got {type(token).__name__}")


@torch.no_grad()
def explain(
    adapter: ModelAdapter,
    lens: Lens,
    ids: list[int],
    hidden: torch.Tensor,
    cache: Any,
    row: int,
    position: int,
    token: int | None,
    strings: list[str],
    model: str,
) -> Attribution:
    """One cell's attribution from one model's kept state (`hidden` [L + 1, T, d], `cache`)."""
    L = adapter.num_layers
    full, _, translator = row_parts(row, L)  # refuses a row the model has not
    if isinstance(position, bool) or not isinstance(position, (int, np.integer)) or not 0 <= position < len(ids):
        raise AttributionError(f"position must be a token index from 0 to {len(ids) - 1}, got {position!r}")
    position = int(position)
    layout = layout_of(adapter)
    states = block_states(adapter, layout, ids, position, cache)
    residual = hidden[row, position] if row < hidden.shape[0] else None  # ℓ.attn states: kept when shown
    h = residual if residual is not None else states["input"][full] + states["attention"][full]
    logits = cell_logits(adapter, lens, translator, h, output=row == L)
    if token is None:  # the cell's top-1
        token = int(logits.argmax())
    numbers = attribute(adapter, layout, lens, states, row, token, residual, logits)
    return Attribution(
        model=model,
        row=row,
        label=row_label(row, L),
        position=position,
        token_id=token,
        token=strings[token] if token < len(strings) else str(token),
        lens=lens.name,
        **numbers,
    )
