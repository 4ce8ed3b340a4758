"""Export: grid_data holds exactly the numbers the view draws, and render_png draws them as the view
does (size by formula, the view's colours, plain-text tokens), with clear errors for bad input."""

from __future__ import annotations

import builtins
import dataclasses
import math
import re
from pathlib import Path

import numpy as np
import pytest
from test_grid import random_tuned_lens
from test_pins import reference_pins
from tiny_models import NaNLens, tiny_model, tiny_tokenizer
from torch import nn

import lens_widget
from lens_widget.export import (
    DIFF_CHOICES,
    DIVERGING,
    LINE_COLORS,
    PANEL_Y,
    RAMP,
    GridData,
    Scale,
    grid_data,
    image_size,
    legend_title,
    ramp_colors,
    render_png,
    scale_for,
    visible_token,
)
from lens_widget.session import LensSession
from lens_widget.statistics import DIFF_STATISTICS, STATISTICS

mpimg = pytest.importorskip("matplotlib.image")

VOCAB = 400
TOKENIZER = tiny_tokenizer(VOCAB)
TEXT = "The quick brown fox\tjumps over\nthe lazy dog. Paris is the capital of France."
LAYERS = 4
REPO = Path(__file__).resolve().parents[1]


def model(seed: int = 0) -> nn.Module:
    return tiny_model("gpt_neox", seed=seed, vocab_size=VOCAB, max_position_embeddings=512, num_hidden_layers=LAYERS)


def session(text: str = TEXT, **kwargs: object) -> LensSession:
    s = LensSession(model(), TOKENIZER, **kwargs)  # type: ignore[arg-type]
    s.set_text(text)
    return s


def ab_session(text: str = TEXT, **kwargs: object) -> LensSession:
    kwargs.setdefault("names", ("base", "tuned"))
    s = LensSession(model(), TOKENIZER, model_b=model(seed=1), **kwargs)  # type: ignore[arg-type]
    s.set_text(text)
    return s


@pytest.fixture(scope="module")
def ab() -> LensSession:
    return ab_session()


def strings(s: LensSession) -> list[str]:
    return s.token_strings()


# --- numbers ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("stride", "token_range"), [(1, ()), (2, [3, 9]), (3, [5]), (4, [0, None]), (9, [2, 2])])
def test_values_are_the_sessions_own_at_the_rows_and_columns_the_view_shows(
    stride: int, token_range: list[int | None]
) -> None:
    s = session(layer_stride=stride)
    n = len(s.tokens.ids)
    data = grid_data(s, statistic="cross_entropy", layer_stride=stride, token_range=token_range)
    rows = sorted({*range(0, LAYERS, stride), LAYERS}, reverse=True)  # the output row on top, always
    start = token_range[0] if token_range else 0
    end = token_range[1] if len(token_range) > 1 and token_range[1] is not None else n
    columns = list(range(start, end))  # type: ignore[arg-type]
    assert data.rows == rows and data.rows[0] == LAYERS and data.columns == columns
    assert data.row_labels == ["output" if r == LAYERS else str(r) for r in rows]
    vocab = strings(s)
    assert data.tokens == [vocab[i] for i in s.tokens.ids[start:end]]
    stats, top_ids, top_probs = s.grid_arrays()
    index = np.ix_([s.rows.index(r) for r in rows], columns)
    np.testing.assert_array_equal(data.values, stats[STATISTICS.index("cross_entropy")][index])
    np.testing.assert_array_equal(data.top_ids[0], top_ids[index])
    np.testing.assert_array_equal(data.top_probs[0], top_probs[index])
    assert data.top_tokens.shape == data.top_ids.shape == (1, len(rows), len(columns), s.top_k)
    assert [vocab[i] for i in data.top_ids.reshape(-1)] == list(data.top_tokens.reshape(-1))
    assert data.values.dtype == np.float32 and data.top_ids.dtype == np.int64 and data.top_probs.dtype == np.float32
    assert data.mode == "a" and data.models == (s.names[0],) and data.statistic == "cross_entropy"


@pytest.mark.parametrize("statistic", STATISTICS)
def test_every_statistic_is_read_from_its_own_slice(statistic: str) -> None:
    s = session()
    data = grid_data(s, statistic=statistic)
    stats = s.grid_arrays()[0][STATISTICS.index(statistic)]
    np.testing.assert_array_equal(data.values, stats[::-1])  # stride 1: every row, output first


