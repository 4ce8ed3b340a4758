"""Export: the numbers behind one picture of the widget, and the picture itself as a PNG.

A researcher who found something in the widget wants it in a paper or a DataFrame. `grid_data`
takes what the view would draw for a statistic, mode, layer stride and token range from the
session's own arrays (nothing is recomputed, except rows a stride needs that were never computed);
`render_png` draws it as the view does: the same rows (output on top), colour ramps, reversal of
lower-is-better statistics, B − A and pair statistics of the A/B diff, hatched invalid cells and
visible whitespace in tokens (js/picture.ts, js/heatmap.ts, js/colors.ts, js/tokens.ts), on the same
colour scale (`scale_for`: fixed per statistic, or the picture's own range), and below it the
trajectory panel of one column (its pinned items, or its top-1 tokens, across the rows).

Values are the session's float32 numbers; the view draws them after a float16 trip over the wire,
so an exported number can differ from what its tooltip shows in the fourth significant digit.

matplotlib (for render_png) and pandas (for GridData.to_frame) are optional: each is imported when
first needed, so the engine keeps working without them.
"""

from __future__ import annotations

import math
import os
import unicodedata
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from .checks import check_stride
from .column import Line
from .constants import PRESENTATION
from .grid import stride_rows
from .rows import TRANSLATOR_NOTE, is_sublayer
from .statistics import DIFF_STATISTICS, STATISTIC_INFO, STATISTICS

if TYPE_CHECKING:
    import pandas

    from .remote_session import RemoteSession
    from .session import LensSession

DIFF_CHOICES: tuple[str, ...] = (*DIFF_STATISTICS, *(f"delta:{name}" for name in STATISTICS))
"""What the diff mode can show, as the widget's `diff_statistic` trait: a pair statistic, or
"delta:<statistic>", B − A of a single-model statistic. (Defined here too so that exporting does not
import the Jupyter widget stack.)"""

MODES: tuple[str, ...] = ("a", "b", "diff")
SCALE_MODES: tuple[str, ...] = tuple(PRESENTATION["scale_modes"])
"""The widget's `color_scale`: "fixed" (each statistic's own scale, the same in every picture) or
"view" (the range of the values shown)."""
SCALE_NOTES: dict[bool, str] = {
    True: f" · {PRESENTATION['scale_modes']['fixed']}",
    False: f" · {PRESENTATION['scale_modes']['view']}",
}
"""What the legend's title ends with, by whether its scale is fixed (the view writes the same)."""
PANEL_Y: tuple[str, ...] = ("probability", "logprob", "rank")
"""What the trajectory panel's y axis shows: p, log p (nats) or the rank of the item's best token."""

_LAYOUT = PRESENTATION["layout"]
# The view's heatmap in CSS pixels (js/heatmap.ts makeLayout), and the PNG's own margins around it.
CELL_WIDTH, CELL_HEIGHT = _LAYOUT["cell_width"], _LAYOUT["cell_height"]
LABEL_WIDTH = _LAYOUT["label_width_max"]
"""The view's widest row-label column: fixed here, so the image size depends on the grid only."""
AXIS_HEIGHT = _LAYOUT["axis_height"]
"""The band of input tokens under the columns."""
LEGEND_HEIGHT = 52
"""The band above the grid: the legend's title, its colour bar and the bar's tick labels."""
MARGIN = 8
MIN_WIDTH = 320
"""Room for the legend's title and colour bar, however few columns there are."""
_MAX_PIXELS = 2**16
"""Agg draws images smaller than this in each direction."""
# The trajectory panel under the heatmap, in CSS pixels: a title band, the plot, its x tick labels,
# then a legend of PANEL_KEY_WIDTH-wide entries, as many to a line as the width takes.
PANEL_TITLE = 32
PANEL_PLOT = 160
PANEL_AXIS = 30
PANEL_KEY_HEIGHT = 16
PANEL_KEY_WIDTH = 170
LINE_COLORS: tuple[str, ...] = tuple(PRESENTATION["lines"])
"""One colour per line (item) of the panel, in turn (matplotlib's tab10: told apart on either background)."""

# Colour ramps, palettes and token marks: the view's (constants.json), interpolated the same way.
RAMP: tuple[tuple[int, int, int], ...] = tuple(map(tuple, PRESENTATION["ramps"]["sequential"]))
"""Sequential, dark blue → yellow (viridis-like): every statistic of one model, and the divergences."""
DIVERGING: tuple[tuple[int, int, int], ...] = tuple(map(tuple, PRESENTATION["ramps"]["diverging"]))
"""Blue → near-white → red: differences B − A, centred at 0."""
_PALETTES: dict[bool, dict[str, str]] = {
    False: PRESENTATION["palettes"]["light"],
    True: PRESENTATION["palettes"]["dark"],
}
_INK = PRESENTATION["ink"]
_VISIBLE: dict[str, str] = PRESENTATION["visible_tokens"]


def visible_token(text: str) -> str:
    """A token as the view labels it (js/tokens.ts): whitespace as visible marks, other control
    characters as \\xNN, the empty string as ∅, so that no token reads as blank or breaks a line."""
    if text == "":
        return "∅"
    out = []
    for ch in text:
        code = ord(ch)
        out.append(_VISIBLE.get(ch) or (f"\\x{code:02x}" if code < 0x20 or code == 0x7F else ch))
    return "".join(out)


