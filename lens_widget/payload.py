"""The binary payload: the one contract between the kernel and the TypeScript view.

An update is a dict (traitlets sends its `bytes` leaves as binary frames, the rest as JSON):

    {
      "header": {...},                     # JSON, below
      "grids": [                           # one per model (two in A/B mode), same rows and columns
        {"stats": f16[S, R, C],            # statistics, in header["statistics"] order
         "top_ids": u16|u32[R, C, k],      # token ids, or indices into id_table (header grids[g].ids)
         "top_probs": f16[R, C, k],        # probabilities, most likely first
         "id_table": u32[n] | b"",         # the update's distinct token ids, when indices are used
         "patch": f16[2, R] | b"",         # cross-entropy and rank of column col_start - 1
         "pins": f32[P, R, C] | b""},      # log-probability of each pinned item, header["pins"] order
      ],
      "diff": f16[D, R, C] | b"",          # A/B only: statistics of each pair of cells, header["diff"] order
      "token_ids": u32[C],                 # the input tokens of columns col_start … n_tokens - 1
      "token_spans": u32[C, 2],            # their [start, end) in the text, UTF-16 code units
    }

All arrays are little-endian, C order. R = len(header["rows"]); the grids and the diff carry the cells
of columns cell_start … cell_end - 1 (C = cell_end - cell_start), the token arrays the tokens of
columns col_start … n_tokens - 1 (n_tokens - col_start of them).

Header: version, kind, rows (row ids, rows.py: layer indices, num_layers = the model's output, then
num_layers + ℓ for the sub-layer row "ℓ.attn"), row_labels, num_layers,
col_start, cell_start and cell_end (optional: col_start and n_tokens by default), n_tokens,
total_tokens (> n_tokens when the text was cut), top_k, statistics, units,
lens ("logit" | "tuned"), notice (a message for the user, or ""), layer_stride (the session's),
grids ([{"name", "ids"}]), diff (the names of the diff statistics, DIFF_STATISTICS, with two grids;
[] otherwise), pins (the labels of the pinned items, distinct; P = their number). The widget adds
seq (its updates' order), base (the seq a delta applies to; -1 for "full"), so a view that missed an
update asks for a full one instead of drawing a wrong picture.

Kinds, applied to the receiver's state:
- "full": the whole state; col_start = 0.
- "columns": the text changed from column col_start on. Columns before it are kept, later ones are
  replaced by these; rows not listed are dropped (they are recomputed if shown again). When
  col_start > 0, "patch" gives the new cross-entropy and rank of column col_start - 1, whose next
  token just changed (NaN when it became the last column).
- "rows": rows were (re)computed for every column, e.g. a stride change or a lens switch; rows
  listed replace or join the state's rows, which stay in depth order (rows.depth: "ℓ.attn" between
  ℓ - 1 and ℓ). cell_start = 0, cell_end = n_tokens.
- "cells": cells computed later for columns cell_start … cell_end - 1 of every row of the state (rows
  lists the state's rows, in order), with the text unchanged: col_start = n_tokens (no tokens), and
  n_tokens is the state's. Its notice replaces the state's (the new cells may hold non-finite logits).

Pending columns (version 3): a "full" or "columns" update may carry the cells of only part of the
columns it changes, [cell_start, cell_end) within [col_start, n_tokens). The kernel sends the columns
on screen first, so a keystroke is answered before the whole suffix is through the lens; the others
are pending: the receiver knows their tokens but not their cells (statistics NaN, top ids 0, top
probabilities 0, and `pending` true), until "cells" updates fill them. A "columns" update keeps the
pending flags of the columns before col_start; a "rows" update leaves them as they are (the kernel
sends one only when nothing is pending).

Version 4 added pinned items: each cell's log-probability of each item (a token or a set of tokens,
whose probabilities add up), float32, spliced and merged with the cells. A delta must carry the pins
its state has, in the same order: pinning changes them, and comes as a "full" update.

Version 2 added the A/B diff. Differences B − A of the single-model statistics are not sent: a
receiver takes them from the two grids. Diff statistics have no patch (they do not depend on the next
token), and are spliced and merged exactly as the statistics are.

One update logic: the kinds are the edits of cells.py (splice_columns, merge_rows, pad_columns,
fill_columns). The decoder applies updates with them, and LensSession edits its own cells with the
same functions, so what the session holds and what a receiver rebuilds cannot drift apart. js/cells.ts
mirrors them. The engine describes each change as an update.Update, which `encode` turns into a payload.

Precision: statistics and probabilities are float16 (relative error ≤ 2^-11 ≈ 0.05 %;
probabilities under 6e-8 round to 0; a rank above 65504 is sent as 65504, i.e. "at least").
Token ids are uint16 when the vocabulary fits, else indices into a per-update table of distinct ids.
Token strings are not repeated per update: the vocabulary is sent once (`encode_vocabulary`).

Checking: `decode_update` refuses (PayloadError) whatever does not follow the above before sizing
anything from it: a header or payload that is not an object; integers that are not whole numbers
from 0 to 2**53 - 1 (bools are not; 3.0 is 3, as JSON cannot tell them apart); rows that are not
distinct row ids ≤ 2 × num_layers; row_labels and units not one string per row and statistic;
col_start > n_tokens, or ≠ 0 outside "columns"; total_tokens < n_tokens; top_k or layer_stride 0;
grids not [{"name": str, "ids": "uint16" | "table" | "uint32"}] one per grid buffer; buffers of
another size. `apply_update` also refuses a delta that does not fit its state (other grids,
statistics or top_k; a "columns" update past the state's columns or for rows it lacks; a "rows"
update for another column count). js/payload.ts refuses exactly the same payloads, with the same
messages: js/fixtures/payload_cases.json holds both decoders to it.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .cells import PATCHED, Cells, fill_columns, merge_rows, pad_columns, pending_after, splice_columns
from .constants import WIRE
from .rows import by_depth, max_row
from .statistics import DIFF_STATISTICS, STATISTICS, UNITS, statistic_info
from .update import Update

VERSION: int = WIRE["version"]
"""Payload version (constants.json, which js/payload.ts reads too)."""
KINDS: tuple[str, ...] = tuple(WIRE["kinds"])
F16_MAX: float = WIRE["f16_max"]
"""The largest float16: a rank above it is sent as F16_MAX ("at least")."""
_RANK = STATISTICS.index("rank")


class PayloadError(ValueError):
    """A payload that does not follow the format, or does not fit the state it is applied to."""


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
    grids: Sequence[Cells],
    names: Sequence[str],
    token_ids: Sequence[int] | np.ndarray,
    token_spans: np.ndarray,
    notice: str = "",
    layer_stride: int = 1,
    diff: np.ndarray | None = None,
    cell_start: int | None = None,
    cell_end: int | None = None,
    patches: Sequence[np.ndarray | None] = (),
    pins: Sequence[str] = (),
) -> dict[str, Any]:
    """Pack computed cells into the wire format (pure: no session state).

    The grids hold columns [cell_start, cell_end) (by default col_start … n_tokens - 1), the tokens
    columns col_start … n_tokens - 1.
    names: each grid's model name.
    patches: per grid, cross-entropy and rank [2, R] of column col_start - 1 (None: no patch).
    pins: the pinned items' labels; each grid's `pins` array holds their log-probabilities [P, R, C].
    diff: float32 [len(DIFF_STATISTICS), R, C] of an A/B update (exactly two grids), else None.
    """
    if kind not in KINDS:
        raise PayloadError(f"unknown update kind {kind!r}")
    cell_start = col_start if cell_start is None else cell_start
    cell_end = n_tokens if cell_end is None else cell_end
    if diff is not None and len(grids) != 2:
        raise PayloadError(f"diff statistics need exactly two grids, got {len(grids)}")
    header: dict[str, Any] = {
        "version": VERSION,
        "kind": kind,
        "rows": [int(r) for r in rows],
        "row_labels": list(row_labels),
        "num_layers": int(num_layers),
        "col_start": int(col_start),
        "cell_start": int(cell_start),
        "cell_end": int(cell_end),
        "n_tokens": int(n_tokens),
        "total_tokens": int(total_tokens),
        "top_k": int(top_k),
        "statistics": list(STATISTICS),
        "units": [UNITS[s] for s in STATISTICS],
        "lens": lens,
        "notice": notice,
        "layer_stride": int(layer_stride),
        "grids": [],
        "diff": [] if diff is None else list(DIFF_STATISTICS),
        "pins": list(pins),
    }
    packed = []
    if len(names) != len(grids):
        raise PayloadError(f"{len(grids)} grid(s) need as many names, got {len(names)}")
    for grid, name, patch in zip(grids, names, list(patches) or [None] * len(grids), strict=True):
        ids_kind, ids, table = _encode_ids(grid.top_ids, vocab_size)
        header["grids"].append({"name": name, "ids": ids_kind})
        packed.append(
            {
                "stats": _f16(_clamp_rank(grid.stats, _RANK)),
                "top_ids": ids,
                "top_probs": _f16(grid.top_probs),
                "id_table": table,
                "patch": b"" if patch is None else _f16(_clamp_rank(patch, 1)),
                "pins": _pins_bytes(grid.pins, len(pins), grid.stats.shape[1:]),
            }
        )
    return {
        "header": header,
        "grids": packed,
        "diff": b"" if diff is None else _f16(diff),
        "token_ids": np.asarray(token_ids, dtype="<u4").tobytes(),
        "token_spans": np.ascontiguousarray(token_spans, dtype="<u4").tobytes(),
    }


def _pins_bytes(values: np.ndarray | None, count: int, shape: tuple[int, ...]) -> bytes:
    """A grid's pinned-item log-probabilities [count, R, C] as float32 bytes (b"" for none)."""
    if count == 0:
        return b""
    if values is None or values.shape != (count, *shape):
        got = None if values is None else values.shape
        raise PayloadError(f"pins: expected log-probabilities of shape {(count, *shape)}, got {got}")
    return np.ascontiguousarray(values, dtype="<f4").tobytes()