def test_a_finer_stride_computes_only_lens_rows_and_leaves_the_sessions_stride_alone() -> None:
    m = model()
    s = LensSession(m, TOKENIZER, layer_stride=3)  # type: ignore[arg-type]
    s.set_text(TEXT)
    assert s.rows == [0, 3, 4]
    calls: list[int] = []
    m.get_input_embeddings().register_forward_hook(lambda mod, args, out: calls.append(1))
    data = grid_data(s, layer_stride=1)
    assert calls == [], "rows come from kept hidden states: the model is not run"
    assert s.layer_stride == 3 and s.display_rows == [0, 3, 4]
    fresh = session()
    np.testing.assert_allclose(data.values, grid_data(fresh).values, rtol=1e-5, atol=1e-5)
    # The session goes on as before: its next edit equals a fresh session's at its own stride.
    s.set_text(TEXT + " Berlin")
    other = session(TEXT + " Berlin", layer_stride=3)
    np.testing.assert_allclose(grid_data(s, layer_stride=3).values, grid_data(other, layer_stride=3).values, atol=1e-5)


def test_a_session_without_text_gives_an_empty_grid_with_its_rows() -> None:
    s = LensSession(model(), TOKENIZER)  # type: ignore[arg-type]
    data = grid_data(s, layer_stride=2)
    assert data.rows == [4, 2, 0] and data.columns == [] and data.values.shape == (3, 0)
    assert data.to_frame().shape[0] == 0


@pytest.mark.parametrize("name", DIFF_STATISTICS)
def test_diff_mode_pair_statistics_are_the_sessions_diff_arrays(ab: LensSession, name: str) -> None:
    data = grid_data(ab, mode="diff", diff_statistic=name, layer_stride=2, token_range=[1, 7])
    diff = ab.diff_arrays()
    assert diff is not None
    np.testing.assert_array_equal(data.values, diff[DIFF_STATISTICS.index(name)][np.ix_([4, 2, 0], range(1, 7))])
    assert data.models == ("base", "tuned") and data.top_ids.shape[0] == 2
    np.testing.assert_array_equal(data.top_ids[1], ab.grid_arrays("b")[1][np.ix_([4, 2, 0], range(1, 7))])


@pytest.mark.parametrize("name", STATISTICS)
def test_diff_mode_delta_is_b_minus_a_of_the_two_grids(ab: LensSession, name: str) -> None:
    data = grid_data(ab, mode="diff", diff_statistic=f"delta:{name}")
    stat = STATISTICS.index(name)
    expected = ab.grid_arrays("b")[0][stat] - ab.grid_arrays("a")[0][stat]
    np.testing.assert_array_equal(data.values, expected[::-1])
    assert data.statistic == f"delta:{name}"


def test_a_model_diffed_with_itself_has_delta_exactly_zero_and_no_marked_cell() -> None:
    m = model()
    s = LensSession(m, TOKENIZER, model_b=m)  # type: ignore[arg-type]
    s.set_text(TEXT)
    data = grid_data(s, mode="diff", diff_statistic="delta:entropy")
    assert (data.values == 0).all() and not data.top1_differs.any()


def test_mode_b_shows_model_b_and_names_it(ab: LensSession) -> None:
    data = grid_data(ab, mode="b", statistic="rank")
    np.testing.assert_array_equal(data.values, ab.grid_arrays("b")[0][STATISTICS.index("rank")][::-1])
    np.testing.assert_array_equal(data.top_probs[0], ab.grid_arrays("b")[2][::-1])
    assert data.models == ("tuned",) and data.label == "Rank · tuned"


def test_labels_and_units_are_the_legends() -> None:
    s = session()
    assert (grid_data(s).label, grid_data(s).units) == ("Entropy (nats)", "nats")
    assert (grid_data(s, statistic="rank").label, grid_data(s, statistic="rank").units) == ("Rank", "")
    assert grid_data(s, statistic="forward_kl").label == "KL(model‖lens) (nats)"
    ab = ab_session("Paris")
    assert grid_data(ab, mode="a").label == "Entropy (nats) · base"
    assert grid_data(ab, mode="diff", diff_statistic="js").label == "JS(A, B) (nats)"
    assert grid_data(ab, mode="diff", diff_statistic="delta:entropy").label == "Δ Entropy (B − A, nats)"
    assert grid_data(ab, mode="diff", diff_statistic="delta:max_probability").label == "Δ Max probability (B − A)"


def test_diff_choices_are_the_widgets() -> None:
    widget = pytest.importorskip("lens_widget.widget")
    assert widget.DIFF_CHOICES == DIFF_CHOICES


def test_invalid_cells_are_nan_and_told_apart_from_missing_ones() -> None:
    s = session(lens=NaNLens(2))
    data = grid_data(s, statistic="cross_entropy")
    broken = data.rows.index(2)
    assert data.invalid[broken].all() and data.invalid.sum() == data.values.shape[1]
    assert np.isnan(data.values[broken]).all()
    assert np.isnan(data.values[:, -1]).all() and not data.invalid[:, -1][data.rows.index(1)]  # missing, not invalid
    assert data.cell_text(broken, 0) == "NaN"
    assert data.cell_text(0, 0) == visible_token(str(data.top_tokens[0, 0, 0, 0]))


