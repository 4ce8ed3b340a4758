"""LensSession: the kernel-side engine that keeps a lens grid up to date as the text changes.

Incremental by construction. In a causal LM nothing at a position depends on later tokens, so after
an edit every column before the first changed token is still right: the session keeps those cells,
crops the key/value cache to that point and runs the model only on the new suffix. Lens work is
done for the new columns only, plus, when a column's next token changed, its cross-entropy and
rank (from its kept logits when it was the last column, so an append costs one model step and one
column of lens work). Every layer's hidden states are kept per position, so a lens switch or a
stride change costs lens work only.

Bounds (documented in the README): at most `max_tokens` tokens (default 2048, never more than the
model's context). Longer text is cut to its first `max_tokens` tokens, and each update says so in
`notice`; only as much of the text is tokenized as those tokens need, so a keystroke costs the same
in a huge text as in a short one, and the tokens left out are then an estimate ("about N"). Kept
state is about (L + 1) × T × d hidden values and the key/value cache in the model's dtype, plus
(S × 4 + k × 12) bytes per displayed cell; it shrinks with the text.

Cells whose logits are not finite (a broken model or lens weight, an overflow) are NaN in every
statistic, and each update's `notice` names the rows that hold any, over the whole kept grid.

No widget or Jupyter dependency: the widget is a thin shell around this.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from .adapter import ModelAdapter, ModelForward
from .grid import DEFAULT_CHUNK_BYTES, LensGrid, compute_grid, next_token_targets, row_labels
from .lenses import Lens, LogitLens, TunedLens
from .payload import GridBlock, encode_update, encode_vocabulary
from .statistics import NO_TARGET, STATISTICS, cross_entropy, log_probs, rank
from .text import Tokens, check_tokenizer, tokenize, vocabulary

DEFAULT_MAX_TOKENS = 2048
_CONTEXT_ATTRS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length", "n_ctx")
_CE, _RANK = STATISTICS.index("cross_entropy"), STATISTICS.index("rank")
_ENTROPY = STATISTICS.index("entropy")


@dataclass(frozen=True)
class Update:
    """What one call changed, and the payload that tells a view (see payload.py)."""

    kind: str
    """"full", "columns" or "rows"."""
    rows: tuple[int, ...]
    """Rows the payload carries cells for."""
    col_start: int
    """First column the payload carries (0 unless kind is "columns")."""
    n_tokens: int
    payload: dict[str, Any]

    @property
    def changed_columns(self) -> range:
        return range(self.col_start, self.n_tokens)


class _Track:
    """One model's state over the session's text, separable so that an A/B session holds two."""

    def __init__(self, name: str, adapter: ModelAdapter, lens: Lens) -> None:
        self.name = name
        self.adapter = adapter
        self.lens = lens
        self.reset()

    def reset(self) -> None:
        adapter = self.adapter
        self.cache: Any = None
        self.hidden = torch.empty(
            (adapter.num_layers + 1, 0, adapter.d_model), dtype=adapter.dtype, device=adapter.device
        )
        self.rows: list[int] = []
        self.stats = np.empty((len(STATISTICS), 0, 0), np.float32)
        self.top_ids = np.empty((0, 0, 0), np.int64)
        self.top_probs = np.empty((0, 0, 0), np.float32)
        self.last_logits: dict[int, torch.Tensor] = {}
        """Row → float32 [vocab] logits of the last column, for the next append's patch."""

    @property
    def positions(self) -> int:
        return int(self.hidden.shape[1])

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
            hidden, self.cache = self.adapter.run(suffix, self.cache if keep else None)
            seq_length = getattr(self.cache, "get_seq_length", None)
            if not callable(seq_length) or seq_length() != len(ids):
                self.cache = None  # a cache that does not cover every position cannot be continued
            self.hidden = torch.cat([self.hidden[:, :keep], hidden], dim=1)

    def _croppable(self, length: int) -> bool:
        """Whether a cache of `length` positions can be cut back. A sliding-window layer keeps only its
        last window - 1 positions once `length` reaches its window, so from there it cannot (and
        transformers refuses to): the text is then recomputed from the start."""
        layers = getattr(self.cache, "layers", None)
        if layers is None:
            return not any(getattr(self.cache, "is_sliding", None) or [])
        windows = [getattr(layer, "sliding_window", None) for layer in layers if getattr(layer, "is_sliding", False)]
        return all(isinstance(window, int) and length < window for window in windows)

    def grid(self, rows: Sequence[int], start: int, targets: torch.Tensor, top_k: int, chunk: int) -> LensGrid:
        forward = ModelForward(self.hidden[:, start:])
        return compute_grid(
            self.adapter, self.lens, forward, targets[start:], rows, top_k, chunk, keep_last_logits=True
        )

    def invalid_rows(self) -> list[int]:
        """Rows with a cell whose logits are not finite (NaN entropy, which only such a cell has)."""
        bad = np.isnan(self.stats[_ENTROPY]).any(axis=1)
        return [row for row, b in zip(self.rows, bad, strict=True) if b]

    def keep_rows(self, rows: Sequence[int]) -> None:
        index = [self.rows.index(r) for r in rows]
        self.stats, self.top_ids, self.top_probs = self.stats[:, index], self.top_ids[index], self.top_probs[index]
        self.rows = list(rows)
        self.last_logits = {r: v for r, v in self.last_logits.items() if r in rows}

    def block(self, rows: Sequence[int], start: int, patch: np.ndarray | None = None) -> GridBlock:
        index = [self.rows.index(r) for r in rows]
        return GridBlock(
            self.name,
            self.stats[:, index, start:],
            self.top_ids[index, start:],
            self.top_probs[index, start:],
            patch,
        )