def payload_of(update: Update) -> dict[str, Any]:
    """The payload that tells a view about one of the engine's updates."""
    return encode_update(
        kind=update.kind,
        rows=update.rows,
        row_labels=update.row_labels,
        num_layers=update.num_layers,
        col_start=update.col_start,
        n_tokens=update.n_tokens,
        total_tokens=update.total_tokens,
        top_k=update.top_k,
        lens=update.lens,
        vocab_size=update.vocab_size,
        grids=update.cells(),
        names=update.names,
        patches=update.patches,
        token_ids=update.token_ids[update.col_start :],
        token_spans=update.token_spans[update.col_start :],
        notice=update.notice,
        layer_stride=update.layer_stride,
        diff=update.diff_cells(),
        cell_start=update.cell_start,
        cell_end=update.cell_end,
        pins=update.pins,
    )


def payload_size(payload: dict[str, Any]) -> int:
    """Bytes on the wire: binary buffers plus the JSON header."""
    total = len(json.dumps(payload["header"], separators=(",", ":")).encode())
    total += len(payload["token_ids"]) + len(payload["token_spans"]) + len(payload.get("diff", b""))
    for grid in payload["grids"]:
        total += sum(len(grid[key]) for key in BUFFERS)
    return total


def encode_vocabulary(strings: Sequence[str]) -> dict[str, Any]:
    """What a view needs once: every token's text (UTF-8 bytes and uint32 byte offsets [n + 1]) and
    every statistic's label, units, direction and scale (statistics.STATISTIC_INFO)."""
    encoded = [s.encode("utf-8", "replace") for s in strings]
    offsets = np.zeros(len(encoded) + 1, dtype="<u4")
    np.cumsum([len(b) for b in encoded], out=offsets[1:])
    return {
        "size": len(encoded),
        "offsets": offsets.tobytes(),
        "utf8": b"".join(encoded),
        "statistics": statistic_info(),
    }


