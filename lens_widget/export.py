"""Export: the numbers behind one picture of the widget, and the picture itself as a PNG.

A researcher who found something in the widget wants it in a paper or a DataFrame. `grid_data`
takes what the view would draw for a statistic, mode, layer stride and token range from the
session's own arrays (nothing is recomputed, except rows a stride needs that were never computed);
`render_png` draws it as the view does: the same rows (output on top), colour ramps, reversal of
lower-is-better statistics, B − A and pair statistics of the A/B diff, hatched invalid cells and
visible whitespace in tokens (js/picture.ts, js/heatmap.ts, js/colors.ts, js/tokens.ts).

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
from typing import TYPE_CHECKING, Any

import numpy as np

from .checks import check_stride
from .constants import PRESENTATION
from .grid import stride_rows
from .statistics import DIFF_STATISTICS, STATISTIC_INFO, STATISTICS

if TYPE_CHECKING:
    import pandas

    from .session import LensSession

DIFF_CHOICES: tuple[str, ...] = (*DIFF_STATISTICS, *(f"delta:{name}" for name in STATISTICS))
"""What the diff mode can show, as the widget's `diff_statistic` trait: a pair statistic, or
"delta:<statistic>", B − A of a single-model statistic. (Defined here too so that exporting does not
import the Jupyter widget stack.)"""

MODES: tuple[str, ...] = ("a", "b", "diff")

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


@dataclass(frozen=True, eq=False)
class GridData:
    """The numbers behind one picture of the widget: what a researcher puts in a paper or a DataFrame.

    Rows are top-down as the view draws them (the output row first), so values[i, j] is the cell
    drawn in the i-th row from the top and j-th column from the left. Token strings are raw (as the
    tokenizer decodes them); `visible_token` gives the view's rendering. eq=False: arrays do not
    compare to a single truth value.
    """

    statistic: str
    """A STATISTICS name (modes "a", "b"), a DIFF_STATISTICS name or "delta:<statistic>" (mode "diff")."""
    label: str
    """The legend's title: the statistic, its units, and whose it is ("Entropy (nats) · base")."""
    units: str
    mode: str
    """"a", "b" or "diff"."""
    models: tuple[str, ...]
    """Display names of the models whose top-k are included: the one shown, or A and B for the diff."""
    rows: list[int]
    """Layer indices (model A's; num_layers is the output row), top-down: the output first."""
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
        token, value, invalid, and each model's top-1 token and probability (top1_token and
        top1_probability; in the diff mode with suffixes _a and _b). The statistic, label, units,
        mode and models are in the frame's attrs."""
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
        out = pd.DataFrame(frame)
        out.attrs.update(
            statistic=self.statistic, label=self.label, units=self.units, mode=self.mode, models=self.models
        )
        return out


# --- numbers ----------------------------------------------------------------------------------


