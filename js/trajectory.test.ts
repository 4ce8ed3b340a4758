import { describe, expect, it } from "vitest";
import { TokenStrings } from "./payload";
import { grid, R, state } from "./testing";
import { answerFromState, type ColumnAnswer, seriesOf, yRange } from "./trajectory";

const answer: ColumnAnswer = {
  col: 2,
  seq: 1,
  rows: [0, 1, 2],
  row_labels: ["0", "1", "output"],
  names: { a: "base", b: "tuned" },
  curves: ["a/tuned", "a/logit", "b/tuned"],
  lines: [{ label: "dog", ids: [5, 6], tokens: [" dog", "dog"], pinned: true, logp: { "a/tuned": [Math.log(0.5), null, 0], "a/logit": [0, 0, 0], "b/tuned": [0, 0, 0] }, rank: { "a/tuned": [3, 2, 1] } }],
  found: [],
  error: "",
};

describe("seriesOf", () => {
  it("draws an item per model and lens: A's lens solid, B dashed, the other lens dotted", () => {
    const series = seriesOf(answer, "probability");
    expect(series.map((s) => s.name)).toEqual(["p(dog) · A/tuned", "p(dog) · A/logit", "p(dog) · B/tuned"]);
    expect(series.map((s) => s.dash)).toEqual([[], [1, 3], [6, 4]]);
    expect(series[0]!.values[0]).toBeCloseTo(0.5);
    expect(series[0]!.values[1]).toBeNull(); // an invalid cell is a gap, not a zero
    expect(new Set(series.map((s) => s.color)).size).toBe(1); // one colour per item
  });

  it("reads ranks where the kernel sent them, on a scale from 1", () => {
    const series = seriesOf(answer, "rank");
    expect(series).toHaveLength(1);
    expect(yRange(series, "rank")).toEqual([1, 10]);
    expect(yRange(seriesOf(answer, "logprob"), "logprob")[1]).toBe(0);
  });
});

describe("answerFromState", () => {
  it("follows the saved pinned items through each model with no kernel", () => {
    const s = state(grid(1));
    const a = answerFromState(s, 1, new TokenStrings(null));
    expect(a.curves).toEqual(["a/logit", "b/logit"]);
    expect(a.lines.map((l) => l.label)).toEqual(["dog"]);
    const values = seriesOf(a, "probability")[1]!.values as number[];
    for (let r = 0; r < R; r++) expect(values[r]).toBeCloseTo(0.1 * (r + 1) * Math.exp(0.1), 5);
  });

  it("without pins, shows the top-1 tokens at any row from the saved top-k (gaps outside it)", () => {
    const s = state(grid(1));
    s.header.pins = [];
    const a = answerFromState(s, 0, new TokenStrings(null));
    expect(a.lines.map((l) => l.ids[0])).toEqual([10, 20, 11]);
    expect(a.lines[0]!.logp["a/logit"]).toEqual([Math.log(0.25), null, null]);
  });
});