def test_an_invalid_cell_of_either_model_is_invalid_in_the_diff() -> None:
    s = ab_session("Paris is", lens_b=NaNLens(1))
    diff = grid_data(s, mode="diff")
    assert diff.invalid[diff.rows.index(1)].all() and diff.invalid.sum() == diff.values.shape[1]
    assert not grid_data(s, mode="a").invalid.any()


def test_cells_whose_top1_differ_read_a_arrow_b(ab: LensSession) -> None:
    data = grid_data(ab, mode="diff")
    differs = data.top1_differs
    assert differs.any()
    np.testing.assert_array_equal(differs, data.top_ids[0, ..., 0] != data.top_ids[1, ..., 0])
    i, j = map(int, np.argwhere(differs)[0])
    a, b = (visible_token(str(data.top_tokens[m, i, j, 0])) for m in (0, 1))
    assert data.cell_text(i, j) == f"{a}→{b}"
    assert not grid_data(ab, mode="a").top1_differs.any()


def test_visible_token_matches_the_view() -> None:
    assert visible_token(" a\n\tb\r") == "·a↵→b␍"
    assert visible_token("") == "∅"
    assert visible_token("\x01\x7f$x$<b>") == "\\x01\\x7f$x$<b>"


def test_to_frame_has_one_row_per_cell_in_the_pictures_order(ab: LensSession) -> None:
    data = grid_data(ab, mode="a", statistic="entropy", layer_stride=2, token_range=[2, 6])
    frame = data.to_frame()
    assert list(frame.columns) == [
        "row_label",
        "layer",
        "position",
        "token",
        "value",
        "invalid",
        "top1_token",
        "top1_probability",
    ]
    assert len(frame) == data.values.size == 3 * 4
    assert list(frame["layer"][:4]) == [4] * 4 and list(frame["position"][:4]) == [2, 3, 4, 5]
    assert list(frame["row_label"].unique()) == ["output", "2", "0"]
    np.testing.assert_array_equal(frame["value"].to_numpy(), data.values.reshape(-1))
    assert list(frame["token"][:4]) == data.tokens
    assert frame["top1_token"].iloc[5] == data.top_tokens[0, 1, 1, 0]
    assert frame.attrs["statistic"] == "entropy" and frame.attrs["models"] == ("base",)
    diff = grid_data(ab, mode="diff", diff_statistic="kl_ab").to_frame()
    assert {"top1_token_a", "top1_probability_a", "top1_token_b", "top1_probability_b"} <= set(diff.columns)
    assert len(diff) == (LAYERS + 1) * len(ab.tokens.ids)


def block_import(monkeypatch: pytest.MonkeyPatch, package: str) -> None:
    """Imports of `package` fail, as where it is not installed."""
    real = builtins.__import__

    def fake(name: str, *args: object, **kwargs: object) -> object:
        if name == package or name.startswith(f"{package}."):
            raise ImportError(f"No module named {name!r}")
        return real(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", fake)


def test_to_frame_without_pandas_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    data = grid_data(session("Paris"))
    block_import(monkeypatch, "pandas")
    with pytest.raises(ImportError, match="pip install pandas"):
        data.to_frame()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"statistic": "entropi"}, r"statistic must be one of \('entropy'"),
        ({"diff_statistic": "delta:nope"}, r"diff_statistic must be one of \('kl_ab'"),
        ({"mode": "diff"}, r"mode must be one of \('a',\) \(\"b\" and \"diff\" need an A/B session"),
        ({"mode": "b"}, r"mode must be one of \('a',\)"),
        ({"layer_stride": 0}, "layer_stride must be a positive integer, got 0"),
        ({"layer_stride": True}, "layer_stride must be a positive integer"),
        ({"layer_stride": 1.5}, "layer_stride must be a positive integer"),
        ({"token_range": [4, 2]}, r"token_range must satisfy 0 <= start <= end <= \d+"),
        ({"token_range": [-1, 3]}, "token_range must satisfy 0 <= start"),
        ({"token_range": [0, 10_000]}, "token_range must satisfy"),
        ({"token_range": [0, 1, 2]}, r"token_range must be \[\], \[start\] or \[start, end\]"),
        ({"token_range": "0:3"}, "token_range must be"),
        ({"token_range": [0.5]}, "token_range must hold integers or None"),
    ],
)
def test_bad_arguments_are_refused_naming_them(kwargs: dict[str, object], message: str) -> None:
    s = session("Paris is the capital")
    with pytest.raises(ValueError, match=message):
        grid_data(s, **kwargs)  # type: ignore[arg-type]


def test_an_unknown_mode_of_an_ab_session_lists_the_three(ab: LensSession) -> None:
    with pytest.raises(ValueError, match=r"mode must be one of \('a', 'b', 'diff'\), got 'B'"):
        grid_data(ab, mode="B")


# --- picture ----------------------------------------------------------------------------------


