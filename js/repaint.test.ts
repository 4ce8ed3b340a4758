import { describe, expect, it } from "vitest";
import { Repaint } from "./repaint";

describe("Repaint", () => {
  const inputs = [600, 0, "entropy"];

  it("paints when the inputs change, and when a column on screen changed since the last paint", () => {
    const r = new Repaint();
    let changed: [number, number] | null = [0, 0];
    const since = () => changed;
    expect(r.needed(inputs, 1, since, [0, 10])).toBe(true); // the first paint
    expect(r.needed([...inputs], 1, since, [0, 10])).toBe(false); // equal values, same state
    changed = [12, 20]; // a chunk of columns off screen
    expect(r.needed(inputs, 2, since, [0, 10])).toBe(false);
    changed = [9, 11]; // one of them on screen
    expect(r.needed(inputs, 3, since, [0, 10])).toBe(true);
    changed = null; // anything may have changed (a full update)
    expect(r.needed(inputs, 4, since, [0, 10])).toBe(true);
    changed = [0, 0];
    expect(r.needed([640, 0, "entropy"], 4, since, [0, 10])).toBe(true); // resized
    expect(r.needed([640, 58, "entropy"], 4, since, [1, 11])).toBe(true); // scrolled
  });

  it("asks about the changes since the state it last painted or skipped", () => {
    const r = new Repaint();
    const asked: number[] = [];
    const since = (v: number): [number, number] => (asked.push(v), [20, 21]);
    r.needed(inputs, 5, since, [0, 10]);
    r.needed(inputs, 6, since, [0, 10]);
    r.needed(inputs, 7, since, [0, 10]);
    expect(asked).toEqual([5, 6]);
  });

  it("paints after forget() whatever it shows (a host dropped the canvas's pixels)", () => {
    const r = new Repaint();
    const since = (): [number, number] => [0, 0];
    r.needed(inputs, 1, since, [0, 10]);
    r.forget();
    expect(r.needed(inputs, 1, since, [0, 10])).toBe(true);
  });
});
