import { describe, expect, it } from "vitest";
import { caretColumn } from "./columns";

describe("caretColumn", () => {
  // "Paris is the": tokens [0,5) [5,8) [8,12)
  const spans = new Uint32Array([0, 5, 5, 8, 8, 12]);

  it("is the token the caret sits after: the one just typed", () => {
    expect(caretColumn(spans, 3, 12)).toBe(2);
    expect(caretColumn(spans, 3, 6)).toBe(1);
    expect(caretColumn(spans, 3, 5)).toBe(0);
  });

  it("is the first column at the start of the text, and null with no tokens", () => {
    expect(caretColumn(spans, 3, 0)).toBe(0);
    expect(caretColumn(new Uint32Array(0), 0, 3)).toBeNull();
  });

  it("is the last column past the end (text the kernel has not tokenized yet)", () => {
    expect(caretColumn(spans, 3, 40)).toBe(2);
  });
});
