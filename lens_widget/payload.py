"""The binary payload: the one contract between the kernel and the TypeScript view.

An update is a dict (traitlets sends its `bytes` leaves as binary frames, the rest as JSON):

    {
      "header": {...},                     # JSON, below
      "grids": [                           # one per model (two in A/B mode), same rows and columns
        {"stats": f16[S, R, C],            # statistics, in header["statistics"] order
         "top_ids": u16|u32[R, C, k],      # token ids, or indices into id_table (header grids[g].ids)
         "top_probs": f16[R, C, k],        # probabilities, most likely first
         "id_table": u32[n] | b"",         # the update's distinct token ids, when indices are used
         "patch": f16[2, R] | b""},        # cross-entropy and rank of column col_start - 1
      ],
      "token_ids": u32[C],                 # the input tokens of columns col_start … n_tokens - 1
      "token_spans": u32[C, 2],            # their [start, end) in the text, UTF-16 code units
    }

All arrays are little-endian, C order. R = len(header["rows"]), C = n_tokens - col_start.

Header: version, kind, rows (layer indices; num_layers = the model's output), row_labels, num_layers,
col_start, n_tokens, total_tokens (> n_tokens when the text was cut), top_k, statistics, units,
lens ("logit" | "tuned"), notice (a message for the user, or ""), layer_stride (the session's),
grids ([{"name", "ids"}]). The widget adds seq (its updates' order), base (the seq a delta applies
to; -1 for "full") and text_revision (the text edit it answers), so a view that missed an update
asks for a full one instead of drawing a wrong picture.

Kinds, applied to the receiver's state:
- "full": the whole state; col_start = 0.
- "columns": the text changed from column col_start on. Columns before it are kept, later ones are
  replaced by these; rows not listed are dropped (they are recomputed if shown again). When
  col_start > 0, "patch" gives the new cross-entropy and rank of column col_start - 1, whose next
  token just changed (NaN when it became the last column).
- "rows": rows were (re)computed for every column, e.g. a stride change or a lens switch; rows
  listed replace or join the state's rows, which stay sorted.

Precision: statistics and probabilities are float16 (relative error ≤ 2^-11 ≈ 0.05 %;
probabilities under 6e-8 round to 0; a rank above 65504 is sent as 65504, i.e. "at least").
Token ids are uint16 when the vocabulary fits, else indices into a per-update table of distinct ids.
Token strings are not repeated per update: the vocabulary is sent once (`encode_vocabulary`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .statistics import STATISTICS, UNITS

VERSION = 1
KINDS = ("full", "columns", "rows")
F16_MAX = 65504.0
_RANK = STATISTICS.index("rank")
_PATCHED = (STATISTICS.index("cross_entropy"), STATISTICS.index("rank"))


class PayloadError(ValueError):
    """A payload that does not follow the format, or does not fit the state it is applied to."""


@dataclass(frozen=True)
class GridBlock:
    """One model's cells for an update, float32/int64 as computed."""

    name: str
    stats: np.ndarray
    """[S, R, C]."""
    top_ids: np.ndarray
    """[R, C, k]."""
    top_probs: np.ndarray
    """[R, C, k]."""
    patch: np.ndarray | None = None
    """[2, R]: cross-entropy and rank of column col_start - 1."""


def _f16(array: np.ndarray) -> bytes:
    return np.ascontiguousarray(array, dtype="<f2").tobytes()


def _clamp_rank(values: np.ndarray, rank_index: int) -> np.ndarray:
    """float16 tops out at 65504: larger ranks are sent as 65504 ("at least"); NaN stays NaN."""
    out = values.astype(np.float32, copy=True)
    out[rank_index] = np.minimum(out[rank_index], F16_MAX)
    return out


def _encode_ids(top_ids: np.ndarray, vocab_size: int) -> tuple[str, bytes, bytes]:
    if vocab_size <= 65536:
        return "uint16", np.ascontiguousarray(top_ids, dtype="<u2").tobytes(), b""
    table, index = np.unique(top_ids, return_inverse=True)
    if len(table) <= 65536:
        return "table", index.reshape(top_ids.shape).astype("<u2").tobytes(), table.astype("<u4").tobytes()
    return "uint32", np.ascontiguousarray(top_ids, dtype="<u4").tobytes(), b""