def grid_data(
    session: LensSession,
    *,
    statistic: str = "entropy",
    diff_statistic: str = "js",
    mode: str = "a",
    layer_stride: int = 1,
    token_range: Sequence[int | None] = (),
) -> GridData:
    """What the view shows for these settings (the widget's traits of the same names), as numbers.

    Read from the session's arrays. Rows a stride needs that the session never computed (a stride
    finer than the widget's) are computed through `session.set_layer_stride`, then the session's
    own stride is set back (costing nothing: its rows are kept), so a widget on the session is not
    disturbed; those extra rows are the only work this can cause.

    token_range: [] for every column, else [start] or [start, end) with None meaning the last.
    Unlike the view, which clamps them, a range outside the tokens or backwards is refused here:
    an export should say which columns it holds.
    """
    allowed_modes = MODES if session.is_ab else ("a",)
    if mode not in allowed_modes:
        hint = "" if session.is_ab else ' ("b" and "diff" need an A/B session: LensSession(..., model_b=...))'
        raise ValueError(f"mode must be one of {allowed_modes}{hint}, got {mode!r}")
    if statistic not in STATISTICS:
        raise ValueError(f"statistic must be one of {STATISTICS}, got {statistic!r}")
    if diff_statistic not in DIFF_CHOICES:
        raise ValueError(f"diff_statistic must be one of {DIFF_CHOICES}, got {diff_statistic!r}")
    stride = check_stride(layer_stride)
    start, end = _columns(token_range, len(session.tokens.ids))

    wanted = stride_rows(session.num_layers, stride)
    _ensure_rows(session, wanted, stride)
    index = [session.rows.index(r) for r in reversed(wanted)]  # top-down: the output row first
    labels = session.row_labels
    cells = np.ix_(index, range(start, end))

    keys = ("a", "b") if mode == "diff" else (mode,)
    shown = diff_statistic if mode == "diff" else statistic
    if mode != "diff":
        values = session.grid_arrays(mode)[0][STATISTICS.index(statistic)][cells]
    elif shown.startswith("delta:"):
        stat = STATISTICS.index(shown.removeprefix("delta:"))
        with np.errstate(invalid="ignore"):  # inf − inf (an infinite KL in both): NaN, as in the view
            values = session.grid_arrays("b")[0][stat][cells] - session.grid_arrays("a")[0][stat][cells]
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
        units=_info(shown)[1],
        mode=mode,
        models=tuple(names[key] for key in keys),
        rows=list(reversed(wanted)),
        row_labels=[labels[i] for i in index],
        columns=list(range(start, end)),
        tokens=[str(strings[i]) for i in session.tokens.ids[start:end]],
        values=values.astype(np.float32),
        top_ids=top_ids.astype(np.int64),
        top_tokens=strings[top_ids],
        top_probs=top_probs.astype(np.float32),
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


def _ensure_rows(session: LensSession, rows: Sequence[int], stride: int) -> None:
    """Compute the stride's rows if the session lacks any, leaving the session's stride as it was."""
    if all(r in session.rows for r in rows):
        return
    previous = session.layer_stride
    try:
        session.set_layer_stride(stride)
    finally:
        session.set_layer_stride(previous)


def _info(statistic: str) -> tuple[str, str, str, bool]:
    """(label, units, scale kind, lower is better) as the view's legend and colours read them
    (js/statistics.ts): B − A is "Δ <label>" on a diverging scale that is never reversed."""
    name = statistic.removeprefix("delta:")
    info = STATISTIC_INFO[name]
    label, units = str(info["label"]), str(info["units"])
    if statistic.startswith("delta:"):
        return f"Δ {label}", units, "diverging", False
    return label, units, str(info["scale"]), bool(info["lower_is_better"])


def _title(statistic: str, whose: str) -> str:
    """The legend's title (js/statistics.ts title, js/picture.ts legendTitle): "Entropy (nats)",
    "Δ Entropy (B − A, nats)", "Rank · base" in an A/B session's one-model modes."""
    label, units, _, _ = _info(statistic)
    detail = ", ".join(filter(None, ["B − A" if statistic.startswith("delta:") else "", units]))
    text = f"{label} ({detail})" if detail else label
    return f"{text} · {whose}" if whose else text


# --- colours ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Scale:
    """js/colors.ts scaleFor: statistic value → position on the ramp."""

    low: float
    high: float
    log: bool

    def position(self, values: np.ndarray) -> np.ndarray:
        if self.log:
            return np.log(np.maximum(1.0, values)) / math.log(self.high)
        return (values - self.low) / (self.high - self.low)


def _scale(kind: str, values: np.ndarray) -> _Scale:
    """The range of the cells shown, by the statistic's kind: probabilities 0 to 1, ranks
    logarithmic from 1, differences symmetric around 0, everything else 0 to the largest value."""
    if kind == "probability":
        return _Scale(0.0, 1.0, False)
    finite = np.abs(values[np.isfinite(values)])
    top = float(finite.max()) if finite.size else 0.0
    if kind == "rank":
        return _Scale(1.0, max(2.0, top), True)
    if kind == "diverging":
        return _Scale(-(top or 1.0), top or 1.0, False)
    return _Scale(0.0, top if top > 0 else 1.0, False)


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
    scale: _Scale

    def colors(self, positions: np.ndarray) -> np.ndarray:
        t = 1 - positions if self.reversed else positions
        return ramp_colors(DIVERGING if self.kind == "diverging" else RAMP, t)