def png(data: GridData, tmp_path: Path, name: str = "grid.png", **kwargs: object) -> np.ndarray:
    path = render_png(data, tmp_path / name, **kwargs)  # type: ignore[arg-type]
    assert path == tmp_path / name and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return mpimg.imread(path)


def test_image_size_follows_the_documented_formula() -> None:
    # width = scale × max(320, 96 + 58 × columns + 8); height = scale × (52 + 22 × rows + 24 + 8)
    assert image_size(3, 5, 2.0) == (2 * (96 + 290 + 8), 2 * (52 + 66 + 24 + 8))
    assert image_size(2, 1, 1.0) == (320, 52 + 44 + 24 + 8)
    assert image_size(5, 10, 1.5) == (round(1.5 * 684), round(1.5 * 194))


@pytest.mark.parametrize(("stride", "token_range", "scale"), [(1, (), 2.0), (2, [3, 6], 1.0), (3, [0, 2], 1.5)])
def test_the_png_has_the_documented_size_and_is_a_picture(
    tmp_path: Path, stride: int, token_range: list[int], scale: float
) -> None:
    data = grid_data(session(), layer_stride=stride, token_range=token_range)
    image = png(data, tmp_path, scale=scale)
    height, width = image.shape[:2]
    assert (width, height) == image_size(len(data.rows), len(data.columns), scale)
    assert np.unique(image.reshape(-1, image.shape[-1]), axis=0).shape[0] > 20, "not a uniform image"


def pixel(image: np.ndarray, x: float, y: float) -> np.ndarray:
    return np.round(image[int(y), int(x), :3] * 255).astype(int)


def cell_corner(row: int, column: int) -> tuple[int, int]:
    """A point inside a cell, clear of its text, at scale 1."""
    return 96 + 58 * column + 3, 52 + 22 * row + 3


@pytest.mark.parametrize("color_scale", ["fixed", "view"])
def test_cells_have_the_views_colours_reversed_when_lower_is_better(tmp_path: Path, color_scale: str) -> None:
    s = session()
    probability = grid_data(s, statistic="max_probability", token_range=[0, 6], color_scale=color_scale)
    image = png(probability, tmp_path, "p.png", scale=1.0)
    for (i, j), value in np.ndenumerate(probability.values):
        np.testing.assert_array_equal(pixel(image, *cell_corner(i, j)), ramp_colors(RAMP, value))  # 0…1, bright = sure
    entropy = grid_data(s, statistic="entropy", token_range=[0, 6], color_scale=color_scale)
    image = png(entropy, tmp_path, "e.png", scale=1.0)
    top = np.log(VOCAB) if color_scale == "fixed" else np.nanmax(entropy.values)
    for (i, j), value in np.ndenumerate(entropy.values):
        np.testing.assert_array_equal(pixel(image, *cell_corner(i, j)), ramp_colors(RAMP, 1 - value / top))


@pytest.mark.parametrize("color_scale", ["fixed", "view"])
def test_a_delta_is_drawn_on_the_diverging_scale_centred_at_zero(
    tmp_path: Path, ab: LensSession, color_scale: str
) -> None:
    data = grid_data(ab, mode="diff", diff_statistic="delta:entropy", token_range=[0, 5], color_scale=color_scale)
    image = png(data, tmp_path, scale=1.0)
    span = np.log(VOCAB) if color_scale == "fixed" else np.nanmax(np.abs(data.values))
    for (i, j), value in np.ndenumerate(data.values):
        expected = ramp_colors(DIVERGING, (value + span) / (2 * span))
        np.testing.assert_array_equal(pixel(image, *cell_corner(i, j)), expected)


def test_a_delta_of_ranks_on_the_fixed_scale_is_signed_logarithmic(tmp_path: Path, ab: LensSession) -> None:
    data = grid_data(ab, mode="diff", diff_statistic="delta:rank", token_range=[0, 5])
    assert np.abs(data.values[np.isfinite(data.values)]).max() > 1, "ranks that differ by more than one"
    image = png(data, tmp_path, scale=1.0)
    for (i, j), value in np.ndenumerate(data.values):
        if np.isnan(value):
            continue  # the last column: no next token, no rank
        t = 0.5 + 0.5 * np.sign(value) * np.log1p(abs(value)) / np.log1p(VOCAB)
        np.testing.assert_array_equal(pixel(image, *cell_corner(i, j)), ramp_colors(DIVERGING, t))


def test_invalid_cells_are_hatched_and_missing_ones_grey(tmp_path: Path) -> None:
    data = grid_data(session("Paris is the capital", lens=NaNLens(2)), statistic="cross_entropy")
    image = png(data, tmp_path, scale=2.0)
    broken = data.rows.index(2)
    x, y = 2 * (96 + 3), 2 * (52 + 22 * broken)
    block = np.round(image[y + 2 : y + 40, x : x + 100, :3] * 255).astype(int).reshape(-1, 3)
    hatch = np.array([0xC0, 0x39, 0x2B])
    assert (np.abs(block - hatch).sum(axis=1) < 30).any(), "the invalid row carries the hatching"
    last = len(data.columns) - 1
    np.testing.assert_array_equal(pixel(image, *(2 * np.array(cell_corner(0, last)))), [0xD9, 0xD9, 0xD9])


