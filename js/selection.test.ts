import { describe, expect, it } from "vitest";
import { afterClick, afterHover, afterKey, NOTHING, within } from "./selection";

describe("selection", () => {
  it("the first arrow selects the top-left cell, later ones move within the grid", () => {
    let s = afterKey(NOTHING, "ArrowDown", 3, 4)!;
    expect(s.cell).toEqual({ row: 0, col: 0 });
    s = afterKey(s, "ArrowDown", 3, 4)!;
    s = afterKey(s, "ArrowRight", 3, 4)!;
    expect(s.cell).toEqual({ row: 1, col: 1 });
    for (let i = 0; i < 9; i++) s = afterKey(s, "ArrowRight", 3, 4)!;
    expect(s.cell).toEqual({ row: 1, col: 3 });
  });

  it("Enter pins and unpins, Escape clears, other keys are not the heatmap's", () => {
    const s = afterKey(afterKey(NOTHING, "ArrowDown", 3, 4)!, "Enter", 3, 4)!;
    expect(s.pinned).toBe(true);
    expect(afterKey(s, "Enter", 3, 4)!.pinned).toBe(false);
    expect(afterKey(s, "Escape", 3, 4)).toEqual(NOTHING);
    expect(afterKey(s, "a", 3, 4)).toBeNull();
    expect(afterKey(NOTHING, "Enter", 3, 4)).toBeNull();
    expect(afterKey(NOTHING, "ArrowDown", 0, 0)).toBeNull();
  });

  it("a click pins a cell; a second click on it, or outside, unpins; hovering does not move a pin", () => {
    const pinned = afterClick(NOTHING, { row: 1, col: 2 });
    expect(pinned).toEqual({ cell: { row: 1, col: 2 }, pinned: true });
    expect(afterHover(pinned, { row: 0, col: 0 })).toBe(pinned);
    expect(afterClick(pinned, { row: 1, col: 2 }).pinned).toBe(false);
    expect(afterClick(pinned, null).pinned).toBe(false);
    expect(afterClick(pinned, { row: 0, col: 0 }).cell).toEqual({ row: 0, col: 0 });
  });

  it("a selection of a cell that is gone is cleared", () => {
    const s = { cell: { row: 2, col: 5 }, pinned: true };
    expect(within(s, 3, 6)).toBe(s);
    expect(within(s, 2, 6)).toEqual(NOTHING);
    expect(within(s, 3, 5)).toEqual(NOTHING);
  });
});