@dataclass(frozen=True)
class Trajectory:
    """One column across the rows, as the trajectory panel draws it: LensSession.column's lines (the
    pinned items, or with none pinned the tokens that are top-1 at some row), each through every lens
    each model has been read through."""

    column: int
    """The token position."""
    token: str
    """The input token there (raw)."""
    rows: list[int]
    """Layer indices (model A's; num_layers is the output), bottom-up as a layer axis reads."""
    row_labels: list[str]
    lines: tuple[Line, ...]
    curves: tuple[str, ...]
    """"<model>/<lens>" keys of every line's values (column.ColumnDetail.curves)."""
    current: dict[str, str]
    """Each model ("a", "b") → the curve of the lens it is read through now: drawn solid (A) or
    dashed (B); the other lenses' curves dotted and lighter."""
    names: dict[str, str]
    """Each model → its display name."""

    @property
    def keys(self) -> int:
        """Entries in the panel's legend: one per line and curve."""
        return len(self.lines) * len(self.curves)


@dataclass(frozen=True, eq=False)
class GridData:
    """The numbers behind one picture of the widget: what a researcher puts in a paper or a DataFrame.

    Rows are top-down as the view draws them (the output row first), so values[i, j] is the cell
    drawn in the i-th row from the top and j-th column from the left. Token strings are raw (as the
    tokenizer decodes them); `visible_token` gives the view's rendering. eq=False: arrays do not
    compare to a single truth value.
    """

    statistic: str
    """A STATISTICS name or "pin:<label>" (modes "a", "b"); a DIFF_STATISTICS name, "delta:<statistic>"
    or "delta:pin:<label>" (mode "diff")."""
    label: str
    """The legend's title: the statistic, its units, and whose it is ("Entropy (nats) · base")."""
    units: str
    mode: str
    """"a", "b" or "diff"."""
    models: tuple[str, ...]
    """Display names of the models whose top-k are included: the one shown, or A and B for the diff."""
    rows: list[int]
    """Row ids (model A's, rows.py: layer indices, num_layers the output row, num_layers + ℓ the row
    "ℓ.attn"), top-down: the output first, each ℓ.attn under its layer ℓ."""
    row_labels: list[str]
    columns: list[int]
    """Token positions shown, left to right."""
    tokens: list[str]
    """The input token of each shown column."""
    values: np.ndarray
    """float32 [rows, columns]: the statistic; NaN where missing (no next token) or invalid."""
    top_ids: np.ndarray
    """int64 [models, rows, columns, k], most likely first (meaningless in an invalid cell)."""
    top_tokens: np.ndarray
    """object (str), same shape as top_ids."""
    top_probs: np.ndarray
    """float32, same shape as top_ids; NaN in an invalid cell."""
    pins: dict[str, np.ndarray]
    """Each pinned item's label → float32 [models, rows, columns]: its probability in the cells shown,
    per model as in top_ids; NaN in an invalid cell."""
    color_scale: str
    """"fixed" or "view": the colour scale the picture is drawn on (`scale_for`)."""
    vocab_size: int
    """V, the number of token ids: the top of the fixed scales of ranks (V) and of nats (ln V)."""
    rows_note: str = ""
    """How the tuned lens read the "ℓ.attn" rows, which have no translators of their own (rows.py
    TRANSLATOR_NOTE), when there are such rows and a tuned lens; else empty."""
    trajectory: Trajectory | None = None
    """The panel render_png draws under the heatmap; None: no panel."""

    @property
    def invalid(self) -> np.ndarray:
        """bool [rows, columns]: a model included has non-finite logits there (the view hatches these).
        Told apart from a merely missing value (the last column's cross-entropy) by the top-k
        probabilities, which only an invalid cell has as NaN."""
        return np.isnan(self.top_probs[..., 0]).any(axis=0)

    @property
    def top1_differs(self) -> np.ndarray:
        """bool [rows, columns]: the diff mode's marked cells, whose two top-1 tokens differ (an invalid
        cell has no top-1, so it is never marked). All False outside the diff mode."""
        if self.mode != "diff":
            return np.zeros(self.values.shape, bool)
        return (self.top_ids[0, ..., 0] != self.top_ids[1, ..., 0]) & ~self.invalid

    def cell_text(self, row: int, column: int) -> str:
        """What the view writes in a cell: "NaN" when invalid, the top-1 token, or "A→B" where the two
        models' top-1 tokens differ (whitespace made visible)."""
        if self.invalid[row, column]:
            return "NaN"
        first = visible_token(str(self.top_tokens[0, row, column, 0]))
        if not self.top1_differs[row, column]:
            return first
        return f"{first}→{visible_token(str(self.top_tokens[1, row, column, 0]))}"

    def to_frame(self) -> pandas.DataFrame:
        """One row per cell, in the picture's order (row-major, top-down): row_label, layer, position,
        token, value, invalid, each model's top-1 token and probability (top1_token and
        top1_probability) and each pinned item's probability ("p(<label>)"), in the diff mode with
        suffixes _a and _b. The statistic, label, units, mode and models are in the frame's attrs."""
        try:
            import pandas as pd
        except ImportError as exc:
            raise ImportError("GridData.to_frame needs pandas: `pip install pandas`") from exc
        n_rows, n_columns = self.values.shape
        frame: dict[str, Any] = {
            "row_label": np.repeat(np.array(self.row_labels, dtype=object), n_columns),
            "layer": np.repeat(np.array(self.rows, dtype=np.int64), n_columns),
            "position": np.tile(np.array(self.columns, dtype=np.int64), n_rows),
            "token": np.tile(np.array(self.tokens, dtype=object), n_rows),
            "value": self.values.reshape(-1),
            "invalid": self.invalid.reshape(-1),
        }
        suffixes = [""] if len(self.models) == 1 else ["_a", "_b"]
        for m, suffix in enumerate(suffixes):
            frame[f"top1_token{suffix}"] = self.top_tokens[m, ..., 0].reshape(-1)
            frame[f"top1_probability{suffix}"] = self.top_probs[m, ..., 0].reshape(-1)
        for label, probabilities in self.pins.items():
            for m, suffix in enumerate(suffixes):
                frame[f"p({label}){suffix}"] = probabilities[m].reshape(-1)
        out = pd.DataFrame(frame)
        out.attrs.update(
            statistic=self.statistic,
            label=self.label,
            units=self.units,
            mode=self.mode,
            models=self.models,
            rows_note=self.rows_note,
        )
        return out