def test_dark_uses_the_views_dark_background(tmp_path: Path) -> None:
    data = grid_data(session("Paris"))
    np.testing.assert_array_equal(pixel(png(data, tmp_path, "light.png"), 1, 1), [255, 255, 255])
    np.testing.assert_array_equal(pixel(png(data, tmp_path, "dark.png", dark=True), 1, 1), [0x1E, 0x1E, 0x1E])


def test_token_strings_are_drawn_as_plain_text(tmp_path: Path, ab: LensSession) -> None:
    data = grid_data(ab, mode="diff", token_range=[0, 6])
    # "$}{$" and "$x^$" are not valid mathtext: drawing them as math would raise.
    odd = ["$}{$", "$x^$", "$x$", "<b>", "\n", "$", "\\frac{1}{2}", "", "東京🙂", "a$b$c$"]
    top = np.array([odd[i % len(odd)] for i in range(data.top_tokens.size)], dtype=object)
    weird = dataclasses.replace(
        data,
        tokens=odd[: len(data.columns)],
        top_tokens=top.reshape(data.top_tokens.shape),
        row_labels=["$x$", "<b>", "\n", "out", "$"],
        label="$x^$ <i>",
    )
    image = png(weird, tmp_path)
    assert image.shape[:2][::-1] == image_size(len(data.rows), len(data.columns), 2.0)


def test_an_empty_grid_still_draws(tmp_path: Path) -> None:
    data = grid_data(session(), token_range=[3, 3])
    image = png(data, tmp_path, scale=1.0)
    assert image.shape[:2][::-1] == image_size(LAYERS + 1, 0, 1.0) == (320, 52 + 22 * 5 + 32)


@pytest.mark.parametrize("scale", [0, -1.0, float("nan"), float("inf"), True, "2"])
def test_a_bad_scale_is_refused(tmp_path: Path, scale: object) -> None:
    data = grid_data(session("Paris"))
    with pytest.raises(ValueError, match="scale must be a positive number"):
        render_png(data, tmp_path / "x.png", scale=scale)  # type: ignore[arg-type]


def test_an_image_too_large_for_agg_is_refused_with_a_way_out(tmp_path: Path) -> None:
    data = grid_data(session())
    with pytest.raises(ValueError, match=r"too large .*token_range=.* smaller scale"):
        render_png(data, tmp_path / "x.png", scale=1000.0)
    assert not (tmp_path / "x.png").exists()


def test_without_matplotlib_render_png_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    data = grid_data(session("Paris"))
    block_import(monkeypatch, "matplotlib")
    with pytest.raises(ImportError, match=re.escape("`pip install matplotlib`")) as info:
        render_png(data, tmp_path / "x.png")
    # No "lens-widget" distribution is on PyPI: the extra is installed from a clone.
    assert 'pip install ".[export]"' in str(info.value)
    assert "lens-widget[" not in str(info.value)


