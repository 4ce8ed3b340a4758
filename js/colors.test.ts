import { describe, expect, it } from "vitest";
import { boundValue, divergingColor, fixedScale, rampColor, scaleFor, textOn } from "./colors";

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

describe("fixedScale", () => {
  it("runs to the statistic's bound whatever the values, and values beyond take the top colour", () => {
    expect(boundValue("ln_vocab", 50257)).toBeCloseTo(10.8249, 3);
    expect(boundValue("ln_2", 50257)).toBeCloseTo(Math.LN2);
    const entropy = fixedScale("sequential", "ln_vocab", 50257);
    expect([entropy.min, entropy.fixed, entropy.position(Math.log(50257))]).toEqual([0, true, 1]);
    expect(rampColor(entropy.position(16.66))).toEqual(rampColor(1));
    const rank = fixedScale("rank", "vocab", 1000);
    expect([rank.min, rank.max, rank.log, rank.position(1), rank.position(1000)]).toEqual([1, 1000, true, 0, 1]);
  });

  it("centres differences at 0: ± the bound, and signed-logarithmic for ranks", () => {
    const d = fixedScale("diverging", "one", 100);
    expect([d.min, d.max, d.position(0), d.position(1)]).toEqual([-1, 1, 0.5, 1]);
    const r = fixedScale("diverging", "vocab", 100);
    expect(r.position(0)).toBe(0.5);
    expect(r.position(100)).toBeCloseTo(1);
    expect(r.position(-9)).toBeCloseTo(0.5 - (0.5 * Math.log(10)) / Math.log(101));
  });
});
