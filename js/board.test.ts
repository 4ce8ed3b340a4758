import { describe, expect, it } from "vitest";
import { Board } from "./board";
import { grid, scene, state } from "./testing";

describe("Board", () => {
  it("lays out the scene's shown rows, scrolls a column into view and reports the columns on screen", () => {
    const parent = document.createElement("div");
    document.body.appendChild(parent);
    const board = new Board(document, parent, () => {});
    const s = scene(state(grid(0)), { mode: "a", stride: 2 });
    const layout = board.layout(s);
    expect(layout.rows).toBe(2); // stride 2 of layers 0 … 2: the output and layer 0
    expect(board.onScreen(s)).toEqual([0, 4]); // 600 px wide until the host gives a width
    Object.defineProperty(board.scroller, "scrollLeft", { value: 0, writable: true });
    expect(board.scrollToColumn(s, 0)).toBe(false);
    board.dispose();
    parent.remove();
  });

  it("widens the spacer before scrolling to a column it does not hold yet (one just typed or written)", () => {
    const parent = document.createElement("div");
    const board = new Board(document, parent, () => {});
    Object.defineProperty(board.scroller, "clientWidth", { configurable: true, get: () => 200 });
    board.measure();
    Object.defineProperty(board.scroller, "scrollLeft", { value: 0, writable: true });
    const s = scene(state(grid(0)), { mode: "a" });
    const spacer = parent.querySelector(".lw-spacer") as HTMLElement;
    expect(spacer.style.width).toBe("");
    expect(board.scrollToColumn(s, s.count - 1)).toBe(true);
    const layout = board.layout(s);
    expect(spacer.style.width).toBe(`${layout.labelWidth + layout.cols * layout.cellWidth}px`);
    board.dispose();
  });

  it("keeps drawing at the last width it knew while the host reports none", () => {
    const parent = document.createElement("div");
    const board = new Board(document, parent, () => {});
    Object.defineProperty(board.scroller, "clientWidth", { configurable: true, get: () => 320 });
    board.measure();
    Object.defineProperty(board.scroller, "clientWidth", { configurable: true, get: () => 0 });
    board.measure();
    expect(board.layout(scene(state(grid(0)), { mode: "a" })).width).toBe(320);
    board.dispose();
  });
});