def encode_update(
    *,
    kind: str,
    rows: Sequence[int],
    row_labels: Sequence[str],
    num_layers: int,
    col_start: int,
    n_tokens: int,
    total_tokens: int,
    top_k: int,
    lens: str,
    vocab_size: int,
    grids: Sequence[GridBlock],
    token_ids: Sequence[int] | np.ndarray,
    token_spans: np.ndarray,
    notice: str = "",
    layer_stride: int = 1,
) -> dict[str, Any]:
    """Pack computed cells into the wire format (pure: no session state)."""
    if kind not in KINDS:
        raise PayloadError(f"unknown update kind {kind!r}")
    header: dict[str, Any] = {
        "version": VERSION,
        "kind": kind,
        "rows": [int(r) for r in rows],
        "row_labels": list(row_labels),
        "num_layers": int(num_layers),
        "col_start": int(col_start),
        "n_tokens": int(n_tokens),
        "total_tokens": int(total_tokens),
        "top_k": int(top_k),
        "statistics": list(STATISTICS),
        "units": [UNITS[s] for s in STATISTICS],
        "lens": lens,
        "notice": notice,
        "layer_stride": int(layer_stride),
        "grids": [],
    }
    packed = []
    for grid in grids:
        ids_kind, ids, table = _encode_ids(grid.top_ids, vocab_size)
        header["grids"].append({"name": grid.name, "ids": ids_kind})
        packed.append(
            {
                "stats": _f16(_clamp_rank(grid.stats, _RANK)),
                "top_ids": ids,
                "top_probs": _f16(grid.top_probs),
                "id_table": table,
                "patch": b"" if grid.patch is None else _f16(_clamp_rank(grid.patch, 1)),
            }
        )
    return {
        "header": header,
        "grids": packed,
        "token_ids": np.asarray(token_ids, dtype="<u4").tobytes(),
        "token_spans": np.ascontiguousarray(token_spans, dtype="<u4").tobytes(),
    }


def payload_size(payload: dict[str, Any]) -> int:
    """Bytes on the wire: binary buffers plus the JSON header."""
    total = len(json.dumps(payload["header"], separators=(",", ":")).encode())
    total += len(payload["token_ids"]) + len(payload["token_spans"])
    for grid in payload["grids"]:
        total += sum(len(grid[key]) for key in ("stats", "top_ids", "top_probs", "id_table", "patch"))
    return total


def encode_vocabulary(strings: Sequence[str]) -> dict[str, Any]:
    """Every token's text, sent once: UTF-8 bytes and uint32 byte offsets [n + 1]."""
    encoded = [s.encode("utf-8", "replace") for s in strings]
    offsets = np.zeros(len(encoded) + 1, dtype="<u4")
    np.cumsum([len(b) for b in encoded], out=offsets[1:])
    return {"size": len(encoded), "offsets": offsets.tobytes(), "utf8": b"".join(encoded)}


def decode_vocabulary(vocabulary: dict[str, Any]) -> list[str]:
    offsets = np.frombuffer(vocabulary["offsets"], dtype="<u4")
    blob = bytes(vocabulary["utf8"])
    return [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(vocabulary["size"])]


# --- decoding (used by the tests and by Python consumers; js/payload.ts mirrors it) ---------------


@dataclass(frozen=True)
class GridArrays:
    stats: np.ndarray
    """float32 [S, R, T]."""
    top_ids: np.ndarray
    """int64 [R, T, k]."""
    top_probs: np.ndarray
    """float32 [R, T, k]."""


@dataclass(frozen=True)
class DecodedUpdate:
    header: dict[str, Any]
    grids: list[GridArrays]
    patches: list[np.ndarray | None]
    token_ids: np.ndarray
    token_spans: np.ndarray


@dataclass(frozen=True)
class ViewState:
    """What a receiver knows after applying updates: the picture to draw."""

    header: dict[str, Any]
    rows: list[int]
    n_tokens: int
    grids: list[GridArrays]
    token_ids: np.ndarray
    token_spans: np.ndarray


def _buffer(data: Any, dtype: str, shape: tuple[int, ...], what: str) -> np.ndarray:
    raw = bytes(data)
    itemsize = np.dtype(dtype).itemsize
    expected = int(np.prod(shape)) * itemsize
    if len(raw) != expected:
        raise PayloadError(f"{what}: {len(raw)} bytes, expected {expected} for shape {shape}")
    return np.frombuffer(raw, dtype=dtype).reshape(shape)