# --- numbers ----------------------------------------------------------------------------------


def grid_data(
    session: LensSession | RemoteSession,
    *,
    statistic: str = "entropy",
    diff_statistic: str = "js",
    mode: str = "a",
    layer_stride: int = 1,
    token_range: Sequence[int | None] = (),
    color_scale: str = "fixed",
    column: int | None = None,
    sublayers: bool | None = None,
) -> GridData:
    """What the view shows for these settings (the widget's traits of the same names), as numbers.

    Read from the session's arrays. Rows a stride needs that the session never computed (a stride
    finer than the widget's) are computed through `session.set_layer_stride`, then the session's
    own stride is set back (costing nothing: its rows are kept), so a widget on the session is not
    disturbed; those extra rows are the only work this can cause.

    statistic "pin:<label>" is a pinned item's probability (the exponential of the session's
    log-probability of it in each cell), and diff_statistic "delta:pin:<label>" B − A of it.
    token_range: [] for every column, else [start] or [start, end) with None meaning the last.
    Unlike the view, which clamps them, a range outside the tokens or backwards is refused here:
    an export should say which columns it holds.
    column: a token position whose trajectory (session.column, through the whole head at every row)
    render_png draws under the heatmap; None: no trajectory.
    sublayers: include the rows after attention ("ℓ.attn" under each layer row ℓ ≥ 1, rows.py); by
    default when the session computes them (a session without them refuses True: turn them on there).
    """
    allowed_modes = MODES if session.is_ab else ("a",)
    if mode not in allowed_modes:
        hint = "" if session.is_ab else ' ("b" and "diff" need an A/B session: LensSession(..., model_b=...))'
        raise ValueError(f"mode must be one of {allowed_modes}{hint}, got {mode!r}")
    labels = [p.label for p in session.pins]
    choices = (*STATISTICS, *(f"pin:{label}" for label in labels))
    if statistic not in choices:
        raise ValueError(f"statistic must be one of {choices}, got {statistic!r}")
    diff_choices = (*DIFF_CHOICES, *(f"delta:pin:{label}" for label in labels))
    if diff_statistic not in diff_choices:
        raise ValueError(f"diff_statistic must be one of {diff_choices}, got {diff_statistic!r}")
    if color_scale not in SCALE_MODES:
        raise ValueError(f"color_scale must be one of {SCALE_MODES}, got {color_scale!r}")
    stride = check_stride(layer_stride)
    start, end = _columns(token_range, len(session.tokens.ids))
    sublayers = session.sublayers if sublayers is None else sublayers
    if sublayers and not session.sublayers:
        raise ValueError("the session has no rows after attention: turn them on with session.set_sublayers(True)")

    wanted = stride_rows(session.num_layers, stride, sublayers)
    _ensure_rows(session, wanted, stride)
    index = [session.rows.index(r) for r in reversed(wanted)]  # top-down (wanted is in depth order)
    row_labels = session.row_labels
    cells = np.ix_(index, range(start, end))

    def pinned(model: str, label: str) -> np.ndarray:
        return np.exp(session.pin_arrays(model)[labels.index(label)][cells])

    def single(model: str, name: str) -> np.ndarray:
        if name.startswith("pin:"):
            return pinned(model, name.removeprefix("pin:"))
        return session.grid_arrays(model)[0][STATISTICS.index(name)][cells]

    keys = ("a", "b") if mode == "diff" else (mode,)
    shown = diff_statistic if mode == "diff" else statistic
    if mode != "diff":
        values = single(mode, statistic)
    elif shown.startswith("delta:"):
        name = shown.removeprefix("delta:")
        with np.errstate(invalid="ignore"):  # inf − inf (an infinite KL in both): NaN, as in the view
            values = single("b", name) - single("a", name)
    else:
        diff = session.diff_arrays()
        assert diff is not None  # an A/B session has one
        values = diff[DIFF_STATISTICS.index(shown)][cells]

    strings = np.array(session.token_strings(), dtype=object)
    top_ids = np.stack([session.grid_arrays(key)[1][cells] for key in keys])
    top_probs = np.stack([session.grid_arrays(key)[2][cells] for key in keys])
    names = dict(zip(session.models, session.names, strict=True))
    return GridData(
        statistic=shown,
        label=_title(shown, names[mode] if session.is_ab and mode != "diff" else ""),
        units=_info(shown).units,
        mode=mode,
        models=tuple(names[key] for key in keys),
        rows=list(reversed(wanted)),
        row_labels=[row_labels[i] for i in index],
        columns=list(range(start, end)),
        tokens=[str(strings[i]) for i in session.tokens.ids[start:end]],
        values=values.astype(np.float32),
        top_ids=top_ids.astype(np.int64),
        top_tokens=strings[top_ids],
        top_probs=top_probs.astype(np.float32),
        pins={label: np.stack([pinned(key, label) for key in keys]).astype(np.float32) for label in labels},
        color_scale=color_scale,
        vocab_size=len(strings),
        rows_note=_rows_note(session, wanted),
        trajectory=None if column is None else trajectory(session, column),
    )