def test_the_ramps_are_interpolated_and_rounded_as_the_view_does() -> None:
    """The control points are the view's own (constants.json); JavaScript's Math.round takes halves up."""
    np.testing.assert_array_equal(
        ramp_colors(RAMP, np.array([0.0, 1.0, 0.5, -3.0, np.inf])),
        [RAMP[0], RAMP[-1], (35, 144, 140), RAMP[0], RAMP[-1]],
    )
    assert len(DIVERGING) % 2 == 1 and max(DIVERGING[len(DIVERGING) // 2]) > 240, "white in the middle: 0 shows neutral"


def test_the_demo_models_tuned_lens_grid_exports(tmp_path: Path) -> None:
    demo_model, tokenizer, lens = lens_widget.load_demo()
    s = LensSession(demo_model, tokenizer, lens)
    s.set_text(lens_widget.DEMO_TEXT)
    data = grid_data(s, statistic="forward_kl", token_range=[0, 12])
    np.testing.assert_array_equal(data.values, s.grid_arrays()[0][STATISTICS.index("forward_kl")][::-1, :12])
    assert "".join(grid_data(s).tokens) == lens_widget.DEMO_TEXT
    image = png(data, tmp_path, scale=1.0)
    assert image.shape[:2][::-1] == image_size(s.num_layers + 1, 12, 1.0)


# --- pinned items -----------------------------------------------------------------------------


def pinned_session(family: str = "gpt2", lens: object = None, **kwargs: object) -> tuple[LensSession, nn.Module]:
    m = tiny_model(family, vocab_size=VOCAB)
    s = LensSession(m, TOKENIZER, lens, **kwargs)  # type: ignore[arg-type]
    s.set_text(PIN_TEXT)
    s.set_pins([s.make_pin("dog"), s.make_pin(THE, label="the")])
    return s, m


PIN_TEXT = "The dog sat on the mat. The dog"
THE = TOKENIZER.encode(" the")[0]


def test_a_pinned_items_probability_is_the_exp_of_the_sessions_log_probability_and_matches_float64() -> None:
    s, m = pinned_session()
    data = grid_data(s, statistic="pin:dog")
    logp = s.pin_arrays()[0]
    np.testing.assert_array_equal(data.values, np.exp(logp)[::-1].astype(np.float32))  # output row on top
    want = reference_pins("gpt2", m, None, s.tokens.ids, list(s.pins))  # from the model's own hidden states
    np.testing.assert_allclose(data.values, want[0][::-1], rtol=2e-4, atol=2e-6)
    np.testing.assert_allclose(data.pins["the"][0], want[1][::-1], rtol=2e-4, atol=2e-6)
    assert set(data.pins) == {"dog", "the"} and data.pins["dog"].shape == (1, *data.values.shape)
    np.testing.assert_array_equal(data.pins["dog"][0], data.values)
    detail = s.column(4)  # the trajectory panel's numbers, through the whole head: the same probabilities
    np.testing.assert_allclose(np.exp(detail.lines[0].logp["a/logit"])[::-1], data.values[:, 4], rtol=1e-4)
    assert (data.label, data.units) == ("p(dog)", "")


def test_a_pinned_item_through_a_tuned_lens_matches_float64() -> None:
    m = tiny_model("gpt2", vocab_size=VOCAB)
    s, _ = pinned_session(lens=random_tuned_lens(m))
    data = grid_data(s, statistic="pin:the", layer_stride=2, token_range=[2, 7])
    want = reference_pins("gpt2", m, s.lens, s.tokens.ids, list(s.pins))[1]
    np.testing.assert_allclose(data.values, want[np.ix_(data.rows, data.columns)], rtol=2e-4, atol=2e-6)


def test_delta_of_a_pinned_item_is_b_minus_a_and_both_models_probabilities_are_kept() -> None:
    a, b = tiny_model("gpt2", vocab_size=VOCAB, seed=0), tiny_model("gpt2", vocab_size=VOCAB, seed=1)
    s = LensSession(a, TOKENIZER, model_b=b, names=("base", "other"))  # type: ignore[arg-type]
    s.set_text(PIN_TEXT)
    s.set_pins([s.make_pin("dog")])
    data = grid_data(s, mode="diff", diff_statistic="delta:pin:dog")
    pa, pb = (np.exp(s.pin_arrays(key)[0])[::-1] for key in ("a", "b"))
    np.testing.assert_allclose(data.values, pb - pa, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(data.pins["dog"], np.stack([pa, pb]), rtol=1e-6)
    want_b = reference_pins("gpt2", b, None, s.tokens.ids, list(s.pins))[0][::-1]
    np.testing.assert_allclose(data.pins["dog"][1], want_b, rtol=2e-4, atol=2e-6)
    assert data.label == "Δ p(dog) (B − A)"
    assert grid_data(s, mode="b", statistic="pin:dog").label == "p(dog) · other"
    frame = data.to_frame()
    np.testing.assert_array_equal(frame["p(dog)_a"].to_numpy(), data.pins["dog"][0].reshape(-1))
    np.testing.assert_array_equal(frame["p(dog)_b"].to_numpy(), data.pins["dog"][1].reshape(-1))
    single = grid_data(s, mode="a").to_frame()
    assert list(single.columns)[-1] == "p(dog)" and "p(dog)_a" not in single.columns


def test_pinned_statistics_are_validated_against_the_items_pinned_now() -> None:
    s, _ = pinned_session()
    with pytest.raises(ValueError, match=r"statistic must be one of \(.*'pin:dog', 'pin:the'\), got 'pin:cat'"):
        grid_data(s, statistic="pin:cat")
    ab = ab_session("The dog")
    ab.set_pins([ab.make_pin("dog")])
    with pytest.raises(ValueError, match=r"diff_statistic must be one of \(.*'delta:pin:dog'\), got 'pin:dog'"):
        grid_data(ab, mode="diff", diff_statistic="pin:dog")
    ab.set_pins([])
    with pytest.raises(ValueError, match="diff_statistic must be one of"):
        grid_data(ab, mode="diff", diff_statistic="delta:pin:dog")
    assert grid_data(ab, mode="diff").pins == {}


def test_a_pinned_item_that_is_invalid_somewhere_is_nan_there() -> None:
    s = session("The dog sat", lens=NaNLens(2))
    s.set_pins([s.make_pin("dog")])
    data = grid_data(s, statistic="pin:dog")
    broken = data.rows.index(2)
    assert np.isnan(data.values[broken]).all() and np.isfinite(np.delete(data.values, broken, axis=0)).all()


# --- colour scales ----------------------------------------------------------------------------


def test_the_fixed_scale_is_the_same_for_the_logit_and_the_tuned_lens_and_the_pictures_own_is_not() -> None:
    m = tiny_model("gpt2", vocab_size=VOCAB)
    s = LensSession(m, TOKENIZER, random_tuned_lens(m))  # type: ignore[arg-type]
    s.set_text(PIN_TEXT)
    s.set_pins([s.make_pin("dog")])
    for statistic in ("entropy", "rank", "forward_kl", "pin:dog"):
        tuned = grid_data(s, statistic=statistic)
        s.set_lens(None)
        logit = grid_data(s, statistic=statistic)
        s.set_lens(tuned_lens := random_tuned_lens(m))
        assert tuned_lens is s.lens
        assert not np.array_equal(tuned.values, logit.values, equal_nan=True), "two different pictures"
        fixed = [scale_for(d.statistic, d.values, "fixed", d.vocab_size) for d in (tuned, logit)]
        assert fixed[0] == fixed[1] and fixed[0].fixed
        view = [scale_for(d.statistic, d.values, "view", d.vocab_size) for d in (tuned, logit)]
        if statistic == "pin:dog":
            assert view[0] == view[1] == fixed[0], "a probability's scale is 0 … 1 either way"
        else:
            assert view[0] != view[1] and not view[0].fixed


@pytest.mark.parametrize(
    ("statistic", "values", "positions"),
    [
        ("entropy", [0.0, math.log(VOCAB) / 2, math.log(VOCAB), 100.0], [0.0, 0.5, 1.0, 100 / math.log(VOCAB)]),
        ("js", [0.0, math.log(2.0)], [0.0, 1.0]),
        ("max_probability", [0.0, 0.25, 1.0], [0.0, 0.25, 1.0]),
        ("pin:dog", [0.0, 0.3, 1.0], [0.0, 0.3, 1.0]),
        (
            "rank",
            [1.0, 20.0, VOCAB, 10 * VOCAB],
            [0.0, math.log(20) / math.log(VOCAB), 1.0, math.log(10 * VOCAB) / math.log(VOCAB)],
        ),
        ("delta:entropy", [-math.log(VOCAB), 0.0, math.log(VOCAB) / 2], [0.0, 0.5, 0.75]),
        ("delta:pin:dog", [-1.0, 0.0, 0.5], [0.0, 0.5, 0.75]),
        (
            "delta:rank",
            [-VOCAB, -3.0, 0.0, 3.0, VOCAB],
            [
                0.0,
                0.5 - 0.5 * math.log(4) / math.log(VOCAB + 1),
                0.5,
                0.5 + 0.5 * math.log(4) / math.log(VOCAB + 1),
                1.0,
            ],
        ),
    ],
)
def test_the_fixed_scale_follows_its_written_rule(statistic: str, values: list[float], positions: list[float]) -> None:
    scale = scale_for(statistic, np.array([np.nan]), "fixed", VOCAB)
    assert scale.fixed
    got = scale.position(np.array([*values, np.nan]))
    np.testing.assert_allclose(got[:-1], positions, rtol=1e-12, atol=1e-12)
    assert np.isnan(got[-1]), "no colour for a missing value"
    beyond = got[:-1][got[:-1] > 1]  # past the top: the top colour
    np.testing.assert_array_equal(ramp_colors(RAMP, beyond), np.array([RAMP[-1]] * len(beyond)).reshape(-1, 3))


def test_the_pictures_own_scale_spans_the_values_shown() -> None:
    values = np.array([[0.5, 2.0], [np.nan, -3.0]])
    assert scale_for("entropy", values, "view", VOCAB) == Scale(0.0, 3.0, "linear", False)
    assert scale_for("rank", values, "view", VOCAB) == Scale(1.0, 3.0, "log", False)
    assert scale_for("rank", np.array([1.0]), "view", VOCAB) == Scale(1.0, 2.0, "log", False)
    assert scale_for("delta:rank", values, "view", VOCAB) == Scale(-3.0, 3.0, "linear", False)
    assert scale_for("entropy", np.array([np.nan]), "view", VOCAB) == Scale(0.0, 1.0, "linear", False)
    assert scale_for("max_probability", values, "view", VOCAB) == Scale(0.0, 1.0, "linear", True)
    with pytest.raises(ValueError, match=r"color_scale must be one of \('fixed', 'view'\)"):
        scale_for("entropy", values, "auto", VOCAB)


def test_values_beyond_the_fixed_top_saturate_at_the_top_colour(tmp_path: Path) -> None:
    data = grid_data(session("Paris is the capital"), statistic="forward_kl")
    far = dataclasses.replace(data, values=np.full_like(data.values, 10 * math.log(VOCAB)))
    image = png(far, tmp_path, scale=1.0)
    np.testing.assert_array_equal(pixel(image, *cell_corner(1, 1)), RAMP[0])  # lower is better: the dark end


def test_the_legend_says_which_scale_it_is(ab: LensSession) -> None:
    fixed = grid_data(ab, statistic="rank")
    view = grid_data(ab, statistic="rank", color_scale="view")
    assert fixed.color_scale == "fixed" and view.color_scale == "view" and fixed.vocab_size == VOCAB
    title = legend_title(fixed, scale_for(fixed.statistic, fixed.values, "fixed", VOCAB))
    assert title == "Rank · base, log scale · fixed scale"
    title = legend_title(view, scale_for(view.statistic, view.values, "view", VOCAB))
    assert title == "Rank · base, log scale · this picture's scale"
    entropy = grid_data(ab, mode="diff", diff_statistic="delta:entropy", color_scale="view")
    title = legend_title(entropy, scale_for(entropy.statistic, entropy.values, "view", VOCAB))
    assert title == "Δ Entropy (B − A, nats) · this picture's scale"
    with pytest.raises(ValueError, match="color_scale must be one of"):
        grid_data(ab, color_scale="auto")


def test_render_png_can_draw_data_on_the_other_scale(tmp_path: Path) -> None:
    data = grid_data(session("Paris is the capital"), statistic="entropy", color_scale="view")
    image = png(data, tmp_path, scale=1.0, color_scale="fixed")
    value = data.values[0, 0]
    np.testing.assert_array_equal(pixel(image, *cell_corner(0, 0)), ramp_colors(RAMP, 1 - value / math.log(VOCAB)))


# --- trajectory panel -------------------------------------------------------------------------


def test_image_size_with_a_panel_follows_the_documented_formula() -> None:
    # panel = 32 + 160 + 30 + 16 × ceil(keys / n), n = max(1, (W − 16) // 170)
    assert image_size(3, 5, 1.0, panel_keys=0) == (394, 150 + 222)
    assert image_size(3, 5, 1.0, panel_keys=4) == (394, 150 + 222 + 16 * 2)  # 2 keys to a line at W = 394
    assert image_size(2, 1, 2.0, panel_keys=3) == (640, 2 * (128 + 222 + 16 * 3))  # W = 320: one key a line
    assert image_size(3, 20, 1.0, panel_keys=13) == (1264, 150 + 222 + 16 * 2)  # 7 to a line


def test_the_trajectory_is_the_sessions_column(ab: LensSession) -> None:
    data = grid_data(ab, mode="diff", column=3)
    t = data.trajectory
    assert t is not None and t.column == 3 and t.token == strings(ab)[ab.tokens.ids[3]]
    detail = ab.column(3)
    assert t.lines == detail.lines and t.curves == detail.curves == ("a/logit", "b/logit")
    assert t.rows == ab.rows and t.row_labels == ab.row_labels
    assert t.current == {"a": "a/logit", "b": "b/logit"} and t.names == {"a": "base", "b": "tuned"}
    assert grid_data(ab).trajectory is None
    with pytest.raises(ValueError, match="column must be a token column"):
        grid_data(ab, column=len(ab.tokens.ids))


def panel_region(image: np.ndarray, data: GridData, scale: float) -> np.ndarray:
    """The pixels under the heatmap's token axis: where the panel is drawn."""
    top = round(scale * (52 + 22 * len(data.rows) + 24 + 8))
    return np.round(image[top:, :, :3] * 255).astype(int)


@pytest.mark.parametrize("panel_y", PANEL_Y)
def test_the_png_draws_the_panel_under_the_heatmap_with_its_lines(tmp_path: Path, panel_y: str) -> None:
    s, _ = pinned_session()
    data = grid_data(s, statistic="pin:dog", column=5)
    assert data.trajectory is not None and data.trajectory.keys == 2
    image = png(data, tmp_path, scale=1.0, panel_y=panel_y)
    assert image.shape[:2][::-1] == image_size(len(data.rows), len(data.columns), 1.0, panel_keys=2)
    region = panel_region(image, data, 1.0)
    assert (region != 255).any(axis=2).mean() > 0.01, "not blank"
    for color in LINE_COLORS[:2]:  # one colour per pinned item
        rgb = np.array([int(color[i : i + 2], 16) for i in (1, 3, 5)])
        assert (np.abs(region - rgb).sum(axis=2) < 40).sum() > 20, f"a line drawn in {color}"
    without = png(grid_data(s, statistic="pin:dog"), tmp_path, "plain.png", scale=1.0)
    assert without.shape[0] == image_size(len(data.rows), len(data.columns), 1.0)[1]


def test_a_bad_panel_y_is_refused(tmp_path: Path) -> None:
    data = grid_data(session("Paris"), column=0)
    with pytest.raises(ValueError, match=r"panel_y must be one of \('probability', 'logprob', 'rank'\)"):
        render_png(data, tmp_path / "x.png", panel_y="odds")
