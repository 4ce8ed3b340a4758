import { describe, expect, it } from "vitest";
import { CaretFollower } from "./caret";
import { makeLayout } from "./heatmap";
import { grid, R, scene, state } from "./testing";

/** Four tokens of two characters each: column c spans [2c, 2c + 2). */
function spanned() {
  const s = state(grid(0));
  s.tokenSpans = Uint32Array.from([0, 2, 2, 4, 4, 6, 6, 8]);
  return scene(s, { mode: "a" });
}
// Room for two of the four columns beside the row labels.
const layout = makeLayout(R, 4, 54 + 2 * 58); // row labels 54 px wide (six characters)

describe("CaretFollower", () => {
  it("scrolls to the typed column once per move", () => {
    const caret = new CaretFollower();
    const s = spanned();
    caret.typed(8); // after the 4th token
    expect(caret.scrollTo(s, layout, 0)).toBe(2 * 58);
    expect(caret.scrollTo(s, layout, 0)).toBeNull(); // no move since
  });

  it("keeps the move while the picture is older than the typing, and follows it again once caught up", () => {
    const caret = new CaretFollower();
    caret.typed(8); // Enter at the end: its new column comes with the kernel's answer
    expect(caret.scrollTo(spanned(), layout, 0, false)).toBe(2 * 58); // the last column there is now
    expect(caret.scrollTo(spanned(), layout, 0, true)).toBe(2 * 58); // the answer came: followed again
    expect(caret.scrollTo(spanned(), layout, 0, true)).toBeNull(); // and only once
  });

  it("stops following once the user scrolls the column away, and follows again when the cursor moves", () => {
    const caret = new CaretFollower();
    const s = spanned();
    caret.typed(8);
    caret.scrollTo(s, layout, 0);
    caret.scrolled(s, 2, 4); // our own scroll: still following
    caret.scrolled(s, 0, 2); // the user's, away from column 3
    caret.typed(8);
    expect(caret.scrollTo(s, layout, 0)).toBeNull();
    caret.placed(2);
    caret.typed(8);
    expect(caret.scrollTo(s, layout, 0)).toBe(2 * 58);
  });
});