def trajectory(session: LensSession | RemoteSession, column: int) -> Trajectory:
    """Token position `column` across the rows, for the trajectory panel (LensSession.column)."""
    detail = session.column(column)
    labels = dict(zip(session.rows, session.row_labels, strict=True))
    strings = session.token_strings()
    token = session.tokens.ids[column]
    return Trajectory(
        column=column,
        token=strings[token] if token < len(strings) else f"<{token}>",
        rows=list(detail.rows),
        row_labels=[labels[r] for r in detail.rows],
        lines=detail.lines,
        curves=detail.curves,
        current={key: f"{key}/{session.lens_of(key).name}" for key in session.models},
        names=dict(zip(session.models, session.names, strict=True)),
    )


def _columns(token_range: Sequence[int | None], n_tokens: int) -> tuple[int, int]:
    """[start, end) of the columns a token_range names, refusing what the view would silently clamp."""
    if isinstance(token_range, (str, bytes)) or not isinstance(token_range, Sequence) or len(token_range) > 2:
        raise ValueError(
            f"token_range must be [], [start] or [start, end] (end None: to the last), got {token_range!r}"
        )
    bounds = list(token_range) + [None] * (2 - len(token_range))
    for value in bounds:
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer))):
            raise ValueError(f"token_range must hold integers or None, got {token_range!r}")
    start = 0 if bounds[0] is None else int(bounds[0])
    end = n_tokens if bounds[1] is None else int(bounds[1])
    if not 0 <= start <= end <= n_tokens:
        raise ValueError(
            f"token_range must satisfy 0 <= start <= end <= {n_tokens} (the number of tokens), got {token_range!r}"
        )
    return start, end


def _rows_note(session: LensSession | RemoteSession, rows: Sequence[int]) -> str:
    """How the sub-layer rows among `rows` were read, when a tuned lens read them (rows.TRANSLATOR_NOTE)."""
    tuned = any(session.lens_of(key).name == "tuned" for key in session.models)
    return TRANSLATOR_NOTE if tuned and any(is_sublayer(r, session.num_layers) for r in rows) else ""


def _ensure_rows(session: LensSession, rows: Sequence[int], stride: int) -> None:
    """Compute the stride's rows if the session lacks any, leaving the session's stride as it was."""
    if all(r in session.rows for r in rows):
        return
    previous = session.layer_stride
    try:
        session.set_layer_stride(stride)
    finally:
        session.set_layer_stride(previous)


class _Info(NamedTuple):
    label: str
    units: str
    kind: str
    """The scale's kind: "sequential", "divergence", "probability", "rank" or "diverging" (B − A)."""
    lower_is_better: bool
    bound: str
    """The top of the fixed scale (statistics.STATISTIC_INFO): "one", "ln_2", "ln_vocab" or "vocab"."""


def _info(statistic: str) -> _Info:
    """What the view's legend and colours read of a statistic (js/statistics.ts): a pinned item's
    "pin:<label>" is its probability, "p(<label>)"; B − A is "Δ <label>" on a diverging scale that is
    never reversed, fixed at ± the statistic's own bound."""
    name = statistic.removeprefix("delta:")
    if name.startswith("pin:"):
        info: dict[str, str | bool] = {
            "label": f"p({name.removeprefix('pin:')})",
            "units": "",
            "lower_is_better": False,
            "scale": "probability",
            "bound": "one",
        }
    else:
        info = STATISTIC_INFO[name]
    label, units, bound = str(info["label"]), str(info["units"]), str(info["bound"])
    if statistic.startswith("delta:"):
        return _Info(f"Δ {label}", units, "diverging", False, bound)
    return _Info(label, units, str(info["scale"]), bool(info["lower_is_better"]), bound)


def _title(statistic: str, whose: str) -> str:
    """The legend's title (js/statistics.ts title, js/picture.ts legendTitle): "Entropy (nats)",
    "Δ Entropy (B − A, nats)", "Rank · base" in an A/B session's one-model modes."""
    label, units = _info(statistic)[:2]
    detail = ", ".join(filter(None, ["B − A" if statistic.startswith("delta:") else "", units]))
    text = f"{label} ({detail})" if detail else label
    return f"{text} · {whose}" if whose else text


# --- colours ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scale:
    """Statistic value → position on the colour ramp (js/colors.ts Scale)."""

    low: float
    high: float
    form: str
    """"linear" from low to high, "log" (ln v / ln high, from 1) or "signed_log" (symmetric around 0)."""
    fixed: bool
    """The same for every lens, model and picture of the statistic, not this picture's range."""

    @property
    def log(self) -> bool:
        return self.form != "linear"

    def position(self, values: np.ndarray) -> np.ndarray:
        """Positions in [0, 1] for values within the scale; beyond it they pass the ends, and the ramp
        clamps them (the top colour saturates). NaN stays NaN (a cell without a colour)."""
        values = np.asarray(values, dtype=np.float64)
        if self.form == "log":
            return np.log(np.maximum(1.0, values)) / math.log(self.high)
        if self.form == "signed_log":
            return 0.5 + 0.5 * np.sign(values) * np.log1p(np.abs(values)) / math.log1p(self.high)
        return (values - self.low) / (self.high - self.low)


def bound_value(bound: str, vocab_size: int) -> float:
    """The top of a fixed scale: 1, ln 2, ln V or V, with V = max(2, vocab_size) (js/colors.ts boundValue)."""
    v = max(2, vocab_size)
    return {"one": 1.0, "ln_2": math.log(2.0), "ln_vocab": math.log(v), "vocab": float(v)}[bound]


