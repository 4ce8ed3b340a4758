import { describe, expect, it } from "vitest";
import { fitText, formatProbability, visibleToken } from "./tokens";

describe("token text", () => {
  it("makes whitespace and control characters visible", () => {
    expect(visibleToken(" a\n\tb")).toBe("·a↵→b");
    expect(visibleToken("")).toBe("∅");
    expect(visibleToken("\u0001")).toBe("\\x01");
  });

  it("fits text by measured width", () => {
    const measure = (s: string) => s.length * 10;
    expect(fitText("abc", 30, measure)).toBe("abc");
    expect(fitText("abcdef", 40, measure)).toBe("abc…");
    expect(fitText("abcdef", 5, measure)).toBe("");
  });

  it("formats probabilities at every scale", () => {
    expect(formatProbability(0.5)).toBe("50.0%");
    expect(formatProbability(0.0123)).toBe("1.23%");
    expect(formatProbability(1e-5)).toBe("1.0e-5");
    expect(formatProbability(0)).toBe("0");
  });
});