def _text_on(rgb: np.ndarray) -> str:
    """Black or white, whichever reads better on the colour (js/colors.ts textOn)."""
    r, g, b = (float(c) for c in rgb)
    return _INK["on_light"] if 0.2126 * r + 0.7152 * g + 0.0722 * b > _INK["light_above_luminance"] else _INK["on_dark"]


# --- picture ----------------------------------------------------------------------------------


def image_size(rows: int, columns: int, scale: float = 2.0) -> tuple[int, int]:
    """(width, height) in pixels of render_png's image of a grid:

        width  = round(scale × max(MIN_WIDTH, LABEL_WIDTH + CELL_WIDTH × columns + MARGIN))
        height = round(scale × (LEGEND_HEIGHT + CELL_HEIGHT × rows + AXIS_HEIGHT + MARGIN))

    in CSS pixels 320, 96 + 58 × columns + 8 and 52 + 22 × rows + 24 + 8: the view's 58 × 22 cells,
    its widest label column and its token axis, with a legend band on top. scale 2 is a HiDPI screen.
    """
    css_width = max(MIN_WIDTH, LABEL_WIDTH + CELL_WIDTH * columns + MARGIN)
    css_height = LEGEND_HEIGHT + CELL_HEIGHT * rows + AXIS_HEIGHT + MARGIN
    return round(scale * css_width), round(scale * css_height)


def render_png(data: GridData, path: str | os.PathLike[str], *, scale: float = 2.0, dark: bool = False) -> Path:
    """Draw `data` as the widget draws it and write a PNG at `path` (its size: `image_size`).

    Drawn with matplotlib's Agg canvas on a Figure of its own (never pyplot), so nothing opens in
    a notebook and no global matplotlib state changes. dark: the view's dark palette.
    Fonts: matplotlib's DejaVu Sans Mono; a token in a script it lacks draws as boxes, silently.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError(
            'render_png needs matplotlib: `pip install "lens-widget[export]"` (or `pip install matplotlib`)'
        ) from exc
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 < scale < math.inf:
        raise ValueError(f"scale must be a positive number, got {scale!r}")
    n_rows, n_columns = data.values.shape
    width, height = image_size(n_rows, n_columns, scale)
    if max(width, height) >= _MAX_PIXELS:
        raise ValueError(
            f"a {width} × {height} pixel image is too large (under {_MAX_PIXELS} each way): "
            f"export fewer columns (token_range=, now {n_columns}) or a smaller scale (now {scale})"
        )
    palette = _PALETTES[bool(dark)]
    _, _, kind, reversed_ = _info(data.statistic)
    look = _Look(kind, reversed_, _scale(kind, data.values))
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
    from matplotlib.colors import ListedColormap, LogNorm, Normalize

    scale = look.scale
    colors = look.colors(np.linspace(0.0, 1.0, 256)) / 255
    norm = LogNorm(scale.low, scale.high) if scale.log else Normalize(scale.low, scale.high)
    title = data.label + (", log scale" if scale.log else "")
    _text(axes, MARGIN, 12, title, palette["text"], ha="left", family="sans-serif")
    width, height = css
    left = 2 * MARGIN  # room for the first tick label
    bar = figure.add_axes((left / width, 1 - 32 / height, min(240, width - 2 * left) / width, 12 / height))
    colorbar = figure.colorbar(ScalarMappable(norm, ListedColormap(colors)), cax=bar, orientation="horizontal")
    colorbar.outline.set_edgecolor(palette["muted"])
    colorbar.outline.set_linewidth(0.75)
    bar.tick_params(labelsize=_FONT_PT, colors=palette["text"], length=2, width=0.75, pad=1)
