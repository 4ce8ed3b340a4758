import { describe, expect, it } from "vitest";
import { attributionScale, componentAt, gridLayout, isAttributionAnswer, summaryOf, sums } from "./attribution";
import { modelAttribution } from "./testing";

describe("attribution", () => {
  it("checks an answer's shape", () => {
    const good = { type: "attribution", view: "v", seq: 1, row: 2, col: 3, models: [modelAttribution()], error: "" };
    expect(isAttributionAnswer(good)).toBe(true);
    expect(isAttributionAnswer({ ...good, models: [{ total: 1 }] })).toBe(false);
    expect(isAttributionAnswer({ ...good, seq: "1" })).toBe(false);
    expect(isAttributionAnswer({ type: "column" })).toBe(false);
    expect(isAttributionAnswer(null)).toBe(false);
  });

  it("sums by kind and says the sum beside the logit", () => {
    const m = modelAttribution();
    expect(sums(m)).toEqual({ heads: 1.25, mlps: 0.5 });
    expect(m.embedding + sums(m).heads + sums(m).mlps + m.biases).toBeCloseTo(m.total);
    expect(summaryOf(m)).toBe("embedding +0.125 · heads +1.250 · MLPs +0.500 · biases −0.250 · sum 1.625 · logit 1.625 (frozen at this cell: final norm scale)");
  });

  it("shares one scale across models, from the largest finite share", () => {
    expect(attributionScale([modelAttribution(), modelAttribution({ mlps: [-3, null, null] })])).toBe(3);
    expect(attributionScale([modelAttribution({ heads: [[null]], mlps: [null] })])).toBe(1);
  });

  it("finds the head or MLP under a point, and nothing in the gaps", () => {
    const l = gridLayout(3, 2, 400);
    const m = modelAttribution();
    expect(l.cell).toBe(24);
    expect(componentAt(l, m, l.left + 1, l.top + 1)).toEqual({ label: "L0.H0", value: 0.5 });
    expect(componentAt(l, m, l.left + l.cell + 1, l.top + l.cell + 1)).toEqual({ label: "L1.H1", value: 0.25 });
    expect(componentAt(l, m, l.left + 2 * l.cell + 1, l.top + 1)).toEqual({ label: "L2.H0", value: null });
    expect(componentAt(l, m, l.left + 1, l.top + 2 * l.cell + 4 + 1)).toEqual({ label: "L0.mlp", value: 1 });
    expect(componentAt(l, m, 2, l.top + 1)).toBeNull();
    expect(componentAt(l, m, l.left + 3 * l.cell + 1, l.top + 1)).toBeNull();
  });
});