def decode_update(payload: dict[str, Any]) -> DecodedUpdate:
    """Unpack one update into float32/int64 arrays, checking every size against the header."""
    try:
        header = payload["header"]
        if header.get("version") != VERSION:
            raise PayloadError(f"payload version {header.get('version')!r}, expected {VERSION}")
        if header.get("kind") not in KINDS:
            raise PayloadError(f"unknown update kind {header.get('kind')!r}")
        S, R = len(header["statistics"]), len(header["rows"])
        C, k = header["n_tokens"] - header["col_start"], header["top_k"]
        if C < 0:
            raise PayloadError("col_start is after n_tokens")
        grids, patches = [], []
        for meta, grid in zip(header["grids"], payload["grids"], strict=True):
            stats = _buffer(grid["stats"], "<f2", (S, R, C), "stats").astype(np.float32)
            if meta["ids"] == "table":
                table = np.frombuffer(bytes(grid["id_table"]), dtype="<u4").astype(np.int64)
                index = _buffer(grid["top_ids"], "<u2", (R, C, k), "top_ids").astype(np.int64)
                if index.size and index.max() >= len(table):
                    raise PayloadError("top_ids index past the end of id_table")
                ids = table[index]
            else:
                ids = _buffer(grid["top_ids"], "<u2" if meta["ids"] == "uint16" else "<u4", (R, C, k), "top_ids")
                ids = ids.astype(np.int64)
            probs = _buffer(grid["top_probs"], "<f2", (R, C, k), "top_probs").astype(np.float32)
            patch = _buffer(grid["patch"], "<f2", (2, R), "patch").astype(np.float32) if grid["patch"] else None
            grids.append(GridArrays(stats, ids, probs))
            patches.append(patch)
        token_ids = _buffer(payload["token_ids"], "<u4", (C,), "token_ids").astype(np.int64)
        spans = _buffer(payload["token_spans"], "<u4", (C, 2), "token_spans").astype(np.int64)
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, PayloadError):
            raise
        raise PayloadError(f"malformed payload: {exc!r}") from exc
    return DecodedUpdate(header, grids, patches, token_ids, spans)


def apply_update(state: ViewState | None, payload: dict[str, Any]) -> ViewState:
    """The receiver's state after one update (pure: returns a new state)."""
    update = decode_update(payload)
    header = update.header
    kind, rows = header["kind"], list(header["rows"])
    if kind == "full":
        return ViewState(header, rows, header["n_tokens"], update.grids, update.token_ids, update.token_spans)
    if state is None:
        raise PayloadError(f"a {kind!r} update needs a state to apply to; send a full update first")
    if len(update.grids) != len(state.grids):
        raise PayloadError("the update and the state have different numbers of grids")
    if kind == "columns":
        return _apply_columns(state, update)
    return _apply_rows(state, update)


def _apply_columns(state: ViewState, update: DecodedUpdate) -> ViewState:
    header = update.header
    start, rows = header["col_start"], list(header["rows"])
    if start > state.n_tokens:
        raise PayloadError(f"columns update starts at {start}, past the state's {state.n_tokens} columns")
    missing = set(rows) - set(state.rows)
    if missing:
        raise PayloadError(f"columns update for rows {sorted(missing)} the state does not have")
    keep = [state.rows.index(r) for r in rows]
    grids = []
    for old, new, patch in zip(state.grids, update.grids, update.patches, strict=True):
        stats = old.stats[:, keep, :start].copy()
        if patch is not None and start > 0:
            stats[list(_PATCHED), :, start - 1] = patch
        grids.append(
            GridArrays(
                np.concatenate([stats, new.stats], axis=2),
                np.concatenate([old.top_ids[keep, :start], new.top_ids], axis=1),
                np.concatenate([old.top_probs[keep, :start], new.top_probs], axis=1),
            )
        )
    return ViewState(
        header,
        rows,
        header["n_tokens"],
        grids,
        np.concatenate([state.token_ids[:start], update.token_ids]),
        np.concatenate([state.token_spans[:start], update.token_spans]),
    )


def _apply_rows(state: ViewState, update: DecodedUpdate) -> ViewState:
    header = update.header
    if header["col_start"] != 0 or header["n_tokens"] != state.n_tokens:
        raise PayloadError("a rows update must cover every column of the state")
    rows = sorted(set(state.rows) | set(header["rows"]))
    grids = []
    for old, new in zip(state.grids, update.grids, strict=True):
        arrays = []
        pairs = ((old.stats, new.stats, 1), (old.top_ids, new.top_ids, 0), (old.top_probs, new.top_probs, 0))
        for old_a, new_a, axis in pairs:
            parts = []
            for r in rows:
                source, i = (new_a, header["rows"].index(r)) if r in header["rows"] else (old_a, state.rows.index(r))
                parts.append(np.take(source, [i], axis=axis))
            arrays.append(np.concatenate(parts, axis=axis))
        grids.append(GridArrays(*arrays))
    labels = {r: lab for r, lab in zip(state.rows, state.header["row_labels"], strict=True)}
    labels.update(zip(header["rows"], header["row_labels"], strict=True))
    merged = {**header, "row_labels": [labels[r] for r in rows], "rows": rows}
    return replace(state, header=merged, rows=rows, grids=grids)