def scale_for(statistic: str, values: np.ndarray, color_scale: str, vocab_size: int) -> Scale:
    """The colour scale of a picture of `statistic` (js/colors.ts fixedScale and scaleFor, one rule).

    color_scale "fixed": the same scale in every picture, whatever lens, model or text, so that two
    pictures can be compared by colour. Its top is the statistic's bound (STATISTIC_INFO "bound"; a
    pinned item's is "one"): top = 1 ("one"), ln 2 ("ln_2"), ln V ("ln_vocab") or V ("vocab"), where
    V = max(2, vocab_size). A value v is placed at
        rank:                        t = ln(max(1, v)) / ln V                       (log, 1 … V)
        B − A of rank ("delta:rank"): t = 0.5 + 0.5 · sign(v) · ln(1 + |v|) / ln(1 + V)  (signed log)
        any other B − A ("delta:…"): t = (v + top) / (2 · top)                     (linear, ± top)
        everything else:             t = v / top                                   (linear, 0 … top)
    color_scale "view": this picture's range, as before fixed scales: probabilities 0 … 1 (t = v),
    ranks t = ln(max(1, v)) / ln(max(2, m)), differences t = (v + m) / (2m) and everything else
    t = v / m, where m is the largest |v| of the finite values shown (1 where there is none or it is
    0; for ranks at least 2). A probability's scale is the same either way, so it counts as fixed.

    In both, t is clamped to [0, 1] when it picks a colour (values beyond the top saturate at the top
    colour) and NaN has no colour; a lower-is-better statistic reads the ramp at 1 − t (never a
    difference). The legend's title ends with SCALE_NOTES[fixed]: " · fixed scale" or
    " · this picture's scale", after ", log scale" for a logarithmic one (either rank scale).
    """
    info = _info(statistic)
    if color_scale not in SCALE_MODES:
        raise ValueError(f"color_scale must be one of {SCALE_MODES}, got {color_scale!r}")
    if color_scale == "fixed":
        top = bound_value(info.bound, vocab_size)
        if info.kind == "rank":
            return Scale(1.0, top, "log", True)
        if info.kind == "diverging":
            return Scale(-top, top, "signed_log" if info.bound == "vocab" else "linear", True)
        return Scale(0.0, top, "linear", True)
    if info.kind == "probability":
        return Scale(0.0, 1.0, "linear", True)
    values = np.asarray(values, dtype=np.float64)
    finite = np.abs(values[np.isfinite(values)])
    most = float(finite.max()) if finite.size else 0.0
    if info.kind == "rank":
        return Scale(1.0, max(2.0, most), "log", False)
    if info.kind == "diverging":
        return Scale(-(most or 1.0), most or 1.0, "linear", False)
    return Scale(0.0, most if most > 0 else 1.0, "linear", False)


def legend_title(data: GridData, scale: Scale) -> str:
    """The legend's line: the title, ", log scale" for a logarithmic scale, and which scale it is."""
    return data.label + (", log scale" if scale.log else "") + SCALE_NOTES[scale.fixed]


def ramp_colors(ramp: Sequence[tuple[int, int, int]], t: np.ndarray) -> np.ndarray:
    """uint8 [..., 3] colours at positions t (clamped to [0, 1]; NaN, a cell without a colour, reads
    as 0), interpolated and rounded as the view does, so a cell has the same RGB as on screen."""
    points = np.asarray(ramp, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64)
    x = np.clip(np.where(np.isnan(t), 0.0, t), 0.0, 1.0) * (len(points) - 1)
    i = np.minimum(len(points) - 2, np.floor(x)).astype(np.int64)
    f = (x - i)[..., None]
    return np.floor(points[i] + (points[i + 1] - points[i]) * f + 0.5).astype(np.uint8)


@dataclass(frozen=True)
class _Look:
    """How one picture maps values to colours (js/heatmap.ts colorOf): its ramp, reversed for
    lower-is-better statistics so that bright always means "confident / close", over its scale."""

    kind: str
    reversed: bool
    scale: Scale

    def colors(self, positions: np.ndarray) -> np.ndarray:
        t = 1 - positions if self.reversed else positions
        return ramp_colors(DIVERGING if self.kind == "diverging" else RAMP, t)


def _text_on(rgb: np.ndarray) -> str:
    """Black or white, whichever reads better on the colour (js/colors.ts textOn)."""
    r, g, b = (float(c) for c in rgb)
    return _INK["on_light"] if 0.2126 * r + 0.7152 * g + 0.0722 * b > _INK["light_above_luminance"] else _INK["on_dark"]


# --- picture ----------------------------------------------------------------------------------


def image_size(rows: int, columns: int, scale: float = 2.0, panel_keys: int | None = None) -> tuple[int, int]:
    """(width, height) in pixels of render_png's image of a grid:

        width  = round(scale × W),  W = max(MIN_WIDTH, LABEL_WIDTH + CELL_WIDTH × columns + MARGIN)
        height = round(scale × (LEGEND_HEIGHT + CELL_HEIGHT × rows + AXIS_HEIGHT + MARGIN + panel))

    in CSS pixels 320, 96 + 58 × columns + 8 and 52 + 22 × rows + 24 + 8: the view's 58 × 22 cells,
    its widest label column and its token axis, with a legend band on top. scale 2 is a HiDPI screen.
    With a trajectory panel whose legend has `panel_keys` entries (one per line and curve),

        panel = PANEL_TITLE + PANEL_PLOT + PANEL_AXIS + PANEL_KEY_HEIGHT × ceil(panel_keys / n)
              = 32 + 160 + 30 + 16 × ceil(panel_keys / n),  n = max(1, (W − 2 × MARGIN) // PANEL_KEY_WIDTH)

    (n entries of 170 to a line); without one (None) it is 0.
    """
    css_width = max(MIN_WIDTH, LABEL_WIDTH + CELL_WIDTH * columns + MARGIN)
    css_height = LEGEND_HEIGHT + CELL_HEIGHT * rows + AXIS_HEIGHT + MARGIN
    if panel_keys is not None:
        css_height += PANEL_TITLE + PANEL_PLOT + PANEL_AXIS + PANEL_KEY_HEIGHT * _key_lines(panel_keys, css_width)
    return round(scale * css_width), round(scale * css_height)


