"""Row ids: which residual-stream state each heatmap row reads, as one integer per row.

Layer rows keep their layer index, as they always had: 0 … L-1 read hidden_states[r], L is the
model's own output. Sub-layer rows, the residual stream after a block's attention, get the ids after
those: row L + ℓ ("ℓ.attn", ℓ = 1 … L) is hidden_states[ℓ - 1] plus what block ℓ - 1's attention adds,
on the way from row ℓ - 1 to row ℓ (in parallel-residual blocks, whose MLP reads the block's input too,
it is that input plus the attention's output). Keeping the layer ids unchanged keeps every payload and
state without sub-layers as it was; the price is that ids are not in depth order, so every sort goes
through `depth` (here, in cells.merge_rows, and in js/rows.ts, which mirrors this module).

A track's hidden states use the same indices: [L + 1 + L, positions, d] with sub-layers, so row r
reads hidden[r] whatever its kind.

The tuned lens has no translator of its own for ℓ.attn: it is read through layer ℓ's (the translator
of the layer it is on its way to), and L.attn, for which there is no translator L, through none (the
logit lens's decoding). `TRANSLATOR_NOTE` says so where the rows are described to a user.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .lenses import Lens

SUFFIX = ".attn"
"""What a sub-layer row's label adds to its layer's index."""
TRANSLATOR_NOTE = (
    "ℓ.attn rows (the residual stream after block ℓ-1's attention) are read through layer ℓ's tuned-lens "
    "translator; L.attn, with no translator L, through the logit lens's decoding"
)


def is_sublayer(row: int, num_layers: int) -> bool:
    """Whether `row` is an "ℓ.attn" row."""
    return row > num_layers


def layer_of(row: int, num_layers: int) -> int:
    """The layer a row belongs to: its own index, or ℓ for ℓ.attn (the row it sits under)."""
    return row - num_layers if row > num_layers else row


def depth(row: int, num_layers: int) -> int:
    """The sort key from the embeddings up: 2r for layer row r, 2ℓ - 1 for ℓ.attn (between ℓ - 1 and ℓ)."""
    return 2 * (row - num_layers) - 1 if row > num_layers else 2 * row


def by_depth(rows: Sequence[int], num_layers: int) -> list[int]:
    """`rows`, distinct, from the embeddings up to the output."""
    return sorted(set(rows), key=lambda r: depth(r, num_layers))


def with_sublayers(rows: Sequence[int], num_layers: int) -> list[int]:
    """Layer rows `rows` and, under each layer row ℓ ≥ 1 (the output included), its ℓ.attn row."""
    layers = [r for r in rows if r <= num_layers]
    return by_depth([*layers, *(num_layers + r for r in layers if r >= 1)], num_layers)


def max_row(num_layers: int, *, sublayers: bool) -> int:
    """The largest row id a model of `num_layers` layers has."""
    return 2 * num_layers if sublayers else num_layers


def translator(row: int, num_layers: int) -> int | None:
    """The tuned-lens translator a lens row is read through: its layer's, ℓ's for ℓ.attn, and None
    (no translation) for L.attn."""
    layer = layer_of(row, num_layers)
    return None if layer == num_layers else layer


def label(row: int, num_layers: int) -> str:
    """tuned-lens's labels for layer rows ("0" … "L-1", "output"), "ℓ.attn" for sub-layer rows."""
    if row == num_layers:
        return "output"
    return f"{row - num_layers}{SUFFIX}" if row > num_layers else str(row)


def aligned(rows: Sequence[int], num_layers: int, other_layers: int) -> list[int]:
    """The row of a model of `other_layers` layers at the relative depth of each of `rows`: a layer row
    r pairs with layer round(r × other / num) (halves up, in exact integers), ℓ.attn with the .attn row
    of ℓ's pair (at least 1.attn: there is no 0.attn). The output pairs with the output."""
    out = []
    for row in rows:
        layer = (2 * layer_of(row, num_layers) * other_layers + num_layers) // (2 * num_layers)
        out.append(other_layers + max(1, layer) if row > num_layers else layer)
    return out


def translate(lens: Lens, hidden: torch.Tensor, rows: Sequence[int], num_layers: int) -> torch.Tensor:
    """`hidden` [len(rows), positions, d], row i holding the state of row `rows[i]` (no output row),
    through the lens: each row by its `translator`, the L.attn row by none."""
    layers = [translator(r, num_layers) for r in rows]
    if all(layer is not None for layer in layers):
        return lens.translate(hidden, [int(layer) for layer in layers if layer is not None])
    out = hidden.clone()
    picked = [i for i, layer in enumerate(layers) if layer is not None]
    if picked:
        out[picked] = lens.translate(hidden[picked], [int(layers[i]) for i in picked])  # type: ignore[arg-type]
    return out
