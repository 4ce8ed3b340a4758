import { describe, expect, it } from "vitest";
import { placeTooltip } from "./placement";

const tip = { width: 200, height: 100 };

describe("placeTooltip", () => {
  it("goes right of the cell when it fits, else left of it, never outside the widget", () => {
    expect(placeTooltip({ x: 100, y: 50, w: 58, h: 22 }, tip, 600, 400)).toEqual({ left: 164, top: 30, minHeight: 108 });
    expect(placeTooltip({ x: 450, y: 50, w: 58, h: 22 }, tip, 600, 400).left).toBe(244);
    expect(placeTooltip({ x: 100, y: 50, w: 58, h: 22 }, tip, 300, 400).left).toBe(0);
  });

  it("stays inside the widget's height, which grows to hold it", () => {
    const low = placeTooltip({ x: 0, y: 380, w: 58, h: 22 }, tip, 600, 400);
    expect(low.top).toBe(296);
    const short = placeTooltip({ x: 0, y: 5, w: 58, h: 22 }, tip, 600, 40);
    expect(short).toMatchObject({ top: 0, minHeight: 108 });
  });
});
