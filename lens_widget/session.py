"""LensSession: the kernel-side engine that keeps a lens grid up to date as the text changes.

Incremental by construction. In a causal LM nothing at a position depends on later tokens, so after
an edit every column before the first changed token is still right: the session keeps those cells,
crops the key/value cache to that point and runs the model only on the new suffix. Lens work is
done for the new columns only, plus, when a column's next token changed, its cross-entropy and
rank (from its kept logits when it was the last column, so an append costs one model step and one
column of lens work). Every layer's hidden states are kept per position, so a lens switch or a
stride change costs lens work only.

A/B (`model_b=`): two models over the same tokens, each with its own track (cache, hidden states,
lens, cells), named "a" and "b". B uses A's lens unless `lens_b` is given. Each update runs each
model on the same suffix, and both models' head GEMMs and the diff statistics of each pair of cells
(statistics.DIFF_STATISTICS: KL both ways, Jensen–Shannon, top-1 agreement) come from the same
position blocks (grid.compute_pair_grid), so an append costs about twice one model's. The models
must share the vocabulary (unembedding size, and the tokenizer must fit both input embeddings).
Depths may differ: rows are A's layer indices, and row r (0 … L_A, L_A = output) is paired with B's
layer round(r × L_B / L_A), halves rounded up, so the output pairs with the output and the nearest
layer by relative depth with each other row (grid.aligned_layers); each row's label then names both
indices ("3 | 6"). The stride applies to A's rows.

Bounds (documented in the README): at most `max_tokens` tokens (default 2048, never more than the
model's context, or either model's). Longer text is cut to its first `max_tokens` tokens, and each
update says so in `notice`; only as much of the text is tokenized as those tokens need, so a
keystroke costs the same in a huge text as in a short one, and the tokens left out are then an
estimate ("about N"). Kept state per model is about (L + 1) × T × d hidden values and the key/value
cache in the model's dtype, plus (S × 4 + k × 12 + 4 + 4 × pins) bytes per displayed cell (and D × 4 for the A/B
diff); it shrinks with the text.

Cells whose logits are not finite (a broken model or lens weight, an overflow) are NaN in every
statistic (and in every diff statistic of their pair), and each update's `notice` names the rows
that hold any, over the whole kept grid, and which model.

The columns on screen first: `set_text(text, visible=(start, stop))` runs the model on the whole
new suffix (the cache must be right) but puts only the changed columns within [start, stop) through
the lens; the others are pending (payload.py describes them), and `compute_pending` computes them a chunk at a
time, the visible ones first, each as a "cells" update. A newer edit drops the pending columns it
replaces. Anything that needs the whole grid (full_update, a stride or lens change, grid_arrays)
computes what is pending first; a stride or lens change then answers with a "full" update, since the
cells it completed were never sent.

The session changes its own cells with cells.py's splice_columns, merge_rows, pad_columns and
fill_columns, the functions a receiver applies updates with, so what the session holds and what a
view rebuilds agree by construction. It describes each change as an update.Update; the wire format
(payload.py) is the widget's business.

Sub-layer rows (`sublayers=True`, `set_sublayers`): the residual stream after each block's attention,
row "ℓ.attn" under layer row ℓ (rows.py), recorded on the same forward passes as the hidden states
(blocks.after_attention) and kept, cropped and extended with them (track.py). Turning them on for a
text whose states were kept without them runs the models over the whole text again; turning them off
frees them and drops their rows.

No widget or Jupyter dependency (no anywidget, traitlets or ipywidgets): the widget is a thin shell
around this.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any, TypedDict

import numpy as np
import torch
from torch import nn

from .adapter import ModelAdapter
from .attribution import Attribution, AttributionError, explain, resolve_token
from .capacity import keep_on_host, kept_widths, state_bytes
from .cells import PATCHED, Cells, fill_columns, merge_rows, pad_columns, pending_after, splice_columns
from .checks import (
    MODELS,
    available_device,
    check_max_tokens,
    check_model,
    check_movable,
    check_same_vocabulary,
    check_stride,
    check_tokenizer_matches,
    check_top_k,
    check_vocabulary,
    context_length,
    display_names,
    positive_int,
    whose,
)
from .column import ColumnDetail, column_detail
from .errors import LensMismatchError
from .grid import (
    LensGrid,
    compute_grid,
    compute_pair_grid,
    next_token_targets,
    pair_row_labels,
    stride_rows,
)
from .lenses import Lens, LogitLens, TunedLens
from .pins import Pin, PinError, check_pins, make_pin
from .placement import unwrap
from .rows import by_depth, translate
from .spans import utf16_length
from .statistics import DIFF_STATISTICS, NO_TARGET, STATISTICS, cross_entropy, log_probs, rank
from .text import Tokens, check_tokenizer, cut_notice, tokenize, vocabulary
from .track import Track
from .update import Update

_PATCHED = [STATISTICS.index(name) for name in PATCHED]
KEEP_ON = ("auto", "device", "host")
"""Where a session keeps hidden states and key/value caches: the models' devices, the host, or the
device unless the state at max_tokens would crowd it (capacity.keep_on_host)."""
SMALL_WORK_MACS = 5e7
"""Below about this many multiply-adds (a few ms on one core), an update runs on one CPU thread."""


class Memory(TypedDict):
    """`LensSession.memory()`: bytes by part, over both models in A/B."""

    hidden_states: int
    cache: int
    cells: int
    largest_chunk: int
    kept_on: str
    """The devices hidden states and caches are kept on ("cpu" when kept on the host)."""


class LensSession:
    """A lens grid over an editable text, recomputed incrementally; with `model_b`, two models and
    the diff of each pair of cells."""

    def __init__(
        self,
        model: nn.Module,
        tokenizer: Any,
        lens: Lens | None = None,
        *,
        model_b: nn.Module | None = None,
        lens_b: Lens | None = None,
        names: Sequence[str] | None = None,
        top_k: int = 10,
        layer_stride: int = 1,
        device: str | torch.device | None = None,
        max_tokens: int | None = None,
        chunk_bytes: int | None = None,
        name: str | None = None,
        keep_on: str = "auto",
        sublayers: bool = False,
        add_special_tokens: bool = True,
    ) -> None:
        models = [unwrap(model)] if model_b is None else [unwrap(model), unwrap(model_b)]  # nnsight: its model
        if keep_on not in KEEP_ON:
            raise ValueError(f"keep_on must be one of {', '.join(map(repr, KEEP_ON))}, got {keep_on!r}")
        for key, m in zip(MODELS, models, strict=False):
            check_model(m, "model" if key == "a" else "model_b")
        if lens_b is not None and model_b is None:
            raise ValueError("lens_b is model B's lens: pass model_b too, or give the lens as `lens`")
        check_tokenizer(tokenizer)
        display = display_names(models, names, name)
        if device is not None:
            target = available_device(device)
            for key, m in zip(MODELS, models, strict=False):
                check_movable(m, "model" if key == "a" else "model_b", target)
            for m in models:
                m.to(target)  # documented: the session runs the models where asked
        adapters = []
        for m in models:
            m.eval()
            adapters.append(ModelAdapter(m))
        check_same_vocabulary(adapters, display)
        self.tokenizer = tokenizer
        self.add_special_tokens = bool(add_special_tokens)
        """Whether the tokenizer adds its special tokens (a BOS) to the text: off for a chat template's
        rendering, which has its own (a second BOS would change every prediction)."""
        self._input_vocab = min(
            check_vocabulary(tokenizer, m, a, whose(key, display, len(models)))
            for key, m, a in zip(MODELS, models, adapters, strict=False)
        )
        for key, m in zip(MODELS, models, strict=False):
            check_tokenizer_matches(tokenizer, m, whose(key, display, len(models)))
        self.top_k = check_top_k(top_k, adapters[0].vocab_size)
        self.max_tokens = check_max_tokens(max_tokens, context_length(models))
        self.chunk_bytes = None if chunk_bytes is None else positive_int(chunk_bytes, "chunk_bytes")
        """The float32 working memory of a chunk of lens work; None: sized to the device's free memory
        at each computation (capacity.chunk_bytes_for)."""
        self.layer_stride = check_stride(layer_stride)
        reference = adapters[0].num_layers
        self._ab = model_b is not None
        self._tracks: tuple[Track, ...] = ()
        on_host = _on_host(keep_on, adapters, self.max_tokens)
        for key, label, adapter, given in zip(MODELS, display, adapters, [lens, lens_b], strict=False):
            track = Track(key, label, adapter, LogitLens(), reference, self.top_k, on_host)
            track.lens = self._fit_lens(track, lens if given is None else given)  # B: A's lens unless lens_b
            self._tracks = (*self._tracks, track)
        self._sublayers = _check_bool(sublayers, "sublayers")
        for track in self._tracks if self._sublayers else ():
            track.set_sublayers(True)
        self._rows: list[int] = []
        self._pins: tuple[Pin, ...] = ()
        self._diff: np.ndarray | None = None
        self._text = ""
        self._tokens = Tokens(ids=[], spans=np.empty((0, 2), np.uint32), total=0)
        self._fresh = True
        self._strings: list[str] | None = None
        self._raw: list[str] | None = None
        self._pending = np.zeros(0, bool)
        self._cpu = all(a.device.type == "cpu" for a in adapters)
        self._macs_per_token = sum(sum(p.numel() for p in m.parameters()) for m in models)
        self._macs_per_cell = sum(a.vocab_size * a.d_model for a in adapters)
        self._largest_chunk = 0
        self.revision = 0
        """Counts the changes to the cells, so a caller can tell whether some were never sent (a pending
        column computed by grid_arrays, say)."""
        self.reset()

    # --- public state -------------------------------------------------------------------------

    @property
    def text(self) -> str:
        return self._text

    @property
    def tokens(self) -> Tokens:
        return self._tokens

    @property
    def is_ab(self) -> bool:
        """Whether the session compares two models (A/B), with diff statistics."""
        return self._ab

    @property
    def models(self) -> tuple[str, ...]:
        """The track names: ("a",) or ("a", "b")."""
        return tuple(t.key for t in self._tracks)

    @property
    def names(self) -> tuple[str, ...]:
        """Each model's display name, distinct: the `names` given, else its config's name_or_path, else
        its class name (" (B)" is added to B's when it equals A's)."""
        return tuple(t.name for t in self._tracks)

    @property
    def num_layers(self) -> int:
        """Model A's depth L: rows are A's layer indices, L its output."""
        return self._tracks[0].adapter.num_layers

    @property
    def lens(self) -> Lens:
        """Model A's lens (`lens_of` for either model)."""
        return self._tracks[0].lens

    def model_of(self, model: str = "a") -> nn.Module:
        """The transformers model behind `model` ("a" or "b")."""
        return self._track(model).adapter.model

    def lens_of(self, model: str = "a") -> Lens:
        """The lens `model` ("a" or "b") is read through."""
        return self._track(model).lens

    @property
    def sublayers(self) -> bool:
        """Whether the rows after each attention ("ℓ.attn", rows.py) are computed and shown."""
        return self._sublayers

    @property
    def display_rows(self) -> list[int]:
        """Rows the stride selects: 0, s, 2s, … < L, and always the output row L (A's indices); with
        sub-layers, each of them but 0 with its ℓ.attn row, in depth order (rows.by_depth)."""
        return stride_rows(self.num_layers, self.layer_stride, self._sublayers)

    @property
    def rows(self) -> list[int]:
        """Rows with cells (at least display_rows; more after a stride change, until the next edit)."""
        return list(self._rows)

    def layers(self, model: str = "a") -> list[int]:
        """The layer of `model` each of `rows` shows (A's rows themselves; B's by relative depth)."""
        return self._track(model).layers(self._rows)

    @property
    def row_labels(self) -> list[str]:
        """The label of each of `rows` (both models' layer indices when their depths differ)."""
        return self._labels(self._rows)

    @property
    def pending(self) -> list[tuple[int, int]]:
        """Column ranges [start, stop) whose cells are still to compute (`compute_pending`)."""
        return _runs(self._pending)

    def grid_arrays(self, model: str = "a") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """float32 statistics [S, rows, T], int64 top ids and float32 top probabilities [rows, T, k]
        (computing any pending columns first)."""
        with self._consistent():
            self._complete()
        arrays = self._track(model).cells
        return arrays.stats, arrays.top_ids, arrays.top_probs

    def pin_arrays(self, model: str = "a") -> np.ndarray:
        """float32 [len(pins), rows, T]: each pinned item's log-probability in every cell of `model`
        (computing any pending columns first); NaN in an invalid cell."""
        with self._consistent():
            self._complete()
        pins = self._track(model).cells.pins
        assert pins is not None  # a session's cells always carry them
        return pins

    def diff_arrays(self) -> np.ndarray | None:
        """float32 [len(DIFF_STATISTICS), rows, T] of an A/B session (None with one model). B − A of
        the single-model statistics is not here: subtract the two grid_arrays."""
        with self._consistent():
            self._complete()
        return self._diff

    def memory(self) -> Memory:
        """Bytes the session holds, by part, over both models in A/B: `hidden_states` and `cache` (on
        `kept_on`: the models' devices, or the host when the device was short, see `keep_on`), `cells`
        (the grids and diff, host numpy arrays), and `largest_chunk`, the most working memory one
        computation of lens work has allocated on the head's device so far."""
        cells = sum(t.cells.nbytes for t in self._tracks)
        return {
            "hidden_states": sum(t.hidden.nbytes for t in self._tracks),
            "cache": sum(t.cache_bytes() for t in self._tracks),
            "cells": cells + (0 if self._diff is None else self._diff.nbytes),
            "largest_chunk": self._largest_chunk,
            "kept_on": ", ".join(dict.fromkeys(str(t.store) for t in self._tracks)),
        }

    def token_strings(self) -> list[str]:
        """Every token id's text, as the view shows it (text.vocabulary), made once."""
        if self._strings is None:
            self._strings = vocabulary(self.tokenizer, self._tracks[0].adapter.vocab_size)
        return self._strings

    def attribution(self, row: int, position: int, token: int | str | None = None, model: str = "a") -> Attribution:
        """What wrote one cell's logit for `token` (its top-1 by default): the embedding, each head,
        each MLP and the biases, through the cell's lens (attribution.py). row: a layer index (the
        output is num_layers), or num_layers + ℓ for the sublayer row "ℓ.attn". In A/B, model B is
        read at its own layer for A's row, as its cells are."""
        track = self._track(model)
        strings = self.token_strings()
        token_id = resolve_token(token, strings, self.tokenizer)
        if isinstance(row, bool) or not isinstance(row, (int, np.integer)):
            raise AttributionError(f"row must be a layer index, got {row!r}")
        row, L = int(row), self.num_layers
        if not 0 <= row <= 2 * L:
            raise AttributionError(f"row must be from 0 to {2 * L} (layers 0 … {L}, then the ℓ.attn rows), got {row}")
        own_row = track.layers([row])[0]
        ids = list(self._tokens.ids)
        with self._small(self._macs_per_token + self._macs_per_cell):  # one token's forward, one cell's logits
            found = explain(
                track.adapter,
                track.lens,
                ids,
                track.hidden,
                track.cache,
                own_row,
                position,
                token_id,
                strings,
                track.name,
            )
        return replace(found, row=row, label=self._labels([row])[0])

    def next_logits(self, model: str = "a", row: int | None = None) -> torch.Tensor:
        """float32 [vocab]: the logits the next token is chosen from, at the last position: the
        model's own (`row` None or the output), or a lens row's prediction through the model's lens
        (what the model would say had it stopped there). Computed from the kept hidden state, through
        the same adapter as every cell, so greedy generation is the model's own."""
        track = self._track(model)
        if not self._tokens.ids:
            raise ValueError("there is no text to continue: type or set some first")
        L = self.num_layers
        row = L if row is None else row
        if isinstance(row, bool) or not isinstance(row, int) or not 0 <= row <= (2 * L if self.sublayers else L):
            raise ValueError(f"row must be a row of the grid (0 … {L}, the output {L}), got {row!r}")
        kept = track.last_logits.get(row)  # the last column's cells were just computed: its logits kept
        if kept is not None:
            return kept.float().reshape(-1)
        own = track.layers([row])[0]
        own_layers = track.adapter.num_layers
        h = track.hidden[own, -1:]
        with torch.inference_mode(), self._small(self._macs_per_cell):
            if own == own_layers:
                logits = track.adapter.output_logits(h)
            else:
                logits = track.adapter.unembed(translate(track.lens, h[None], [own], own_layers)[0])
        return logits.float().reshape(-1)

    # --- changes ------------------------------------------------------------------------------

    def set_text(self, text: str, visible: tuple[int, int] | None = None) -> Update:
        """Bring the grid up to date with `text`; returns the columns that changed.

        visible: the column range [start, stop) on screen. Only the changed columns within it are put
        through the lens now; the rest are left pending for `compute_pending` (None: all of them, and
        any left pending by earlier edits, so the grid is whole when this returns).
        """
        if visible is not None:
            visible = _column_range(visible)
        tokens = tokenize(self.tokenizer, text, self.max_tokens, self.add_special_tokens)
        self._check_ids(tokens.ids)
        return self._apply(text, tokens, visible)

    def append_tokens(self, ids: Sequence[int], piece: str, visible: tuple[int, int] | None = None) -> Update:
        """Append token ids (a generated token) and the text they add, `piece`: the tokens are kept as
        given rather than re-tokenized from the text (generate.py says why), each spanning the whole
        piece; an append, as typing at the end is. The next set_text re-tokenizes the text."""
        if visible is not None:
            visible = _column_range(visible)
        ids = [int(i) for i in ids]
        if not ids:
            raise ValueError("append_tokens needs at least one token id")
        self._check_ids(ids)
        old = self._tokens
        if old.total > len(old.ids) or len(old.ids) + len(ids) > self.max_tokens:
            raise ValueError(f"the text has reached max_tokens = {self.max_tokens}: no token can be appended")
        start = utf16_length(self._text)
        span = np.tile(np.array([[start, start + utf16_length(piece)]], np.uint32), (len(ids), 1))
        n = len(old.ids) + len(ids)
        tokens = Tokens(ids=[*old.ids, *ids], spans=np.concatenate([old.spans, span]), total=n)
        return self._apply(self._text + piece, tokens, visible)

    def _apply(self, text: str, tokens: Tokens, visible: tuple[int, int] | None) -> Update:
        """Bring the grid to `tokens` of `text` (set_text, append_tokens)."""
        old = self._tokens
        keep = 0 if self._fresh else _common_prefix(old, tokens)
        with self._consistent(), self._threads(keep, len(tokens.ids), visible):
            patched = old.ids != tokens.ids and keep > 0  # column keep - 1 has a new next token
            ids = tokens.ids
            n = len(ids)
            targets = next_token_targets(torch.tensor(ids, dtype=torch.long))
            rows = self.display_rows
            for track in self._tracks:
                track.advance(ids, keep)
            patches = [self._patch(track, rows, keep, targets) if patched else None for track in self._tracks]
            first, end = (keep, n) if visible is None else _within(visible, keep, n)
            grids, diff = self._compute(rows, first, targets, end)
            self._splice(rows, keep, grids, patches, diff, first, end)
            self._text, self._tokens = text, tokens
            self._fresh = False
            if visible is None and self._complete():  # columns left pending by earlier typing: all resent
                return self._update("full", self._rows, 0)
            return self._update("full" if keep == 0 else "columns", rows, keep, patches, first, end)

    def compute_pending(self, visible: tuple[int, int] | None = None, max_columns: int = 16) -> Update | None:
        """Compute up to `max_columns` pending columns (one run of them: on screen first, then after
        the screen, then before it) as a "cells" update; None when nothing is pending."""
        pending = np.flatnonzero(self._pending)
        if not len(pending):
            return None
        max_columns = positive_int(max_columns, "max_columns")
        start, stop = (0, 0) if visible is None else _column_range(visible)
        order = np.where((pending >= start) & (pending < stop), 0, np.where(pending >= stop, 1, 2))
        first = int(pending[np.lexsort((pending, order))[0]])
        end = first
        while end < len(self._pending) and self._pending[end] and end - first < max_columns:
            end += 1
        with self._consistent(), self._small(len(self._rows) * (end - first) * self._macs_per_cell):
            self._fill(first, end)
            return self._update("cells", self._rows, len(self._tokens.ids), cell_start=first, cell_end=end)

    def finish(self) -> list[Update]:
        """Every pending column, as "cells" updates (one per run of pending columns)."""
        updates = []
        for first, end in self.pending:
            with self._consistent():
                self._fill(first, end)
                n = len(self._tokens.ids)
                updates.append(self._update("cells", self._rows, n, cell_start=first, cell_end=end))
        return updates

    def set_lens(self, lens: Lens | None, model: str = "a") -> Update:
        """Switch one model's lens (tuned ↔ logit) without running a model: its lens rows are
        recomputed (in A/B, with the other model's cells and the diff, which depends on both)."""
        return self.set_lenses({model: lens})

    def set_lenses(self, lenses: Mapping[str, Lens | None]) -> Update:
        """Switch several models' lenses at once (the widget's lens toggle): the rows are recomputed
        once for all of them, where one set_lens per model would recompute the diff twice."""
        tracks = [(self._track(model), lens) for model, lens in lenses.items()]
        fitted: list[tuple[Track, Lens]] = []
        for track, lens in tracks:
            fitted.append((track, self._fit_lens(track, lens, fitted)))
        with self._consistent():
            completed = self._complete()
            lens_rows: set[int] = set()
            for track, lens in fitted:
                track.lens = lens
                own = track.adapter.num_layers
                lens_rows |= {r for r, layer in zip(self._rows, track.layers(self._rows), strict=True) if layer != own}
            rows = by_depth(lens_rows, self.num_layers)
            self._compute_rows(rows)
            return self._update("full", self._rows, 0) if completed else self._update("rows", rows, 0)

    def make_pin(self, *items: str | int, label: str | None = None) -> Pin:
        """A pinned item from words (each its token set, pins.word_token_ids) and token ids, all added
        up together; labelled by its words (or tokens) unless `label` is given."""
        if self._raw is None:
            known = min(len(self.tokenizer), self._tracks[0].adapter.vocab_size)
            self._raw = [str(t) for t in self.tokenizer.convert_ids_to_tokens(list(range(known)))]
        return make_pin(items, label, self.token_strings(), self._raw, self.tokenizer)

    def column(self, column: int, query: str = "") -> ColumnDetail:
        """Column `column` in full, for the trajectory panel: each pinned item (or, with none, each
        token that is top-1 at some row) at every row, through every lens each model has been read
        through, and a search of the vocabulary for `query` (column.py)."""
        if isinstance(column, bool) or not isinstance(column, int) or not 0 <= column < len(self._tokens.ids):
            raise ValueError(f"column must be a token column in 0..{len(self._tokens.ids) - 1}, got {column!r}")
        if not isinstance(query, str) or len(query) > 100:
            raise ValueError("query must be a string of at most 100 characters")
        with self._small(len(self._rows) * self._macs_per_cell):
            return column_detail(self._tracks, self._rows, column, self._pins, self.token_strings(), self.top_k, query)

    @property
    def pins(self) -> tuple[Pin, ...]:
        """The pinned items, in the order of every cell's log-probabilities (Cells.pins)."""
        return self._pins

    def set_pins(self, pins: Sequence[Pin]) -> Update:
        """Pin these items (and no others): each kept item keeps its values; each new one costs its
        tokens' columns of the head on the kept hidden states (a [cells, d] × [d, tokens] product) and
        no model run, nor the rest of the head."""
        pins = check_pins(pins)
        for pin in pins:
            beyond = [i for i in pin.ids if not 0 <= i < self._tracks[0].adapter.vocab_size]
            if beyond:
                raise PinError(f"token id {beyond[0]} of {pin.label!r} is beyond the vocabulary")
        with self._consistent():
            self._complete()
            old = {p.ids: i for i, p in enumerate(self._pins)}
            new = [p for p in pins if p.ids not in old]
            for track in self._tracks:
                cells = track.cells
                assert cells.pins is not None  # a session's cells always carry them (its grids compute them)
                fresh = track.pin_log_probs(self._rows, [p.ids for p in new])
                parts = [cells.pins[old[p.ids]] if p.ids in old else fresh[new.index(p)] for p in pins]
                values = np.stack(parts) if parts else np.empty((0, *cells.stats.shape[1:]), np.float32)
                track.cells = replace(cells, pins=values)
            self._pins = pins
            self.revision += 1
            return self._update("full", self._rows, 0)

    def set_layer_stride(self, stride: int) -> Update:
        """Show every `stride`-th layer (and the output row); only rows not yet computed cost work."""
        self.layer_stride = check_stride(stride)
        with self._consistent():
            completed = self._complete()
            missing = [r for r in self.display_rows if r not in self._rows]
            self._compute_rows(missing)
            return self._update("full", self._rows, 0) if completed else self._update("rows", missing, 0)

    def set_sublayers(self, on: bool) -> Update:
        """Show the rows after each attention (on) or not. On, for a text whose states were kept
        without them, the models run over the whole text again to record them (the layer rows' cells
        are kept; one forward pass, then their rows' lens work), answered as a "rows" update; off frees
        them and drops their rows, answered as a "full" update (a view keeps rows a "rows" update
        does not list)."""
        on = _check_bool(on, "sublayers")
        if on:
            for track in self._tracks:
                track.find_layout()  # a model whose blocks cannot be split is refused before any change
        with self._consistent():
            completed = self._complete()
            self._sublayers = on
            for track in self._tracks:
                rerun = on and not track.sublayers and track.positions > 0
                track.set_sublayers(on)
                if rerun:
                    track.advance(self._tokens.ids, 0)
            if not on:
                keep = [i for i, r in enumerate(self._rows) if r <= self.num_layers]
                for track in self._tracks:
                    track.cells = track.cells.select(keep)
                if self._diff is not None:
                    self._diff = self._diff[:, keep]
                self._rows = [self._rows[i] for i in keep]
                self.revision += 1
                return self._update("full", self._rows, 0)
            missing = [r for r in self.display_rows if r not in self._rows]
            self._compute_rows(missing)
            return self._update("full", self._rows, 0) if completed else self._update("rows", missing, 0)

    def full_update(self) -> Update:
        """The whole state, for a view that has nothing yet (pending columns computed first)."""
        with self._consistent():
            self._complete()
        return self._update("full", self._rows, 0)

    def reset(self) -> None:
        """Forget every cached result; the next set_text recomputes from scratch (a "full" update)."""
        for track in self._tracks:
            track.reset()
        self._rows = []
        self._diff = np.empty((len(DIFF_STATISTICS), 0, 0), np.float32) if self.is_ab else None
        self._tokens = Tokens(ids=[], spans=np.empty((0, 2), np.uint32), total=0)
        self._pending = np.zeros(0, bool)
        self._text = ""  # the text is forgotten with its cells: `text` never names a grid that is not there
        self._fresh = True
        self.revision += 1

    # --- internals ----------------------------------------------------------------------------

    def _track(self, model: str) -> Track:
        for track in self._tracks:
            if track.key == model:
                return track
        raise ValueError(f"model must be one of {self.models}, got {model!r}")

    def _threads(self, keep: int, n: int, visible: tuple[int, int] | None) -> Any:
        """`_small` for a set_text of `n` tokens keeping `keep` whose work is small: the suffix's
        forward and its changed cells (at most the visible ones), estimated before anything runs."""
        columns = n - keep + 1  # and the patched column
        if visible is not None:
            columns = min(columns, visible[1] - visible[0] + 1)
        else:
            columns += int(self._pending[:keep].sum())  # completed too
        rows = len(self.display_rows)
        return self._small((n - keep) * self._macs_per_token + rows * columns * self._macs_per_cell)

    @contextmanager
    def _small(self, macs: float) -> Iterator[None]:
        """Run work of about `macs` multiply-adds on one CPU thread when it is small: a keystroke on a
        small model is a few hundred tiny operations, where a second thread only adds synchronisation,
        and on a busy machine (two cores shared with anything else) its spin-waits cost 30× the work
        (bench_view: a demo-model append 8 ms on one thread, 246 ms on two under load)."""
        threads = torch.get_num_threads()
        if not self._cpu or threads == 1 or macs >= SMALL_WORK_MACS:
            yield
            return
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(threads)

    @contextmanager
    def _consistent(self) -> Iterator[None]:
        """On any exception inside, forget all cached state so the next set_text starts clean."""
        try:
            yield
        except BaseException:
            self.reset()
            raise

    def _check_ids(self, ids: list[int]) -> None:
        """The tokenizer can gain tokens after the session checked it (add_tokens): refuse those a
        model has no embedding for, before any state changes."""
        beyond = [i for i in ids if i >= self._input_vocab]
        if beyond:
            token = self.tokenizer.convert_ids_to_tokens(beyond[0])
            vocabularies = "the models' vocabularies" if self.is_ab else "the model's vocabulary"
            raise ValueError(
                f"token id {beyond[0]} ({token!r}) is beyond {vocabularies} of {self._input_vocab} ids; "
                "was it added to the tokenizer without resizing the model's embeddings?"
            )

    def _fit_lens(self, track: Track, lens: Lens | None, claimed: Sequence[tuple[Track, Lens]] = ()) -> Lens:
        """`lens` checked against the track's model and moved to its device and dtype.

        A tuned lens the other model uses, on another device or in another dtype, is copied first:
        fitting moves a lens in place, which would take it away from the other model (`claimed`: lenses
        fitted earlier in the same switch, not yet the tracks' own). Reusing A's lens
        for B is what was asked, so B's unembedding fingerprint differing from A's is not warned about.
        """
        if lens is None:
            return LogitLens()
        if isinstance(lens, TunedLens):
            others = [t for t in self._tracks if t is not track and t.lens is lens]  # A's lens reused for B
            others += [t for t, fitted in claimed if fitted is lens and t is not track and t not in others]
            if any((t.adapter.device, t.adapter.dtype) != (track.adapter.device, track.adapter.dtype) for t in others):
                lens = copy.deepcopy(lens)
            try:
                with warnings.catch_warnings():
                    if others:  # one lens for both checkpoints, as asked: its fingerprint is A's, not B's
                        warnings.filterwarnings("ignore", message="the lens was trained for", category=UserWarning)
                    return lens.fit(track.adapter)
            except LensMismatchError as exc:
                if not self._ab:
                    raise
                hint = "; give model B its own: lens_b= (its tuned lens, or LogitLens())" if track.key == "b" else ""
                raise LensMismatchError(f"model {track.key.upper()} ({track.name}): {exc}{hint}") from exc
        if not isinstance(lens, Lens):
            raise TypeError(f"lens must be a TunedLens, a LogitLens or None, got {type(lens).__name__}")
        return lens

    def _patch(self, track: Track, rows: list[int], keep: int, targets: torch.Tensor) -> np.ndarray:
        """Cross-entropy and rank (cells.PATCHED order) of column keep - 1, whose next token changed."""
        patch = np.full((len(_PATCHED), len(rows)), np.nan, np.float32)
        target = int(targets[keep - 1])
        if target == NO_TARGET:
            return patch  # it became the last column: nothing to predict
        if keep == track.columns and all(r in track.last_logits for r in rows):
            logits = torch.stack([track.last_logits[r] for r in rows])
        else:
            logits = track.column_logits(rows, keep - 1, self.top_k, self.chunk_bytes)
        target_t = torch.full((len(rows),), target, dtype=torch.long, device=logits.device)
        values = {"cross_entropy": cross_entropy(log_probs(logits), target_t), "rank": rank(logits, target_t)}
        for i, name in enumerate(PATCHED):
            patch[i] = values[name].cpu().numpy()
        return patch

    def _compute(
        self, rows: list[int], start: int, targets: torch.Tensor, end: int | None = None
    ) -> tuple[list[LensGrid], np.ndarray | None]:
        """Every track's cells of `rows` at columns start … end - 1 (to the last by default), and in A/B
        the diff, from the same blocks; with the last column's logits when it is among them."""
        k, chunk = self.top_k, self.chunk_bytes
        end = len(targets) if end is None else end
        last = end == len(targets)
        if not self._ab:
            a = self._tracks[0].source(start, end)
            pins = [p.ids for p in self._pins]
            grid = compute_grid(a.adapter, a.lens, a.forward, targets[start:end], rows, k, chunk, last, pins=pins)
            self._largest_chunk = max(self._largest_chunk, grid.work_bytes)
            return [grid], None
        track_a, track_b = self._tracks
        pair = compute_pair_grid(
            track_a.source(start, end),
            track_b.source(start, end),
            targets[start:end],
            rows,
            k,
            chunk,
            keep_last_logits=last,
            rows_b=track_b.layers(rows),
            pins=[p.ids for p in self._pins],
        )
        self._largest_chunk = max(self._largest_chunk, pair.a.work_bytes)
        return [pair.a, pair.b], pair.diff

    def _splice(
        self,
        rows: list[int],
        keep: int,
        grids: list[LensGrid],
        patches: list[np.ndarray | None],
        diff: np.ndarray | None,
        first: int,
        end: int,
    ) -> None:
        """A "columns" update applied to the session's own cells, as a receiver applies it
        (cells.splice_columns, with pad_columns for the pending columns outside [first, end)); with
        nothing kept it is a "full" one, which replaces them."""
        n = self._tracks[0].positions  # the new column count: the tracks have advanced
        for track, grid, patch in zip(self._tracks, grids, patches, strict=True):
            old_columns = track.columns
            new = pad_columns(grid, n - keep, first - keep)
            if keep > 0:
                new = splice_columns(track.cells, self._rows, rows, keep, new, patch, _PATCHED)
            track.cells = new
            if end == n and grid.last_logits is not None:
                track.last_logits = dict(zip(rows, grid.last_logits, strict=True))
            elif end < n or keep < old_columns:
                track.last_logits = {}  # the new last column is pending, or the text shrank: not kept
        if self._diff is not None and diff is not None:
            new_diff = pad_columns(Cells.stats_only(diff), n - keep, first - keep)
            kept = Cells.stats_only(self._diff)
            self._diff = (new_diff if keep == 0 else splice_columns(kept, self._rows, rows, keep, new_diff)).stats
        pending = pending_after(self._pending if self._pending.any() else None, keep, n, first, end)
        self._pending = np.zeros(n, bool) if pending is None else pending
        self._rows = list(rows)
        self.revision += 1

    def _fill(self, first: int, end: int) -> None:
        """Compute pending columns first … end - 1 of every kept row, as a receiver applies a "cells"
        update (cells.fill_columns)."""
        targets = next_token_targets(torch.tensor(self._tokens.ids, dtype=torch.long))
        grids, diff = self._compute(self._rows, first, targets, end)
        for track, grid in zip(self._tracks, grids, strict=True):
            track.cells = fill_columns(track.cells, first, grid)
            if grid.last_logits is not None:
                track.last_logits = dict(zip(self._rows, grid.last_logits, strict=True))
        if self._diff is not None and diff is not None:
            kept = Cells.stats_only(self._diff)
            self._diff = fill_columns(kept, first, Cells.stats_only(diff)).stats
        self._pending[first:end] = False
        self.revision += 1

    def _complete(self) -> bool:
        """Compute every pending column; whether there were any."""
        runs = self.pending
        for first, end in runs:
            self._fill(first, end)
        return bool(runs)

    def _compute_rows(self, rows: list[int]) -> None:
        """(Re)compute `rows` for every column and merge them into the cells, as a receiver merges a
        "rows" update (cells.merge_rows)."""
        if not rows:
            return
        targets = next_token_targets(torch.tensor(self._tokens.ids, dtype=torch.long))
        grids, diff = self._compute(rows, 0, targets)
        merged = self._rows
        for track, grid in zip(self._tracks, grids, strict=True):
            track.cells, merged = merge_rows(track.cells, self._rows, grid, rows, num_layers=self.num_layers)
            if grid.last_logits is not None:
                track.last_logits.update(zip(rows, grid.last_logits, strict=True))
        if self._diff is not None and diff is not None:
            kept, new = Cells.stats_only(self._diff), Cells.stats_only(diff)
            self._diff = merge_rows(kept, self._rows, new, rows, num_layers=self.num_layers)[0].stats
        self._rows = merged
        self.revision += 1

    def _labels(self, rows: Sequence[int]) -> list[str]:
        other = self._tracks[-1].adapter.num_layers
        return pair_row_labels(rows, self.num_layers, other)

    def _update(
        self,
        kind: str,
        rows: Sequence[int],
        start: int,
        patches: Sequence[Any] = (),
        cell_start: int | None = None,
        cell_end: int | None = None,
    ) -> Update:
        rows = tuple(rows)
        tokens = self._tokens
        n = len(tokens.ids)
        first = start if cell_start is None else cell_start
        end = n if cell_end is None else cell_end
        patches = list(patches) or [None] * len(self._tracks)
        cut = cut_notice(tokens, self.max_tokens)
        notice = " ".join(filter(None, [cut, *map(self._invalid_notice, self._tracks)]))
        return Update(
            kind=kind,
            rows=rows,
            col_start=start,
            n_tokens=n,
            cell_start=first,
            cell_end=end,
            row_labels=tuple(self._labels(rows)),
            num_layers=self.num_layers,
            total_tokens=tokens.total,
            top_k=self.top_k,
            lens="tuned" if any(t.lens.name == "tuned" for t in self._tracks) else "logit",  # the toggle's
            vocab_size=self._tracks[0].adapter.vocab_size,
            notice=notice,
            layer_stride=self.layer_stride,
            names=tuple(t.name for t in self._tracks),
            pins=tuple(p.label for p in self._pins),
            kept=tuple(t.cells for t in self._tracks),
            index=tuple(self._rows.index(r) for r in rows),
            token_ids=np.asarray(tokens.ids, np.int64),
            token_spans=tokens.spans,
            patches=tuple(patches),
            kept_diff=self._diff,
        )

    def _invalid_notice(self, track: Track) -> str:
        rows = track.invalid_rows(self._rows, self._pending)
        if not rows:
            return ""
        labels = ", ".join(self._labels(rows))
        where = f" of model {track.key.upper()} ({track.name})" if self._ab else ""
        notice = (
            f"Non-finite logits (NaN or infinity) in row{'s' if len(rows) > 1 else ''} {labels}{where}: "
            "those cells are invalid (every statistic NaN); check the model's and the lens's weights and dtype."
        )
        if self.num_layers in rows:
            notice += " The forward KL compares every row with the output, so it is NaN wherever the output is."
        return notice