def _keys_per_line(css_width: float) -> int:
    return max(1, int((css_width - 2 * MARGIN) // PANEL_KEY_WIDTH))


def _key_lines(keys: int, css_width: float) -> int:
    return -(-keys // _keys_per_line(css_width))


def render_png(
    data: GridData,
    path: str | os.PathLike[str],
    *,
    scale: float = 2.0,
    dark: bool = False,
    color_scale: str | None = None,
    panel_y: str = "probability",
) -> Path:
    """Draw `data` as the widget draws it and write a PNG at `path` (its size: `image_size`).

    color_scale: "fixed" or "view" (`scale_for`); None: the one `data` was made with.
    panel_y: what the trajectory panel (drawn when `data.trajectory` is there) plots against the
    layers: "probability", "logprob" (nats) or "rank" (of the item's best token, log scale, 1 on top).
    Drawn with matplotlib's Agg canvas on a Figure of its own (never pyplot), so nothing opens in
    a notebook and no global matplotlib state changes. dark: the view's dark palette.
    Fonts: matplotlib's DejaVu Sans Mono; a token in a script it lacks draws as boxes, silently.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError(
            # lens-widget is not on PyPI, so "lens-widget[export]" names nothing pip can fetch.
            "render_png needs matplotlib: `pip install matplotlib` "
            '(or, in a clone of lens-widget, `pip install ".[export]"`)'
        ) from exc
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 < scale < math.inf:
        raise ValueError(f"scale must be a positive number, got {scale!r}")
    if panel_y not in PANEL_Y:
        raise ValueError(f"panel_y must be one of {PANEL_Y}, got {panel_y!r}")
    n_rows, n_columns = data.values.shape
    trajectory = data.trajectory
    width, height = image_size(n_rows, n_columns, scale, None if trajectory is None else trajectory.keys)
    if max(width, height) >= _MAX_PIXELS:
        raise ValueError(
            f"a {width} × {height} pixel image is too large (under {_MAX_PIXELS} each way): "
            f"export fewer columns (token_range=, now {n_columns}) or a smaller scale (now {scale})"
        )
    palette = _PALETTES[bool(dark)]
    info = _info(data.statistic)
    color_scale = data.color_scale if color_scale is None else color_scale
    look = _Look(info.kind, info.lower_is_better, scale_for(data.statistic, data.values, color_scale, data.vocab_size))
    dpi = 96 * scale  # 1 CSS pixel = 1/96 inch = 0.75 pt, as in a browser
    # A quarter pixel over: matplotlib truncates the canvas to whole pixels after float arithmetic.
    css = ((width + 0.25) / scale, (height + 0.25) / scale)
    figure = Figure(figsize=(css[0] / 96, css[1] / 96), dpi=dpi, facecolor=palette["background"])
    canvas = FigureCanvasAgg(figure)
    axes = figure.add_axes((0.0, 0.0, 1.0, 1.0))
    axes.set_axis_off()
    axes.set_xlim(0, css[0])  # data coordinates are CSS pixels, y downwards
    axes.set_ylim(css[1], 0)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Glyph .* missing from font")
        _draw_cells(axes, data, look, palette)
        _draw_legend(figure, axes, data, look, palette, css)
        if trajectory is not None:
            top = LEGEND_HEIGHT + CELL_HEIGHT * n_rows + AXIS_HEIGHT + MARGIN
            _draw_panel(figure, axes, trajectory, panel_y, palette, top, css)
        out = Path(path)
        canvas.print_png(out, metadata={"Title": data.label, "Software": "lens-widget"})
    return out


_FONT_PT = 11 * 0.75
"""The view's 11 px font, in points."""
_CHAR_WIDTH = 0.602 * 11
"""CSS pixels per character of DejaVu Sans Mono at 11 px (its advance is 0.602 em)."""


def _fit(text: str, room: float) -> str:
    """The longest prefix (plus an ellipsis) that fits `room` CSS pixels (js/tokens.ts fitText),
    measured in monospace character cells (wide East Asian characters take two)."""
    widths = [2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text]
    cells = int(room // _CHAR_WIDTH)
    if sum(widths) <= cells:
        return text
    used, keep = 0, 0
    for w in widths:
        if used + w > cells - 1:
            break
        used, keep = used + w, keep + 1
    return text[:keep] + "…" if keep else ""


def _text(axes: Any, x: float, y: float, text: str, color: str, **options: Any) -> None:
    """Token text as plain text: never TeX, never mathtext ("$x$" stays "$x$")."""
    options.setdefault("ha", "center")
    options.setdefault("family", "monospace")
    axes.text(
        x,
        y,
        text,
        color=color,
        va="center",
        fontsize=_FONT_PT,
        usetex=False,
        parse_math=False,
        clip_on=False,
        **options,
    )


def _draw_cells(axes: Any, data: GridData, look: _Look, palette: dict[str, str]) -> None:
    """The heatmap (js/heatmap.ts draw): cells 1 px apart, each with its top-1 token; invalid ones
    hatched and labelled NaN; the diff's top-1-differs cells marked with a corner triangle."""
    from matplotlib.collections import PatchCollection
    from matplotlib.patches import Polygon, Rectangle

    position = look.scale.position(data.values)
    colors = look.colors(position)
    invalid, marked = data.invalid, data.top1_differs
    top = LEGEND_HEIGHT
    filled, facecolors, hatched, marks = [], [], [], []
    for i in range(data.values.shape[0]):
        y = top + i * CELL_HEIGHT
        for j in range(data.values.shape[1]):
            x = LABEL_WIDTH + j * CELL_WIDTH
            cell = Rectangle((x, y), CELL_WIDTH - 1, CELL_HEIGHT - 1)
            if invalid[i, j]:
                hatched.append(cell)
                _text(axes, x + CELL_WIDTH / 2, y + CELL_HEIGHT / 2, "NaN", palette["text"])
                continue
            missing = np.isnan(position[i, j])
            filled.append(cell)
            facecolors.append(palette["missing"] if missing else colors[i, j] / 255)
            ink = palette["text"] if missing else _text_on(colors[i, j])
            room = CELL_WIDTH - (12 if marked[i, j] else 6)
            center = x + CELL_WIDTH / 2 - (3 if marked[i, j] else 0)
            _text(axes, center, y + CELL_HEIGHT / 2, _fit(data.cell_text(i, j), room), ink)
            if marked[i, j]:
                right = x + CELL_WIDTH - 1
                marks.append(Polygon([(right - 9, y), (right, y), (right, y + 9)], closed=True))
    axes.add_collection(PatchCollection(filled, facecolors=facecolors, linewidths=0))
    axes.add_collection(
        PatchCollection(hatched, facecolor=palette["missing"], edgecolor=palette["invalid"], hatch="////", linewidths=0)
    )
    axes.add_collection(
        PatchCollection(marks, facecolor=palette["accent"], edgecolor=palette["background"], linewidths=0.75)
    )
    for i, label in enumerate(data.row_labels):
        y = top + i * CELL_HEIGHT + CELL_HEIGHT / 2
        _text(axes, LABEL_WIDTH - 8, y, label, palette["muted"], ha="right", family="sans-serif")
    axis_y = top + data.values.shape[0] * CELL_HEIGHT + AXIS_HEIGHT / 2
    _text(axes, LABEL_WIDTH - 8, axis_y, "input", palette["muted"], ha="right", family="sans-serif")
    for j, token in enumerate(data.tokens):
        _text(
            axes,
            LABEL_WIDTH + j * CELL_WIDTH + CELL_WIDTH / 2,
            axis_y,
            _fit(visible_token(token), CELL_WIDTH - 6),
            palette["text"],
        )


def _draw_legend(
    figure: Any, axes: Any, data: GridData, look: _Look, palette: dict[str, str], css: tuple[float, float]
) -> None:
    """A colour bar over the cells' range (js/heatmap.ts drawLegend), titled with the legend's title;
    a rank's is logarithmic, as its colours are."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import FuncNorm, ListedColormap, LogNorm, Normalize

    scale = look.scale
    colors = look.colors(np.linspace(0.0, 1.0, 256)) / 255
    norm: Normalize
    if scale.form == "signed_log":  # position 0.5 + 0.5·sign(v)·ln(1 + |v|) / ln(1 + V), as the cells'
        norm = FuncNorm((_signed_log, _signed_exp), scale.low, scale.high)
    elif scale.form == "log":
        norm = LogNorm(scale.low, scale.high)
    else:
        norm = Normalize(scale.low, scale.high)
    _text(axes, MARGIN, 12, legend_title(data, scale), palette["text"], ha="left", family="sans-serif")
    width, height = css
    left = 2 * MARGIN  # room for the first tick label
    bar = figure.add_axes((left / width, 1 - 32 / height, min(240, width - 2 * left) / width, 12 / height))
    colorbar = figure.colorbar(ScalarMappable(norm, ListedColormap(colors)), cax=bar, orientation="horizontal")
    if scale.form == "signed_log":
        ticks = _signed_log_ticks(scale.high)
        colorbar.set_ticks([*(-t for t in reversed(ticks)), 0.0, *ticks])
        colorbar.ax.xaxis.set_major_formatter(_tick_label)
    colorbar.outline.set_edgecolor(palette["muted"])
    colorbar.outline.set_linewidth(0.75)
    bar.tick_params(labelsize=_FONT_PT, colors=palette["text"], length=2, width=0.75, pad=1)


def _signed_log_ticks(top: float, gap: float = 0.15) -> list[float]:
    """Positive ticks of a signed logarithmic bar: powers of ten and the top, each at least `gap` of
    the bar from the last one kept and from the top, so that their labels do not overlap."""

    def at(v: float) -> float:
        return 0.5 * math.log1p(v) / math.log1p(top)

    ticks: list[float] = []
    last = 0.0
    for k in range(1, int(math.log10(top)) + 1):
        d = 10.0**k
        if at(d) - last >= gap and at(top) - at(d) >= gap:
            ticks.append(d)
            last = at(d)
    return [*ticks, top]


def _signed_log(values: np.ndarray) -> np.ndarray:
    return np.sign(values) * np.log1p(np.abs(values))


def _signed_exp(values: np.ndarray) -> np.ndarray:
    return np.sign(values) * np.expm1(np.abs(values))


def _tick_label(value: float, _position: Any = None) -> str:
    """A tick of a signed logarithmic bar: ±1e3 rather than an unreadable ±1000.0."""
    magnitude = abs(value)
    text = f"{magnitude:g}" if magnitude < 1e4 else f"{magnitude:.0e}".replace("e+0", "e").replace("e+", "e")
    return ("−" if value < 0 else "") + text


def _draw_panel(
    figure: Any,
    axes: Any,
    trajectory: Trajectory,
    panel_y: str,
    palette: dict[str, str],
    top: float,
    css: tuple[float, float],
) -> None:
    """The trajectory panel: each line (item) in a colour of its own across the rows, so that where
    an item rises or falls reads at a glance; model A's current lens solid, model B's dashed and every
    other lens dotted and lighter (the heatmap shows the current lenses, the others are for comparing);
    and a legend naming each drawn line, "p(dog) · A/logit"."""
    width, height = css
    t = trajectory
    what = {"probability": "probability", "logprob": "log-probability (nats)", "rank": "rank (log scale)"}[panel_y]
    title = f"Column {t.column} (input {visible_token(t.token)}) across the layers: {what}"
    if len(t.names) > 1:
        title += " · " + ", ".join(f"{key.upper()} = {name}" for key, name in t.names.items())
    _text(axes, MARGIN, top + PANEL_TITLE / 2, _fit(title, width - 2 * MARGIN), palette["text"], ha="left")
    left, right = LABEL_WIDTH, width - 3 * MARGIN
    plot_top = top + PANEL_TITLE
    plot = figure.add_axes(
        ((left / width), 1 - (plot_top + PANEL_PLOT) / height, (right - left) / width, PANEL_PLOT / height)
    )
    plot.set_facecolor(palette["background"])
    for spine in plot.spines.values():
        spine.set_edgecolor(palette["muted"])
        spine.set_linewidth(0.75)
    plot.tick_params(labelsize=_FONT_PT, colors=palette["text"], length=2, width=0.75, pad=2)
    x = np.arange(len(t.rows))
    every = max(1, math.ceil(len(x) * 34 / max(1.0, right - left)))  # labels about 34 px apart at least
    plot.set_xticks(x[::every], [t.row_labels[i] for i in x[::every]])
    plot.set_xlim(-0.3, max(0.3, len(x) - 0.7))
    plot.grid(True, color=palette["grid"], linewidth=0.6)
    plot.set_axisbelow(True)
    drawn: list[np.ndarray] = []
    keys: list[tuple[str, dict[str, Any]]] = []
    for i, line in enumerate(t.lines):
        color = LINE_COLORS[i % len(LINE_COLORS)]
        name = line.label if line.pinned else visible_token(line.label)
        for curve in t.curves:
            values = _panel_values(line, curve, panel_y)
            style = _curve_style(curve, t.current)
            plot.plot(x, values, color=color, marker=".", markersize=3.5, **style)
            drawn.append(values)
            model, lens = curve.split("/", 1)
            keys.append((f"p({name}) · {model.upper()}/{lens}", {"color": color, **style}))
    _panel_limits(plot, panel_y, drawn)
    if not t.lines:
        plot.text(0.5, 0.5, "no line to draw", transform=plot.transAxes, ha="center", color=palette["muted"])
    per_line = _keys_per_line(width)
    keys_top = plot_top + PANEL_PLOT + PANEL_AXIS
    for j, (text, style) in enumerate(keys):
        kx = MARGIN + (j % per_line) * PANEL_KEY_WIDTH
        ky = keys_top + (j // per_line) * PANEL_KEY_HEIGHT + PANEL_KEY_HEIGHT / 2
        axes.plot([kx, kx + 18], [ky, ky], **style)
        _text(axes, kx + 24, ky, _fit(text, PANEL_KEY_WIDTH - 30), palette["text"], ha="left")


def _panel_values(line: Line, curve: str, panel_y: str) -> np.ndarray:
    """float64 per row of one curve of a line; NaN where a cell is invalid (a gap in the line)."""
    source = line.rank if panel_y == "rank" else line.logp
    values = np.array([np.nan if v is None else v for v in source.get(curve, [])], dtype=np.float64)
    return np.exp(values) if panel_y == "probability" else values


def _curve_style(curve: str, current: dict[str, str]) -> dict[str, Any]:
    """Model A's current lens solid, model B's dashed, any other lens dotted and lighter."""
    if curve == current.get("a"):
        return {"linestyle": "-", "linewidth": 1.6, "alpha": 1.0}
    if curve == current.get("b"):
        return {"linestyle": "--", "linewidth": 1.4, "alpha": 1.0}
    return {"linestyle": ":", "linewidth": 1.3, "alpha": 0.6}


def _panel_limits(plot: Any, panel_y: str, drawn: list[np.ndarray]) -> None:
    """y limits: 0 … 1 for probabilities; for log-probabilities down to the lowest drawn (a token of
    probability 0 is far below: the bottom stops at −50 nats); ranks from the largest up to 1."""
    values = np.concatenate(drawn) if drawn else np.empty(0)
    finite = values[np.isfinite(values)]
    if panel_y == "probability":
        plot.set_ylim(-0.02, 1.02)
    elif panel_y == "logprob":
        low = max(-50.0, float(finite.min())) if finite.size else -10.0
        plot.set_ylim(min(low, -1.0) * 1.05, 0.5)
    else:
        plot.set_yscale("log")
        plot.yaxis.set_major_formatter(_tick_label)  # 1, 10, 100 rather than mathtext powers
        plot.set_ylim(max(10.0, float(finite.max()) * 1.5 if finite.size else 10.0), 0.8)
