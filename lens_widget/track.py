"""One model's state over a LensSession's text: key/value cache, hidden states, lens and cells.

An A/B session holds two tracks over the same tokens. A track keeps cells for the session's rows,
which are model A's layer indices; `layers` maps them to this model's own layers by relative depth
(grid.aligned_layers), so a model of another depth is read at the nearest layer.

With `sublayers` on, the track also keeps each position's residual stream after every block's
attention, recorded on the same forward pass (blocks.after_attention) and appended to the hidden
states as rows L + 1 … 2L (rows.py), so they are cropped and extended with them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .adapter import ModelAdapter, ModelForward
from .blocks import BlockLayout, after_attention
from .cells import Cells
from .grid import GridInput, aligned_layers, compute_grid
from .lenses import Lens, LogitLens
from .placement import CPU
from .rows import translate
from .statistics import NO_TARGET, STATISTICS

_ENTROPY = STATISTICS.index("entropy")


class Track:
    """One model's state over the session's text: its cache, hidden states, lens and cells.

    Cells are kept for the session's rows, which are model A's layer indices; `layers` says which of
    this model's layers each stands for (the same indices, unless the depths differ).
    """

    def __init__(
        self,
        key: str,
        name: str,
        adapter: ModelAdapter,
        lens: Lens,
        reference_layers: int,
        k: int,
        on_host: bool = False,
    ) -> None:
        self.key = key
        self.store = CPU if on_host else adapter.device
        """Where the hidden states are kept: the head's device, or the host when it is short."""
        self.offload_cache = on_host and all(d.type == "cuda" for d in (adapter.device, *adapter.block_devices))
        """Whether the key/value cache is kept on the host too (transformers' offloading cache, which
        brings each layer's back to the device for its step: CUDA only, every layer's)."""
        self.name = name
        self.adapter = adapter
        self.lenses: dict[str, Lens] = {"logit": LogitLens()}
        """Every lens this model has been read through, by name (the trajectory panel draws each)."""
        self.lens = lens
        self.reference_layers = reference_layers
        self.k = k
        self.sublayers = False
        """Whether the hidden states carry the sub-layer rows (set through `set_sublayers`)."""
        self._layout: BlockLayout | None = None
        self.reset()

    def reset(self) -> None:
        adapter = self.adapter
        self.cache: Any = None
        states = 2 * adapter.num_layers + 1 if self.sublayers else adapter.num_layers + 1
        self.hidden = torch.empty((states, 0, adapter.d_model), dtype=adapter.dtype, device=self.store)
        self.cells = Cells.empty(len(STATISTICS), self.k)
        self.last_logits: dict[int, torch.Tensor] = {}
        """Session row → float32 [vocab] logits of the last column, for the next append's patch."""

    @property
    def lens(self) -> Lens:
        """The lens the cells are read through."""
        return self._lens

    @lens.setter
    def lens(self, lens: Lens) -> None:
        self._lens = lens
        self.lenses[lens.name] = lens

    def set_sublayers(self, on: bool) -> None:
        """Keep the sub-layer states from now on, or free them. Turning them on forgets the cache and
        hidden states, not the cells (the next `advance` runs the whole text again, recording them);
        turning them off keeps the layers' states. The block layout is found (a probe pass) the first
        time only."""
        if on == self.sublayers:
            return
        if on:
            self.find_layout()
            adapter = self.adapter
            self.sublayers = True
            self.cache = None
            shape = (2 * adapter.num_layers + 1, 0, adapter.d_model)
            self.hidden = torch.empty(shape, dtype=adapter.dtype, device=self.store)
        else:
            self.sublayers = False
            self.hidden = self.hidden[: self.adapter.num_layers + 1].clone()  # clone: the states' memory goes
            last = self.adapter.num_layers
            self.last_logits = {r: v for r, v in self.last_logits.items() if r <= last}

    def find_layout(self) -> BlockLayout:
        """Each block's attention writer, found on a probe pass the first time (blocks.BlockLayout):
        an AdapterError names a block that cannot be split."""
        if self._layout is None:
            self._layout = BlockLayout(self.adapter)
        return self._layout

    @property
    def positions(self) -> int:
        return int(self.hidden.shape[1])

    @property
    def columns(self) -> int:
        return int(self.cells.stats.shape[2])

    def layers(self, rows: Sequence[int]) -> list[int]:
        """This model's layer for each of the session's rows (A's indices), by relative depth."""
        return aligned_layers(rows, self.reference_layers, self.adapter.num_layers)

    def source(self, start: int, end: int | None = None) -> GridInput:
        """What the grid decodes: this model's hidden states at positions start … end - 1 (to the last
        by default), through its lens."""
        return GridInput(self.adapter, self.lens, ModelForward(self.hidden[:, start:end]))

    def advance(self, ids: list[int], keep: int) -> None:
        """Bring hidden states and cache to `ids`, reusing the first `keep` positions."""
        old = self.positions
        if self.cache is None:
            keep = 0  # nothing to continue from (a model that returns no cache): run everything
        if keep < old:
            if self.cache is not None and self._croppable(old):
                self.cache.crop(-(old - keep))
            else:
                self.cache, keep = None, 0  # recompute from the start: same results, more work
            self.hidden = self.hidden[:, :keep].clone()  # clone: let the dropped positions' memory go
        if len(ids) > keep:
            suffix = torch.tensor(ids[keep:], dtype=torch.long)
            cache = self.cache if keep else self._new_cache()
            hidden, self.cache = self._run(suffix, cache)
            seq_length = getattr(self.cache, "get_seq_length", None)
            if not callable(seq_length) or seq_length() != len(ids):
                self.cache = None  # a cache that does not cover every position cannot be continued
            self.hidden = torch.cat([self.hidden[:, :keep], hidden], dim=1)

    def _run(self, suffix: torch.Tensor, cache: Any) -> tuple[torch.Tensor, Any]:
        """The suffix's hidden states (and, with sub-layers, the states after each attention, from the
        same pass) and the cache."""
        if not self.sublayers:
            return self.adapter.run(suffix, cache, store=self.store)
        assert self._layout is not None  # set_sublayers found it
        with after_attention(self._layout) as states:
            hidden, cache = self.adapter.run(suffix, cache, store=self.store)
        if any(s is None for s in states):
            raise RuntimeError(f"{self.name}: a block's attention did not run on the sub-layer pass")
        mids = torch.stack([s[0].to(self.store, hidden.dtype) for s in states if s is not None])
        return torch.cat([hidden, mids]), cache

    def _new_cache(self) -> Any:
        """None (the model makes its own), or a cache kept on the host."""
        if not self.offload_cache:
            return None
        from transformers import DynamicCache

        return DynamicCache(config=self.adapter.model.config, offloading=True)

    def cache_bytes(self) -> int:
        """Bytes of the key/value cache's tensors, wherever they are."""
        total = 0
        for layer in getattr(self.cache, "layers", None) or []:
            for name in ("keys", "values"):
                tensor = getattr(layer, name, None)
                if isinstance(tensor, torch.Tensor):
                    total += tensor.nbytes
        return total

    def _croppable(self, length: int) -> bool:
        """Whether a cache of `length` positions can be cut back. A sliding-window layer keeps only its
        last window - 1 positions once `length` reaches its window, so from there it cannot (and
        transformers refuses to): the text is then recomputed from the start."""
        layers = getattr(self.cache, "layers", None)
        if layers is None:
            return not any(getattr(self.cache, "is_sliding", None) or [])
        windows = [getattr(layer, "sliding_window", None) for layer in layers if getattr(layer, "is_sliding", False)]
        return all(isinstance(window, int) and length < window for window in windows)

    def column_logits(
        self, rows: Sequence[int], column: int, top_k: int, chunk_bytes: int | None, lens: Lens | None = None
    ) -> torch.Tensor:
        """float32 [rows, vocab] logits of one column (through `lens`, the track's by default): a
        patch whose logits were not kept, the trajectory panel's column."""
        layers = self.layers(rows)
        distinct = list(dict.fromkeys(layers))
        forward = ModelForward(self.hidden[:, column : column + 1])
        targets = torch.tensor([NO_TARGET])
        lens = self.lens if lens is None else lens
        grid = compute_grid(self.adapter, lens, forward, targets, distinct, top_k, chunk_bytes, True)
        assert grid.last_logits is not None
        return grid.last_logits[[distinct.index(layer) for layer in layers]]

    @torch.inference_mode()
    def pin_log_probs(self, rows: Sequence[int], pins: Sequence[Sequence[int]], block: int = 256) -> np.ndarray:
        """float32 [len(pins), rows, columns]: each pinned item's log-probability in every kept cell of
        `rows` (the session's, in the order of its cells), from the kept hidden states and each cell's
        kept log-sum-exp: the head's columns of the items' tokens only, never the whole head. NaN in
        invalid and pending cells, as the grid has them."""
        adapter, cells = self.adapter, self.cells
        columns = self.columns
        out = np.full((len(pins), len(rows), columns), np.nan, np.float32)
        if not pins or not columns:
            return out
        assert cells.lse is not None  # a session's cells always carry it
        union = sorted({int(i) for item in pins for i in item})
        where = {token: i for i, token in enumerate(union)}
        members = [torch.tensor([where[int(i)] for i in dict.fromkeys(item)]) for item in pins]
        ids = torch.tensor(union, dtype=torch.long, device=adapter.device)
        missing = np.isnan(cells.stats[_ENTROPY])  # invalid cells and pending columns
        with adapter.head_in_place():
            for row, layer in enumerate(self.layers(rows)):
                for start in range(0, columns, block):
                    end = min(columns, start + block)
                    hidden = self.hidden[layer, start:end].to(adapter.device)
                    if layer == adapter.num_layers:
                        head_in = adapter.head_input(hidden)
                    else:
                        translated = translate(self.lens, hidden[None], [layer], adapter.num_layers)[0]
                        head_in = adapter.final_norm(translated)
                    logits = adapter.decode_ids(head_in, ids).cpu()
                    lse = torch.from_numpy(cells.lse[row, start:end])
                    for p, member in enumerate(members):
                        out[p, row, start:end] = (torch.logsumexp(logits[:, member], dim=-1) - lse).numpy()
        out[:, missing] = np.nan
        return out

    def invalid_rows(self, rows: Sequence[int], pending: np.ndarray) -> list[int]:
        """Rows with a cell whose logits are not finite (NaN entropy, which only such a cell has, and
        the placeholders of `pending` columns, which are left out)."""
        bad = np.isnan(self.cells.stats[_ENTROPY][:, ~pending]).any(axis=1)
        return [row for row, b in zip(rows, bad, strict=True) if b]