def _on_host(keep_on: str, adapters: Sequence[ModelAdapter], max_tokens: int) -> bool:
    """Whether hidden states and caches are kept on the host: asked, or ("auto") when the models'
    state at `max_tokens` would take more than a share of the head's device's free memory."""
    if keep_on != "auto":
        return keep_on == "host"
    needed = sum(sum(state_bytes(max_tokens, *kept_widths(a))) for a in adapters)
    return keep_on_host(adapters[0].device, needed)


def _check_bool(value: object, name: str) -> bool:
    """A flag given as a real bool (a truthy string or number is more likely a mistake than a wish)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def _common_prefix(old: Tokens, new: Tokens) -> int:
    """Leading tokens that are the same token over the same text (ids and spans)."""
    n = min(len(old.ids), len(new.ids))
    same = (np.asarray(old.ids[:n]) == np.asarray(new.ids[:n])) & (old.spans[:n] == new.spans[:n]).all(axis=1)
    differs = np.flatnonzero(~same)
    return int(differs[0]) if len(differs) else n


def _column_range(visible: tuple[int, int]) -> tuple[int, int]:
    """A [start, stop) column range, checked."""
    try:
        start, stop = (int(x) for x in visible)
    except (TypeError, ValueError):
        raise ValueError(f"visible must be a (start, stop) pair of column indices, got {visible!r}") from None
    if not 0 <= start <= stop:
        raise ValueError(f"visible must be a (start, stop) pair with 0 <= start <= stop, got {visible!r}")
    return start, stop


def _within(visible: tuple[int, int], keep: int, n: int) -> tuple[int, int]:
    """The changed columns (keep … n - 1) on screen, as [first, end); empty at keep when none are."""
    first = min(max(keep, visible[0]), n)
    end = max(first, min(visible[1], n))
    return (first, end) if end > first else (keep, keep)


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """The [start, stop) runs of True in a bool array."""
    edges = np.flatnonzero(np.diff(np.concatenate([[False], flags, [False]]).astype(np.int8)))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]