def decode_vocabulary(vocabulary: dict[str, Any]) -> list[str]:
    offsets = np.frombuffer(vocabulary["offsets"], dtype="<u4")
    blob = bytes(vocabulary["utf8"])
    return [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(vocabulary["size"])]


BUFFER_KEY = "$buffer"
BASE64_KEY = "$base64"
_BASE64 = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")
"""Canonical padded base64, the one form both decoders take (atob and b64decode differ on others)."""
"""Marks where a binary buffer was taken out of a payload sent as a message: {"$buffer": index}."""


def to_message(payload: dict[str, Any], text: bool = False) -> tuple[dict[str, Any], list[bytes]]:
    """(JSON content, buffers): a payload as a custom message, whose buffers travel beside the JSON.

    A trait's bytes leaves are split out by ipywidgets itself; a message's must be listed by hand.
    Each bytes leaf becomes {"$buffer": i} and buffers[i] (js/payload.ts fromMessage undoes it).
    text=True: each becomes {"$base64": "…"} in the JSON instead, for a host that carries binary
    buffers as JSON arrays of numbers (VS Code: about 3.3 characters a byte, base64 1.33).
    """
    buffers: list[bytes] = []

    def strip(value: Any) -> Any:
        if isinstance(value, (bytes, bytearray, memoryview)):
            if text:
                return {BASE64_KEY: base64.b64encode(value).decode("ascii")}
            buffers.append(bytes(value))
            return {BUFFER_KEY: len(buffers) - 1}
        if isinstance(value, dict):
            return {key: strip(item) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [strip(item) for item in value]
        return value

    return strip(payload), buffers


def from_message(content: Any, buffers: Sequence[Any]) -> Any:
    """The payload `to_message` split: each {"$buffer": i} becomes buffers[i] (PayloadError if absent),
    each {"$base64": s} the bytes it encodes (PayloadError if it is not base64)."""
    if isinstance(content, dict):
        if set(content) == {BUFFER_KEY}:
            index = content[BUFFER_KEY]
            if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(buffers):
                raise PayloadError(f"the message names buffer {_show(index)} of {len(buffers)}")
            return bytes(buffers[index])
        if set(content) == {BASE64_KEY}:
            encoded = content[BASE64_KEY]
            if not isinstance(encoded, str) or not _BASE64.fullmatch(encoded):
                raise PayloadError(f"the message's base64 buffer {_show(encoded)} is not base64")
            return base64.b64decode(encoded)
        return {key: from_message(item, buffers) for key, item in content.items()}
    if isinstance(content, list):
        return [from_message(item, buffers) for item in content]
    return content


# --- decoding (used by the tests and by Python consumers; js/payload.ts mirrors it) ---------------


@dataclass(frozen=True)
class DecodedUpdate:
    header: dict[str, Any]
    grids: list[Cells]
    patches: list[np.ndarray | None]
    token_ids: np.ndarray
    token_spans: np.ndarray
    diff: np.ndarray | None = None
    """float32 [D, R, C] of an A/B update."""


@dataclass(frozen=True)
class ViewState:
    """What a receiver knows after applying updates: the picture to draw."""

    header: dict[str, Any]
    rows: list[int]
    n_tokens: int
    grids: list[Cells]
    token_ids: np.ndarray
    token_spans: np.ndarray
    diff: np.ndarray | None = None
    """float32 [D, R, T]: the A/B diff statistics, in header["diff"] order (None with one grid)."""
    pending: np.ndarray | None = None
    """bool [T]: columns whose cells are still to come ("cells" updates); None when none are."""


def _buffer(data: Any, dtype: str, shape: tuple[int, ...], what: str) -> np.ndarray:
    raw = bytes(data)
    itemsize = np.dtype(dtype).itemsize
    expected = int(np.prod(shape)) * itemsize
    if len(raw) != expected:
        raise PayloadError(f"{what}: {len(raw)} bytes, expected {expected} for shape {shape}")
    return np.frombuffer(raw, dtype=dtype).reshape(shape)


# --- checking a payload before anything is sized or indexed from it -----------------------------
# js/payload.ts makes the same checks, in the same order, with the same messages (up to how a value is
# shown), so that the two decoders refuse exactly the same payloads: js/fixtures/payload_cases.json
# holds both to it (tests/test_payload.py, js/payload.test.ts).

MAX_INTEGER = 2**53 - 1
"""The largest integer a JavaScript number holds exactly (Number.MAX_SAFE_INTEGER): the view could
not read a larger one as sent, so neither decoder accepts it."""
ID_KINDS: tuple[str, ...] = tuple(WIRE["id_kinds"])
BUFFERS = ("stats", "top_ids", "top_probs", "id_table", "patch", "pins")
_MISSING = object()


def _show(value: Any) -> str:
    """A value as an error message shows it: as JSON, which is also how the TypeScript side shows it."""
    if value is _MISSING:
        return "nothing"
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _whole(value: Any) -> int | None:
    """`value` as an int when it is a whole number in [0, MAX_INTEGER], else None.

    JSON has one number type, so the view cannot tell 3 from 3.0: a whole float counts (and becomes an
    int, since it sizes and indexes arrays). A bool does not, although Python says True == 1.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, np.integer)):
        number = int(value)
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    else:
        return None
    return number if 0 <= number <= MAX_INTEGER else None


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _is_bytes(value: Any) -> bool:
    """Binary leaves: what traitlets delivers, never an int (bytes(5) would be five zero bytes)."""
    return isinstance(value, (bytes, bytearray, memoryview))


def _check_header(header: Any) -> dict[str, Any]:
    """The header with every field checked, as a copy whose whole numbers are ints.

    Every size, slice and index the decoder and `apply_update` compute comes from here, so a field that
    is not what the format says (a row 1.5, a negative col_start) is refused before it can build a state
    whose n_tokens or rows disagree with its arrays.
    """
    if not isinstance(header, dict):
        raise PayloadError(f"header is not an object: {_show(header)}")
    out = dict(header)
    version = header.get("version", _MISSING)
    if _whole(version) != VERSION:
        raise PayloadError(f"payload version {_show(version)}, expected {VERSION}")
    out["version"] = VERSION
    kind = header.get("kind", _MISSING)
    if not isinstance(kind, str) or kind not in KINDS:
        raise PayloadError(f"unknown update kind {_show(kind)}")
    for name, least in (
        ("num_layers", 0),
        ("col_start", 0),
        ("n_tokens", 0),
        ("total_tokens", 0),
        ("top_k", 1),
        ("layer_stride", 1),
    ):
        value = header.get(name, _MISSING)
        number = _whole(value)
        if number is None or number < least:
            adjective = "positive" if least else "non-negative"
            raise PayloadError(f"header.{name} must be a {adjective} integer, got {_show(value)}")
        out[name] = number
    if out["col_start"] > out["n_tokens"]:
        raise PayloadError(f"header.col_start is after n_tokens ({out['col_start']} > {out['n_tokens']})")
    if kind == "cells":
        if out["col_start"] != out["n_tokens"]:
            raise PayloadError(f'header.col_start must be n_tokens in a "cells" update, got {out["col_start"]}')
    elif kind != "columns" and out["col_start"] != 0:
        raise PayloadError(f'header.col_start must be 0 in a "{kind}" update, got {out["col_start"]}')
    for name, default in (("cell_start", out["col_start"]), ("cell_end", out["n_tokens"])):
        value = header.get(name, _MISSING)
        number = default if value is _MISSING else _whole(value)
        if number is None:
            raise PayloadError(f"header.{name} must be a non-negative integer, got {_show(value)}")
        out[name] = number
    first = 0 if kind == "cells" else out["col_start"]
    if not first <= out["cell_start"] <= out["cell_end"] <= out["n_tokens"]:
        raise PayloadError(
            f"header.cell_start … cell_end ({out['cell_start']} … {out['cell_end']}) must lie within "
            f"{first} … n_tokens ({out['n_tokens']})"
        )
    if kind == "rows" and (out["cell_start"], out["cell_end"]) != (0, out["n_tokens"]):
        raise PayloadError('a "rows" update carries every column: header.cell_start must be 0 and cell_end n_tokens')
    if out["total_tokens"] < out["n_tokens"]:
        raise PayloadError(f"header.total_tokens is less than n_tokens ({out['total_tokens']} < {out['n_tokens']})")
    rows = header.get("rows", _MISSING)
    if not isinstance(rows, list):
        raise PayloadError(f"header.rows must be a list of layer indices, got {_show(rows)}")
    out["rows"] = []
    for i, value in enumerate(rows):
        row = _whole(value)
        if row is None or row > max_row(out["num_layers"], sublayers=True):
            most, got = 2 * out["num_layers"], _show(value)
            raise PayloadError(f"header.rows[{i}] must be a row id from 0 to 2 × num_layers ({most}), got {got}")
        if row in out["rows"]:
            raise PayloadError(f"header.rows lists layer {row} twice")
        out["rows"].append(row)
    labels = header.get("row_labels", _MISSING)
    if not _strings(labels) or len(labels) != len(rows):
        raise PayloadError(f"header.row_labels must be a list of {len(rows)} strings, one per row")
    statistics = header.get("statistics", _MISSING)
    if not _strings(statistics):
        raise PayloadError("header.statistics must be a list of strings")
    units = header.get("units", _MISSING)
    if not _strings(units) or len(units) != len(statistics):
        raise PayloadError(f"header.units must be a list of {len(statistics)} strings, one per statistic")
    for name in ("lens", "notice"):
        if not isinstance(header.get(name), str):
            raise PayloadError(f"header.{name} must be a string, got {_show(header.get(name, _MISSING))}")
    grids = header.get("grids", _MISSING)
    if not isinstance(grids, list):
        raise PayloadError(f"header.grids must be a list, got {_show(grids)}")
    for g, meta in enumerate(grids):
        if not (isinstance(meta, dict) and isinstance(meta.get("name"), str) and meta.get("ids") in ID_KINDS):
            raise PayloadError(f'header.grids[{g}] must be {{"name": string, "ids": "uint16" | "table" | "uint32"}}')
    diff = header.get("diff", _MISSING)
    if not _strings(diff):
        raise PayloadError(f"header.diff must be a list of strings, got {_show(diff)}")
    if diff and len(grids) != 2:
        raise PayloadError(f"header.diff needs exactly two grids, got {len(grids)}")
    pins = header.get("pins", _MISSING)
    if not _strings(pins) or len(set(pins)) != len(pins):
        raise PayloadError(f"header.pins must be a list of distinct strings, got {_show(pins)}")
    out |= {"row_labels": list(labels), "statistics": list(statistics), "units": list(units), "diff": list(diff)}
    out["pins"] = list(pins)
    out["grids"] = [dict(meta) for meta in grids]
    return out


def decode_update(payload: dict[str, Any]) -> DecodedUpdate:
    """Unpack one update into float32/int64 arrays, checking the header and every size against it.

    Anything that does not follow the format raises PayloadError (never KeyError or TypeError), so a
    receiver can tell a bad payload from its own bugs and ask for a full update instead.
    """
    if not isinstance(payload, dict):
        raise PayloadError(f"payload is not an object: {_show(payload)}")
    header = _check_header(payload.get("header", _MISSING))
    S, R = len(header["statistics"]), len(header["rows"])
    C, k = header["cell_end"] - header["cell_start"], header["top_k"]
    n_new = header["n_tokens"] - header["col_start"]
    buffers = payload.get("grids", _MISSING)
    if not isinstance(buffers, list) or len(buffers) != len(header["grids"]):
        raise PayloadError(f"grids must be a list of {len(header['grids'])} grid(s), one per header.grids entry")
    grids, patches = [], []
    for g, (meta, grid) in enumerate(zip(header["grids"], buffers, strict=True)):
        if not isinstance(grid, dict):
            raise PayloadError(f"grids[{g}] must be an object of binary buffers, got {_show(grid)}")
        for name in BUFFERS:
            if not _is_bytes(grid.get(name)):
                raise PayloadError(f"grids[{g}].{name} must be a binary buffer, got {_show(grid.get(name, _MISSING))}")
        stats = _buffer(grid["stats"], "<f2", (S, R, C), f"grids[{g}].stats").astype(np.float32)
        table_bytes = len(bytes(grid["id_table"]))
        if meta["ids"] == "table":
            if table_bytes % 4:
                raise PayloadError(f"grids[{g}].id_table: {table_bytes} bytes, not a whole number of uint32")
            table = np.frombuffer(bytes(grid["id_table"]), dtype="<u4").astype(np.int64)
            index = _buffer(grid["top_ids"], "<u2", (R, C, k), f"grids[{g}].top_ids").astype(np.int64)
            if index.size and index.max() >= len(table):
                raise PayloadError(f"grids[{g}].top_ids has an index past the end of id_table")
            ids = table[index]
        else:
            if table_bytes:
                raise PayloadError(f'grids[{g}].id_table must be empty unless header.grids[{g}].ids is "table"')
            dtype = "<u2" if meta["ids"] == "uint16" else "<u4"
            ids = _buffer(grid["top_ids"], dtype, (R, C, k), f"grids[{g}].top_ids").astype(np.int64)
        probs = _buffer(grid["top_probs"], "<f2", (R, C, k), f"grids[{g}].top_probs").astype(np.float32)
        patch = None
        if len(bytes(grid["patch"])):
            patch = _buffer(grid["patch"], "<f2", (2, R), f"grids[{g}].patch").astype(np.float32)
            if not set(PATCHED) <= set(header["statistics"]):
                raise PayloadError(f"grids[{g}].patch needs header.statistics to name cross_entropy and rank")
        P = len(header["pins"])
        pins = _buffer(grid["pins"], "<f4", (P, R, C), f"grids[{g}].pins").astype(np.float32)
        grids.append(Cells(stats, ids, probs, pins))
        patches.append(patch)
    for name in ("token_ids", "token_spans"):
        if not _is_bytes(payload.get(name)):
            raise PayloadError(f"{name} must be a binary buffer, got {_show(payload.get(name, _MISSING))}")
    if not _is_bytes(payload.get("diff")):
        raise PayloadError(f"diff must be a binary buffer, got {_show(payload.get('diff', _MISSING))}")
    D = len(header["diff"])
    diff = _buffer(payload["diff"], "<f2", (D, R, C), "diff").astype(np.float32) if D else None
    if not D and len(bytes(payload["diff"])):
        raise PayloadError("diff must be empty when header.diff is []")
    token_ids = _buffer(payload["token_ids"], "<u4", (n_new,), "token_ids").astype(np.int64)
    spans = _buffer(payload["token_spans"], "<u4", (n_new, 2), "token_spans").astype(np.int64)
    return DecodedUpdate(header, grids, patches, token_ids, spans, diff)


def apply_update(state: ViewState | None, payload: dict[str, Any]) -> ViewState:
    """The receiver's state after one update (pure: returns a new state).

    A delta must fit the state it is applied to (same grids, statistics and top_k; columns that exist;
    rows the state has), else PayloadError: a state whose arrays disagree with its header would be
    drawn wrong, where a refusal makes the widget ask for a full update.
    """
    update = decode_update(payload)
    header = update.header
    kind = header["kind"]
    if kind == "full":
        n, first, end = header["n_tokens"], header["cell_start"], header["cell_end"]
        return ViewState(
            header,
            list(header["rows"]),
            n,
            [pad_columns(grid, n, first) for grid in update.grids],
            update.token_ids,
            update.token_spans,
            None if update.diff is None else pad_columns(Cells.stats_only(update.diff), n, first).stats,
            pending_after(None, 0, n, first, end),
        )
    if state is None:
        raise PayloadError(f'a "{kind}" update needs a state to apply to; send a full update first')
    if len(update.grids) != len(state.grids):
        raise PayloadError(f"header.grids lists {len(update.grids)} grid(s), the state has {len(state.grids)}")
    if header["statistics"] != state.header["statistics"]:
        raise PayloadError("header.statistics differ from the state's")
    if header["top_k"] != state.header["top_k"]:
        raise PayloadError(f"header.top_k is {header['top_k']}, the state's is {state.header['top_k']}")
    if header["diff"] != state.header["diff"]:
        raise PayloadError("header.diff differs from the state's")
    if header["pins"] != state.header["pins"]:
        raise PayloadError("header.pins differ from the state's: a change of pins comes as a full update")
    if kind == "columns":
        return _apply_columns(state, update)
    if kind == "cells":
        return _apply_cells(state, update)
    return _apply_rows(state, update)


def _apply_columns(state: ViewState, update: DecodedUpdate) -> ViewState:
    header = update.header
    start, rows = header["col_start"], list(header["rows"])
    if start > state.n_tokens:
        raise PayloadError(f"header.col_start ({start}) is past the state's {state.n_tokens} columns")
    missing = [r for r in rows if r not in state.rows]
    if missing:
        raise PayloadError(f"header.rows {missing} are not among the state's rows, which a columns update keeps")
    patched = [header["statistics"].index(name) for name in PATCHED if name in header["statistics"]]
    n, first, end = header["n_tokens"], header["cell_start"], header["cell_end"]
    grids = [
        splice_columns(old, state.rows, rows, start, pad_columns(new, n - start, first - start), patch, patched)
        for old, new, patch in zip(state.grids, update.grids, update.patches, strict=True)
    ]  # a patch implies both patched statistics (checked)
    diff = None
    if state.diff is not None and update.diff is not None:
        new_diff = pad_columns(Cells.stats_only(update.diff), n - start, first - start)
        diff = splice_columns(Cells.stats_only(state.diff), state.rows, rows, start, new_diff).stats
    return ViewState(
        header,
        rows,
        header["n_tokens"],
        grids,
        np.concatenate([state.token_ids[:start], update.token_ids]),
        np.concatenate([state.token_spans[:start], update.token_spans]),
        diff,
        pending_after(state.pending, start, n, first, end),
    )


def _apply_cells(state: ViewState, update: DecodedUpdate) -> ViewState:
    header = update.header
    if header["n_tokens"] != state.n_tokens:
        raise PayloadError(
            f"header.n_tokens ({header['n_tokens']}) is not the state's {state.n_tokens}: cells fill its columns"
        )
    if header["rows"] != state.rows:
        raise PayloadError(
            f"header.rows {header['rows']} are not the state's rows {state.rows}, which a cells update fills"
        )
    first, end = header["cell_start"], header["cell_end"]
    grids = [fill_columns(old, first, new) for old, new in zip(state.grids, update.grids, strict=True)]
    diff = None
    if state.diff is not None and update.diff is not None:
        diff = fill_columns(Cells.stats_only(state.diff), first, Cells.stats_only(update.diff)).stats
    pending = None
    if state.pending is not None:
        pending = state.pending.copy()
        pending[first:end] = False
        pending = pending if pending.any() else None
    # The notice is about the whole grid, and the filled cells may change it (non-finite logits).
    return replace(state, header={**state.header, "notice": header["notice"]}, grids=grids, diff=diff, pending=pending)


def _apply_rows(state: ViewState, update: DecodedUpdate) -> ViewState:
    header = update.header
    if header["n_tokens"] != state.n_tokens:  # col_start is 0: the header check saw to it
        raise PayloadError(
            f"header.n_tokens ({header['n_tokens']}) is not the state's {state.n_tokens}: a rows update covers them all"
        )
    layers = state.header["num_layers"]  # the state's rows are ordered by its model's depth
    merged = [
        merge_rows(old, state.rows, new, header["rows"], num_layers=layers)
        for old, new in zip(state.grids, update.grids, strict=True)
    ]
    rows = by_depth([*state.rows, *header["rows"]], layers)
    diff = None
    if state.diff is not None and update.diff is not None:
        old_diff, new_diff = Cells.stats_only(state.diff), Cells.stats_only(update.diff)
        diff = merge_rows(old_diff, state.rows, new_diff, header["rows"], num_layers=layers)[0].stats
    labels = {r: lab for r, lab in zip(state.rows, state.header["row_labels"], strict=True)}
    labels.update(zip(header["rows"], header["row_labels"], strict=True))
    merged_header = {**header, "row_labels": [labels[r] for r in rows], "rows": rows}
    return replace(state, header=merged_header, rows=rows, grids=[grid for grid, _ in merged], diff=diff)