class LensSession:
    """A lens grid over an editable text, recomputed incrementally."""

    def __init__(
        self,
        model: nn.Module,
        tokenizer: Any,
        lens: Lens | None = None,
        *,
        top_k: int = 10,
        layer_stride: int = 1,
        device: str | torch.device | None = None,
        max_tokens: int | None = None,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        name: str | None = None,
    ) -> None:
        _check_model(model)
        check_tokenizer(tokenizer)
        if device is not None:
            model.to(_available_device(device))  # documented: the session runs the model where asked
        model.eval()
        adapter = ModelAdapter(model)
        self.tokenizer = tokenizer
        self._input_vocab = _check_vocabulary(tokenizer, model, adapter)
        self.top_k = _check_top_k(top_k, adapter.vocab_size)
        self.max_tokens = _check_max_tokens(max_tokens, _context_length(model))
        self.chunk_bytes = _positive_int(chunk_bytes, "chunk_bytes")
        self.layer_stride = _check_stride(layer_stride)
        model_name = name or getattr(model.config, "name_or_path", "") or type(model).__name__
        self._tracks = [_Track(str(model_name), adapter, self._fit_lens(adapter, lens))]
        self._text = ""
        self._tokens = Tokens(ids=[], spans=np.empty((0, 2), np.uint32), total=0)
        self._fresh = True
        self._vocabulary: dict[str, Any] | None = None

    # --- public state -------------------------------------------------------------------------

    @property
    def text(self) -> str:
        return self._text

    @property
    def tokens(self) -> Tokens:
        return self._tokens

    @property
    def num_layers(self) -> int:
        return self._tracks[0].adapter.num_layers

    @property
    def lens(self) -> Lens:
        return self._tracks[0].lens

    @property
    def display_rows(self) -> list[int]:
        """Rows the stride selects: 0, s, 2s, … < L, and always the output row L."""
        return [*range(0, self.num_layers, self.layer_stride), self.num_layers]

    @property
    def rows(self) -> list[int]:
        """Rows with cells (at least display_rows; more after a stride change, until the next edit)."""
        return list(self._tracks[0].rows)

    def grid_arrays(self, track: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """float32 statistics [S, rows, T], int64 top ids and float32 top probabilities [rows, T, k]."""
        t = self._tracks[track]
        return t.stats, t.top_ids, t.top_probs

    def vocabulary(self) -> dict[str, Any]:
        """Every token id's text, encoded once for the view (payload.encode_vocabulary)."""
        if self._vocabulary is None:
            self._vocabulary = encode_vocabulary(vocabulary(self.tokenizer, self._tracks[0].adapter.vocab_size))
        return self._vocabulary

    # --- changes ------------------------------------------------------------------------------

    def set_text(self, text: str) -> Update:
        """Bring the grid up to date with `text`; returns the columns that changed."""
        tokens = tokenize(self.tokenizer, text, self.max_tokens)
        self._check_ids(tokens.ids)
        with self._consistent():
            old = self._tokens
            keep = 0 if self._fresh else _common_prefix(old, tokens)
            changed = old.ids != tokens.ids
            ids = tokens.ids
            targets = next_token_targets(torch.tensor(ids, dtype=torch.long))
            rows = self.display_rows
            patches: list[np.ndarray | None] = []
            for track in self._tracks:
                track.advance(ids, keep)
                if not self._fresh:
                    track.keep_rows(rows)
                patches.append(self._patch(track, keep, targets) if changed and keep > 0 else None)
                grid = track.grid(rows, keep, targets, self.top_k, self.chunk_bytes)
                self._splice(track, rows, keep, grid, patches[-1])
            self._text, self._tokens = text, tokens
            kind = "full" if keep == 0 else "columns"
            self._fresh = False
            return self._update(kind, rows, keep, patches)

    def set_lens(self, lens: Lens | None) -> Update:
        """Switch lens (tuned ↔ logit) without running the model: lens rows are recomputed."""
        fitted = [self._fit_lens(t.adapter, lens) for t in self._tracks]
        with self._consistent():
            for track, new in zip(self._tracks, fitted, strict=True):
                track.lens = new
            lens_rows = [r for r in self.rows if r < self.num_layers]
            self._compute_rows(lens_rows)
            return self._update("rows", lens_rows, 0)

    def set_layer_stride(self, stride: int) -> Update:
        """Show every `stride`-th layer (and the output row); only rows not yet computed cost work."""
        self.layer_stride = _check_stride(stride)
        with self._consistent():
            missing = [r for r in self.display_rows if r not in self.rows]
            self._compute_rows(missing)
            return self._update("rows", missing, 0)

    def full_update(self) -> Update:
        """The whole state, for a view that has nothing yet."""
        return self._update("full", self.rows, 0)

    # --- internals ----------------------------------------------------------------------------

    @contextmanager
    def _consistent(self) -> Iterator[None]:
        """On any exception inside, forget all cached state so the next set_text starts clean."""
        try:
            yield
        except BaseException:
            self.reset()
            raise

    def reset(self) -> None:
        """Forget every cached result; the next set_text recomputes from scratch (a "full" update)."""
        for track in self._tracks:
            track.reset()
        self._tokens = Tokens(ids=[], spans=np.empty((0, 2), np.uint32), total=0)
        self._fresh = True

    def _check_ids(self, ids: list[int]) -> None:
        """The tokenizer can gain tokens after the session checked it (add_tokens): refuse those the
        model has no embedding for, before any state changes."""
        beyond = [i for i in ids if i >= self._input_vocab]
        if beyond:
            token = self.tokenizer.convert_ids_to_tokens(beyond[0])
            raise ValueError(
                f"token id {beyond[0]} ({token!r}) is beyond the model's vocabulary of {self._input_vocab} ids; "
                "was it added to the tokenizer without resizing the model's embeddings?"
            )

    def _fit_lens(self, adapter: ModelAdapter, lens: Lens | None) -> Lens:
        if lens is None:
            return LogitLens()
        if isinstance(lens, TunedLens):
            return lens.fit(adapter)
        if not isinstance(lens, Lens):
            raise TypeError(f"lens must be a TunedLens, a LogitLens or None, got {type(lens).__name__}")
        return lens

    def _patch(self, track: _Track, keep: int, targets: torch.Tensor) -> np.ndarray:
        """Cross-entropy and rank of column keep - 1, whose next token changed."""
        rows = track.rows
        patch = np.full((2, len(rows)), np.nan, np.float32)
        target = int(targets[keep - 1])
        if target == NO_TARGET:
            return patch  # it became the last column: nothing to predict
        if keep == track.stats.shape[2] and all(r in track.last_logits for r in rows):
            logits = torch.stack([track.last_logits[r] for r in rows])
        else:
            grid = compute_grid(
                track.adapter,
                track.lens,
                ModelForward(track.hidden[:, keep - 1 : keep]),
                targets[keep - 1 : keep],
                rows,
                self.top_k,
                self.chunk_bytes,
                keep_last_logits=True,
            )
            assert grid.last_logits is not None
            logits = grid.last_logits
        target_t = torch.full((len(rows),), target, dtype=torch.long, device=logits.device)
        patch[0] = cross_entropy(log_probs(logits), target_t).cpu().numpy()
        patch[1] = rank(logits, target_t).cpu().numpy()
        return patch

    def _splice(self, track: _Track, rows: list[int], keep: int, grid: LensGrid, patch: np.ndarray | None) -> None:
        """Columns before `keep` stay (track.rows == rows by now), the patch fixes column keep - 1,
        the new grid's columns follow."""
        old_columns = track.stats.shape[2]
        if keep == 0:
            stats = np.empty((len(STATISTICS), len(rows), 0), np.float32)
            top_ids = np.empty((len(rows), 0, self.top_k), np.int64)
            top_probs = np.empty((len(rows), 0, self.top_k), np.float32)
        else:
            stats, top_ids, top_probs = track.stats[:, :, :keep], track.top_ids[:, :keep], track.top_probs[:, :keep]
        if patch is not None:
            stats = stats.copy()
            stats[[_CE, _RANK], :, keep - 1] = patch
        track.stats = np.concatenate([stats, grid.statistics], axis=2)
        track.top_ids = np.concatenate([top_ids, grid.top_ids], axis=1)
        track.top_probs = np.concatenate([top_probs, grid.top_probs], axis=1)
        track.rows = list(rows)
        if grid.last_logits is not None:
            track.last_logits = dict(zip(rows, grid.last_logits, strict=True))
        elif keep < old_columns:
            track.last_logits = {}  # the text shrank: the new last column's logits are not kept

    def _compute_rows(self, rows: list[int]) -> None:
        """(Re)compute `rows` for every column and merge them into each track's rows."""
        if not rows:
            return
        targets = next_token_targets(torch.tensor(self._tokens.ids, dtype=torch.long))
        for track in self._tracks:
            grid = track.grid(rows, 0, targets, self.top_k, self.chunk_bytes)
            merged = sorted(set(track.rows) | set(rows))
            pick = [(grid, rows.index(r)) if r in rows else (None, track.rows.index(r)) for r in merged]
            track.stats = np.stack([g.statistics[:, i] if g else track.stats[:, i] for g, i in pick], axis=1)
            track.top_ids = np.stack([g.top_ids[i] if g else track.top_ids[i] for g, i in pick])
            track.top_probs = np.stack([g.top_probs[i] if g else track.top_probs[i] for g, i in pick])
            track.rows = merged
            if grid.last_logits is not None:
                track.last_logits.update(zip(rows, grid.last_logits, strict=True))

    def _update(self, kind: str, rows: Sequence[int], start: int, patches: Sequence[Any] = ()) -> Update:
        rows = tuple(rows)
        tokens = self._tokens
        n = len(tokens.ids)
        patches = list(patches) or [None] * len(self._tracks)
        notice = " ".join(filter(None, [self._cut_notice(), *map(self._invalid_notice, self._tracks)]))
        adapter = self._tracks[0].adapter
        payload = encode_update(
            kind=kind,
            rows=rows,
            row_labels=row_labels(rows, self.num_layers),
            num_layers=self.num_layers,
            col_start=start,
            n_tokens=n,
            total_tokens=tokens.total,
            top_k=self.top_k,
            lens=self.lens.name,
            vocab_size=adapter.vocab_size,
            grids=[t.block(rows, start, p) for t, p in zip(self._tracks, patches, strict=True)],
            token_ids=tokens.ids[start:],
            token_spans=tokens.spans[start:],
            notice=notice,
            layer_stride=self.layer_stride,
        )
        return Update(kind, rows, start, n, payload)

    def _cut_notice(self) -> str:
        tokens = self._tokens
        n = len(tokens.ids)
        if tokens.total <= n:
            return ""
        about = "" if tokens.total_exact else "about "
        return (
            f"The text has {about}{tokens.total:,} tokens; showing the first {n} (max_tokens = {self.max_tokens}). "
            "Text after that is not analysed."
        )

    def _invalid_notice(self, track: _Track) -> str:
        rows = track.invalid_rows()
        if not rows:
            return ""
        labels = ", ".join(row_labels(rows, self.num_layers))
        where = f" of {track.name}" if len(self._tracks) > 1 else ""
        notice = (
            f"Non-finite logits (NaN or infinity) in row{'s' if len(rows) > 1 else ''} {labels}{where}: "
            "those cells are invalid (every statistic NaN); check the model's and the lens's weights and dtype."
        )
        if self.num_layers in rows:
            notice += " The forward KL compares every row with the output, so it is NaN wherever the output is."
        return notice


def _common_prefix(old: Tokens, new: Tokens) -> int:
    """Leading tokens that are the same token over the same text (ids and spans)."""
    n = min(len(old.ids), len(new.ids))
    same = (np.asarray(old.ids[:n]) == np.asarray(new.ids[:n])) & (old.spans[:n] == new.spans[:n]).all(axis=1)
    differs = np.flatnonzero(~same)
    return int(differs[0]) if len(differs) else n


def _check_model(model: Any) -> None:
    if not isinstance(model, nn.Module):
        hint = (
            f": load it first, e.g. AutoModelForCausalLM.from_pretrained({model!r})" if isinstance(model, str) else ""
        )
        raise TypeError(f"model must be a transformers causal LM (a torch.nn.Module), got {type(model).__name__}{hint}")


def _available_device(device: str | torch.device) -> torch.device:
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


def _check_vocabulary(tokenizer: Any, model: nn.Module, adapter: ModelAdapter) -> int:
    """Rows of the model's input embedding, which every id the tokenizer can give must index."""
    embeddings = model.get_input_embeddings()
    weight = getattr(embeddings, "weight", None)
    rows = int(weight.shape[0]) if isinstance(weight, torch.Tensor) else adapter.vocab_size
    if len(tokenizer) > rows:
        raise ValueError(
            f"the tokenizer has {len(tokenizer)} tokens but the model's vocabulary has {rows} "
            "(its input embedding's rows): use the tokenizer the model was trained with"
        )
    return rows


def _context_length(model: nn.Module) -> int | None:
    config = model.config.get_text_config()
    for attr in _CONTEXT_ATTRS:
        value = getattr(config, attr, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def _positive_int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")
    return int(value)


def _check_stride(stride: Any) -> int:
    return _positive_int(stride, "layer_stride")


def _check_top_k(top_k: Any, vocab: int) -> int:
    k = _positive_int(top_k, "top_k")
    if k > vocab:
        raise ValueError(f"top_k must be at most the vocabulary size {vocab}, got {k}")
    return k


def _check_max_tokens(max_tokens: Any, context: int | None) -> int:
    if max_tokens is None:
        return min(DEFAULT_MAX_TOKENS, context or DEFAULT_MAX_TOKENS)
    value = _positive_int(max_tokens, "max_tokens")
    if context is not None and value > context:
        raise ValueError(f"max_tokens = {value} exceeds the model's context of {context} tokens")
    return value
