import { describe, expect, it } from "vitest";
import { divergingColor, rampColor, scaleFor, textOn } from "./colors";

describe("scaleFor", () => {
  it("runs probabilities over [0, 1] whatever the data", () => {
    const s = scaleFor("probability", [0.2, 0.3]);
    expect([s.min, s.max, s.position(0.5)]).toEqual([0, 1, 0.5]);
  });

  it("runs nats from 0 to the largest finite value, ignoring NaN and infinity", () => {
    const s = scaleFor("sequential", [1, 4, NaN, Infinity]);
    expect(s.max).toBe(4);
    expect(s.position(2)).toBe(0.5);
    expect(Number.isNaN(s.position(NaN))).toBe(true);
  });

  it("draws ranks on a log scale from 1", () => {
    const s = scaleFor("rank", [1, 100, 10_000]);
    expect(s.log).toBe(true);
    expect(s.position(1)).toBe(0);
    expect(s.position(100)).toBeCloseTo(0.5);
    expect(s.position(10_000)).toBeCloseTo(1);
  });

  it("has a usable range for an all-zero statistic", () => {
    const s = scaleFor("divergence", [0, 0]);
    expect(s.max).toBe(1);
    expect(s.position(0)).toBe(0);
  });
});

describe("colours", () => {
  it("ramp ends are dark and bright, and text contrasts with them", () => {
    expect(textOn(rampColor(0))).toBe("#ffffff");
    expect(textOn(rampColor(1))).toBe("#111111");
    expect(rampColor(-1)).toEqual(rampColor(0));
  });

  it("differences are centred at 0 on a symmetric scale, white in the middle", () => {
    const s = scaleFor("diverging", [-1, 0.5, NaN]);
    expect([s.min, s.max, s.position(0)]).toEqual([-1, 1, 0.5]);
    const [r, g, b] = divergingColor(0.5);
    expect(Math.min(r, g, b)).toBeGreaterThan(240);
    expect(divergingColor(0)[2]).toBeGreaterThan(divergingColor(0)[0]); // negative: blue
    expect(divergingColor(1)[0]).toBeGreaterThan(divergingColor(1)[2]); // positive: red
  });
});
