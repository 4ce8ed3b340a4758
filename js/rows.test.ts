import { describe, expect, it } from "vitest";
import { byDepth, depth, isSublayer, rowsWanted, shownRows } from "./rows";

describe("row ids (lens_widget/rows.py)", () => {
  it("puts ℓ.attn (row L + ℓ) between layers ℓ - 1 and ℓ", () => {
    expect([0, 1, 4, 5, 8].map((r) => depth(r, 4))).toEqual([0, 2, 8, 1, 7]);
    expect(byDepth([4, 8, 0, 5, 1, 5], 4)).toEqual([0, 5, 1, 8, 4]);
    expect(isSublayer(4, 4)).toBe(false);
    expect(isSublayer(5, 4)).toBe(true);
  });

  it("shows each shown layer's ℓ.attn under it, only with the toggle on", () => {
    const rows = [0, 5, 1, 6, 2, 7, 3, 8, 4];
    expect(shownRows(rows, 4, 1)).toEqual([4, 3, 2, 1, 0]);
    expect(shownRows(rows, 4, 1, true)).toEqual([4, 8, 3, 7, 2, 6, 1, 5, 0]);
    expect(shownRows(rows, 4, 3, true)).toEqual([4, 8, 3, 7, 0]);
    expect(shownRows([0, 1, 2, 3, 4, 5], 5, 2)).toEqual([5, 4, 2, 0]);
  });

  it("counts the rows a stride and the toggle ask for", () => {
    expect(rowsWanted(4, 1)).toBe(5);
    expect(rowsWanted(4, 1, true)).toBe(9);
    expect(rowsWanted(4, 3, true)).toBe(5);
  });
});
