"""cells.py: the algebra the session and every receiver edit cells with."""

from __future__ import annotations

import numpy as np

from lens_widget.cells import Cells, fill_columns, merge_rows, pad_columns, pending_after, splice_columns


def test_splice_and_merge_are_pure() -> None:
    """The session holds its state in these arrays too: the update logic must never write into them."""
    a = Cells(
        np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4),
        np.zeros((3, 4, 2), np.int64),
        np.ones((3, 4, 2), np.float32),
    )
    new = Cells(np.full((2, 3, 2), -1, np.float32), np.ones((3, 2, 2), np.int64), np.zeros((3, 2, 2), np.float32))
    before = a.stats.copy()
    out = splice_columns(a, [0, 1, 2], [0, 1, 2], 2, new, np.full((1, 3), 9, np.float32), [0])
    assert out.stats.shape == (2, 3, 4) and (out.stats[0, :, 1] == 9).all()
    merged, rows = merge_rows(
        Cells.stats_only(a.stats), [0, 2, 4], Cells.stats_only(np.zeros((2, 1, 4), np.float32)), [3], num_layers=4
    )
    assert rows == [0, 2, 3, 4] and merged.stats.shape == (2, 4, 4) and merged.top_ids.shape == (4, 4, 0)
    np.testing.assert_array_equal(a.stats, before)



def numbered(rows: int, columns: int, k: int = 2, statistics: int = 2, start: int = 0) -> Cells:
    """Cells whose every value says where it is: statistic s, row r, column c → s·100 + r·10 + c."""
    s, r, c = np.meshgrid(np.arange(statistics), np.arange(rows), np.arange(start, start + columns), indexing="ij")
    stats = (s * 100 + r * 10 + c).astype(np.float32)
    ids = np.repeat((stats[0] + 1).astype(np.int64)[..., None], k, axis=2)
    return Cells(stats, ids, ids.astype(np.float32) / 1000)


def test_select_takes_rows_and_columns_of_every_array() -> None:
    cells = numbered(3, 5)
    part = cells.select([2, 0], 1, 4)
    assert part.stats.shape == (2, 2, 3) and part.top_ids.shape == (2, 3, 2)
    assert part.stats[1, 0].tolist() == [121, 122, 123] and part.top_ids[1, 0, 0] == 2


def test_pad_then_fill_is_the_whole_block() -> None:
    whole = numbered(2, 6)
    padded = pad_columns(whole.select(slice(None), 2, 4), 6, 2)
    assert np.isnan(padded.stats[:, :, [0, 1, 4, 5]]).all() and (padded.top_ids[:, [0, 1, 4, 5]] == 0).all()
    filled = fill_columns(fill_columns(padded, 0, whole.select(slice(None), 0, 2)), 4, whole.select(slice(None), 4, 6))
    for name, array in filled.arrays().items():
        np.testing.assert_array_equal(array, whole.arrays()[name])
    assert np.isnan(padded.stats[:, :, 0]).all(), "fill_columns copies: the padded block is unchanged"


def test_splice_keeps_the_prefix_of_the_rows_asked_for_and_appends() -> None:
    old = numbered(3, 4)
    new = numbered(2, 3, start=10)
    out = splice_columns(old, [0, 3, 5], [5, 0], 2, new)
    assert out.stats.shape == (2, 2, 5)
    assert out.stats[0, 0].tolist() == [20, 21, 10, 11, 12]  # row 5 was old index 2; then new's row 0
    assert out.top_ids[1, :, 0].tolist() == [1, 2, 21, 22, 23]


def test_pending_after_marks_the_changed_columns_without_cells() -> None:
    assert pending_after(None, 0, 4, 0, 4) is None
    flags = pending_after(None, 1, 6, 2, 4)
    assert flags is not None and flags.tolist() == [False, True, False, False, True, True]
    kept = pending_after(flags, 2, 3, 2, 3)
    assert kept is not None and kept.tolist() == [False, True, False]
